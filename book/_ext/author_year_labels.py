"""Label the References page by author and year, as the citations in the text read.

``bibtex_reference_style: author_year`` makes a citation read "Finn et al., 2017", but the
bibliography itself keeps pybtex's default *alpha* labels ("[FAL17]"), so a reader following a
citation lands on a label that matches nothing in the text. This extension registers a pybtex
formatting style, ``author_year``, whose labels are "Finn et al. 2017" (one author: "Lake 2015";
two: "Nichol and Schulman 2018"; a letter is added when two entries would share a label), and
``_config.yml`` selects it with ``bibtex_default_style: author_year``. The entries are sorted
by author, year and title, as a reader looks a name up.

Registered from ``_config.yml`` under ``sphinx: local_extensions``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator
from typing import Any

from pybtex.plugin import register_plugin
from pybtex.style.formatting.unsrt import Style as UnsrtStyle
from pybtex.style.labels import BaseLabelStyle
from sphinx.application import Sphinx


def _label(entry: Any) -> str:
    people = entry.persons.get("author") or entry.persons.get("editor") or []
    names = [" ".join(p.last_names) or " ".join(p.first_names) for p in people]
    if not names:
        who = entry.key
    elif len(names) == 1:
        who = names[0]
    elif len(names) == 2:
        who = f"{names[0]} and {names[1]}"
    else:
        who = f"{names[0]} et al."
    return f"{who} {entry.fields.get('year', 'n.d.')}"


class AuthorYearLabels(BaseLabelStyle):
    def format_labels(self, sorted_entries: Iterable[Any]) -> Iterator[str]:
        entries = list(sorted_entries)
        labels = [_label(e) for e in entries]
        counts, seen = Counter(labels), Counter()
        for label in labels:
            if counts[label] > 1:
                seen[label] += 1
                yield f"{label}{chr(ord('a') + seen[label] - 1)}"
            else:
                yield label


class AuthorYearStyle(UnsrtStyle):
    """Labels by author and year; entries sorted by author, then year and title (pybtex's
    *unsrt* keeps them in citation order, which a reader cannot search)."""

    default_label_style = AuthorYearLabels
    default_sorting_style = "author_year_title"


def setup(app: Sphinx) -> dict[str, Any]:
    register_plugin("pybtex.style.formatting", "author_year", AuthorYearStyle)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
