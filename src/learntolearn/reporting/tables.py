"""Tables for the book: Markdown on the rendered page, aligned plain text for nbval.

A notebook cell that ends with a :class:`Table` stores both representations; the book shows the
Markdown one, and nbval compares the plain-text one, so every printed number is re-checked. On
the page a table with a caption is a MyST ``{table}`` directive, so Sphinx numbers it per chapter
("Table 6.2") like a figure; ``name`` is its label for ``{numref}`` (labels are global to the
book: prefix them with the chapter, e.g. ``tbl-06-gaps``). The render check fails on a table
without a number and a caption.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["Table", "fmt_ci", "fmt_step"]

LABEL = re.compile(r"[a-z][a-z0-9-]*")


def fmt_ci(mean: float, half_width: float, digits: int = 3) -> str:
    """``mean ± half-width`` with a fixed number of decimals."""
    return f"{mean:.{digits}f} ± {half_width:.{digits}f}"


def fmt_step(curve: dict, step: int, digits: int = 3) -> str:
    """One step of a stored fine-tuning curve (see ``analysis.statistics.summarize_curve``).

    Mean ± 95% CI over the test tasks (accuracies in percent). When some tasks diverged at that
    step, the median and their number instead: the mean (often not even finite) would then
    describe a handful of blown-up tasks, not the method.
    """
    mean, half = curve["mean"][step], curve["ci95"][step]
    if curve["metric"] == "accuracy":
        return fmt_ci(100 * mean, 100 * half, 1)
    n = curve.get("diverged", [0] * (step + 1))[step]
    if n or mean is None or half is None:  # the mean would describe the diverged tasks
        return f"median {curve['median'][step]:.{digits}f} ({n} diverged)"
    return fmt_ci(mean, half, digits)


@dataclass(frozen=True)
class Table:
    headers: Sequence[str]
    rows: Sequence[Sequence[object]]
    caption: str = ""
    name: str = ""  # the label {numref} refers to (e.g. "tbl-06-gaps"); needs a caption

    def __post_init__(self) -> None:
        bad = [i for i, r in enumerate(self.rows) if len(r) != len(self.headers)]
        if bad:
            raise ValueError(f"rows {bad} do not have {len(self.headers)} cells")
        if self.name and not self.caption:
            raise ValueError(f"table {self.name!r} has a label but no caption: give it one")
        if self.name and not LABEL.fullmatch(self.name):
            raise ValueError(
                f"table label {self.name!r} is not a label: use lower-case letters, digits and "
                "hyphens, e.g. 'tbl-06-gaps'"
            )

    def _cells(self) -> list[list[str]]:
        return [[str(h) for h in self.headers], *[[str(c) for c in r] for r in self.rows]]

    def __str__(self) -> str:
        cells = self._cells()
        widths = [max(len(r[i]) for r in cells) for i in range(len(self.headers))]
        lines = [
            "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in cells
        ]
        lines.insert(1, "  ".join("-" * w for w in widths))
        return "\n".join(([self.caption] if self.caption else []) + lines)

    __repr__ = __str__

    def _repr_markdown_(self) -> str:
        # A number and its interval never break across lines on the page (no-break spaces).
        cells = [
            [c.replace("|", "\\|").replace(" ± ", "\u00a0±\u00a0") for c in r]
            for r in self._cells()
        ]
        out = ["| " + " | ".join(cells[0]) + " |", "|" + "---|" * len(cells[0])]
        out.extend("| " + " | ".join(r) + " |" for r in cells[1:])
        if not self.caption:
            return "\n".join(out)
        caption = " ".join(self.caption.split())  # the directive's argument is one line
        head = [f"::::{{table}} {caption}", *([f":name: {self.name}"] if self.name else []), ""]
        return "\n".join([*head, *out, "::::"])
