"""Serve MathJax from the built book instead of a CDN, so that math renders offline.

Sphinx's ``sphinx.ext.mathjax`` points every page at ``cdn.jsdelivr.net`` by default: a reader
without a network (or behind a strict proxy) then sees raw TeX. This extension

1. finds MathJax 3's single-file ``tex-svg.js`` combined component in the installed Python
   package ``mathjax`` (from the wheel ``django-static-mathjax``, pinned in ``pyproject.toml``),
   and fails the build with a clear message when that package is missing;
2. sets ``mathjax_path`` to ``mathjax/tex-svg.js``, which Sphinx resolves against ``_static/``;
3. pins MathJax's TeX delimiters to the ones Sphinx writes (``mathjax_inline`` and
   ``mathjax_display``: ``\\(..\\)`` and ``\\[..\\]``). MyST's ``dollarmath`` turns ``$..$`` and
   ``$$..$$`` into math nodes at parse time, so those never reach the browser as dollars;
4. after an HTML build, copies ``tex-svg.js`` (fonts and TeX base/ams packages included) and
   the TeX extensions MathJax autoloads on demand (``\\boldsymbol``, ``\\cancel``, ...) into
   ``<outdir>/_static/mathjax/``.

Registered from ``_config.yml`` under ``sphinx: local_extensions: {offline_mathjax: book/_ext}``.
"""

from __future__ import annotations

import importlib.resources
import importlib.util
import shutil
from pathlib import Path
from typing import Any

from sphinx.application import Sphinx
from sphinx.config import Config
from sphinx.errors import ExtensionError
from sphinx.ext.mathjax import MATHJAX_URL
from sphinx.util import logging

logger = logging.getLogger(__name__)

#: Where the script lands, relative to the HTML output's ``_static/`` folder.
MATHJAX_PATH = "mathjax/tex-svg.js"
#: The wheel that ships MathJax's static files as the Python package ``mathjax``.
MATHJAX_WHEEL = "django-static-mathjax==3.2.2.1"
#: Sub-folders of MathJax's ``es5/`` copied beside ``tex-svg.js`` (loaded on demand only).
AUTOLOADED = ("input/tex/extensions",)


def mathjax_es5_dir() -> Path:
    """The ``es5/`` folder of the installed MathJax 3 package (holds ``tex-svg.js``)."""
    hint = f"install it with `pip install '{MATHJAX_WHEEL}'` (or `make env`)"
    if importlib.util.find_spec("mathjax") is None:
        raise ExtensionError(
            f"offline_mathjax: the Python package 'mathjax' is not installed; {hint}. "
            "The book serves MathJax locally so that math renders without a network."
        )
    es5 = Path(str(importlib.resources.files("mathjax"))) / "static" / "mathjax" / "es5"
    if not (es5 / "tex-svg.js").is_file():
        raise ExtensionError(
            f"offline_mathjax: {es5 / 'tex-svg.js'} does not exist; the installed 'mathjax' "
            f"package is not the expected one; {hint}."
        )
    return es5


def configure(app: Sphinx, config: Config) -> None:
    """Point Sphinx at the local script and pin the TeX delimiters (``config-inited``)."""
    mathjax_es5_dir()  # fail before reading any source when the package is missing
    if config.mathjax_path not in (MATHJAX_URL, MATHJAX_PATH):
        logger.warning(
            "offline_mathjax: overriding mathjax_path=%r with %r", config.mathjax_path, MATHJAX_PATH
        )
    config.mathjax_path = MATHJAX_PATH

    mathjax3: dict[str, Any] = dict(config.mathjax3_config or {})
    tex = dict(mathjax3.get("tex", {}))
    tex.setdefault("inlineMath", [list(config.mathjax_inline)])
    tex.setdefault("displayMath", [list(config.mathjax_display)])
    mathjax3["tex"] = tex
    config.mathjax3_config = mathjax3


def copy_mathjax(app: Sphinx, exception: Exception | None) -> None:
    """Copy ``tex-svg.js`` and the TeX extensions it autoloads into the output (build-finished)."""
    if exception is not None or app.builder.format != "html":
        return
    es5 = mathjax_es5_dir()
    dest = Path(app.outdir) / "_static" / Path(MATHJAX_PATH).parent
    dest.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(es5 / "tex-svg.js", dest / "tex-svg.js")
    for sub in AUTOLOADED:
        shutil.copytree(es5 / sub, dest / sub, dirs_exist_ok=True)
    logger.info("offline_mathjax: copied MathJax into %s", dest)


def setup(app: Sphinx) -> dict[str, Any]:
    app.setup_extension("sphinx.ext.mathjax")
    # After sphinx.ext.mathjax has declared its config values, before myst-parser's
    # builder-inited hook adds ``options.processHtmlClass`` to ``mathjax3_config``.
    app.connect("config-inited", configure, priority=900)
    app.connect("build-finished", copy_mathjax)
    return {"version": "1.0", "parallel_read_safe": True, "parallel_write_safe": True}
