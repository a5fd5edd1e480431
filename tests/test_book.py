"""Build the book with warnings as errors, then render its pages in headless Chromium.

What a reader would see is checked in the browser, not in the HTML source: MathJax (served from
the book itself, see ``book/_ext/offline_mathjax.py``) must have typeset every equation into SVG,
no raw TeX may remain in the text, every stored figure must be on the page, and nothing may be
fetched from the network. Run with ``make render`` or ``pytest -q tests/test_book.py -m book``.
CI installs Chromium with ``apt-get install chromium``.
"""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import yaml
from PIL import Image, ImageStat

pytestmark = pytest.mark.book

ROOT = Path(__file__).resolve().parents[1]
FIRST_CHAPTER = "book/01_meta_learning"
#: Pages that must contain math (the landing page shows MAML's objective).
MATH_PAGES = {"book/intro", FIRST_CHAPTER}
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-dev-shm-usage",
    "--hide-scrollbars",
    "--force-device-scale-factor=1",
)
VIRTUAL_TIME_MS = 15_000
CHROMIUM_TIMEOUT_S = 120
BUILD_TIMEOUT_S = 600
MIN_FIGURE_BYTES = 2_000
#: Window widths a reader opens the book at: nothing may be cut off at either.
WINDOW_WIDTHS = (1280, 1600)
#: A figure is shown at least this fraction of its own size (its text is then >= 9 pt, since
#: every chapter draws with ``reporting.plotting.BOOK_STYLE``: 100 dpi, text of 9 pt or more).
MIN_FIGURE_SCALE = 0.95
#: Measures, in the browser, what is cut off: see the script's comments.
LAYOUT_PROBE = Path(__file__).with_name("layout_probe.js")
#: Notebook cell tags that keep a cell's outputs off the page.
REMOVING_TAGS = {"remove-cell", "remove_cell", "remove-output", "remove_output"}


def toc_pages() -> list[str]:
    """Every page named in ``_toc.yml`` (root first), as paths without extension."""
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text(encoding="utf-8"))
    pages = [toc["root"]]

    def walk(node: object) -> None:
        if isinstance(node, dict):
            if "file" in node:
                pages.append(node["file"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk({key: value for key, value in toc.items() if key != "root"})
    return list(dict.fromkeys(pages))


PAGES = toc_pages()


def tail(text: str, n: int = 4000) -> str:
    return text if len(text) <= n else "...\n" + text[-n:]


def jupyter_book() -> str:
    beside = Path(sys.executable).with_name("jupyter-book")
    found = str(beside) if beside.exists() else shutil.which("jupyter-book")
    if found is None:
        pytest.fail("jupyter-book is not installed: run `make env`")
    return found


def chromium_binary() -> str:
    for candidate in (os.environ.get("CHROMIUM"), "/usr/bin/chromium", shutil.which("chromium")):
        if candidate and Path(candidate).is_file():
            return candidate
    pytest.fail(
        "Chromium is needed to render the book: `apt-get install chromium` "
        "(or point $CHROMIUM at a Chromium binary)"
    )


@pytest.fixture(scope="module")
def html_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh build of the whole book (a fresh one, so every page's warnings are raised)."""
    out = tmp_path_factory.mktemp("book")
    cmd = [
        jupyter_book(),
        "build",
        str(ROOT),
        "--path-output",
        str(out),
        "--warningiserror",
        "--nitpick",
        "--keep-going",
    ]
    proc = subprocess.run(
        cmd, cwd=ROOT, capture_output=True, text=True, timeout=BUILD_TIMEOUT_S, check=False
    )
    log = re.sub(r"\x1b\[[0-9;]*m", "", proc.stdout + proc.stderr)
    problems = "\n".join(line for line in log.splitlines() if re.search(r": (WARNING|ERROR)", line))
    assert proc.returncode == 0, f"`{' '.join(cmd)}` failed:\n{problems}\n\n{tail(log)}"
    assert not problems, problems
    return out / "_build" / "html"


@pytest.fixture(scope="module")
def chromium() -> str:
    return chromium_binary()


def run_chromium(binary: str, page: Path, *args: str) -> subprocess.CompletedProcess[bytes]:
    """Load ``page`` with a fresh profile; Chromium's own stderr chatter is ignored."""
    with tempfile.TemporaryDirectory(prefix="chromium-profile-") as profile:
        cmd = [
            binary,
            *CHROMIUM_FLAGS,
            f"--user-data-dir={profile}",
            f"--virtual-time-budget={VIRTUAL_TIME_MS}",
            *args,
            page.as_uri(),
        ]
        try:
            return subprocess.run(cmd, capture_output=True, timeout=CHROMIUM_TIMEOUT_S, check=False)
        except subprocess.TimeoutExpired:
            pytest.fail(f"Chromium did not finish {page} within {CHROMIUM_TIMEOUT_S} s")


def strip_elements(markup: str, *tags: str) -> str:
    for tag in tags:
        markup = re.sub(rf"<{tag}\b.*?</{tag}>", " ", markup, flags=re.DOTALL | re.IGNORECASE)
    return markup


def visible_text(dom: str) -> str:
    """The page's prose: no scripts or styles, no typeset math, no code listings."""
    markup = strip_elements(dom, "script", "style", "mjx-container", "pre", "code", "textarea")
    return html.unescape(re.sub(r"<[^>]+>", " ", markup))


def external_resources(markup: str) -> list[str]:
    """Scripts, stylesheets, images and frames the page would fetch over the network."""
    found = re.findall(
        r"<(?:script|img|iframe|source)\b[^>]*\bsrc\s*=\s*[\"']?((?:https?:)?//[^\"'\s>]+)",
        markup,
        flags=re.IGNORECASE,
    )
    for link in re.findall(r"<link\b[^>]*>", markup, flags=re.IGNORECASE):
        if re.search(r"\brel\s*=\s*[\"']?(?:stylesheet|preload|modulepreload)", link, re.I):
            href = re.search(r"\bhref\s*=\s*[\"']?((?:https?:)?//[^\"'\s>]+)", link, re.I)
            if href:
                found.append(href.group(1))
    found += re.findall(r"@import\s+(?:url\()?[\"']?((?:https?:)?//[^\"')\s]+)", markup, re.I)
    return found


def stored_outputs(page: str) -> list[dict]:
    """The outputs a chapter notebook stores for the page (cells tagged ``remove-*`` excluded)."""
    notebook = ROOT / f"{page}.ipynb"
    if not notebook.exists():
        return []
    cells = json.loads(notebook.read_text(encoding="utf-8"))["cells"]
    return [
        out
        for cell in cells
        if cell["cell_type"] == "code" and not REMOVING_TAGS & set(cell["metadata"].get("tags", []))
        for out in cell.get("outputs", [])
    ]


def expected_figures(page: str) -> int:
    """PNG outputs stored in a chapter notebook that the page must show."""
    return sum("image/png" in out.get("data", {}) for out in stored_outputs(page))


def expected_tables(page: str) -> int:
    """Markdown tables among a chapter notebook's stored outputs (they must render as tables)."""
    markdown = ["".join(o.get("data", {}).get("text/markdown", "")) for o in stored_outputs(page)]
    return sum(bool(re.search(r"^\|(?:-{3,}\|)+$", m, flags=re.M)) for m in markdown)


def article(markup: str) -> str:
    """The page's article: what the chapter shows (no navigation, logo or sidebars)."""
    found = re.search(r'<article class="bd-article"[^>]*>(.*)</article>', markup, re.S)
    return found.group(1) if found else ""


def caption_text(block: str) -> str:
    text = re.search(
        r'<span class="caption-text">(.*?)</span>\s*<a class="headerlink"', block, re.S
    )
    return " ".join(html.unescape(re.sub(r"<[^>]+>", "", text.group(1))).split()) if text else ""


def uncaptioned(markup: str) -> list[str]:
    """What the article shows without a number and a caption: every image must sit in a
    ``<figure>`` whose caption reads "Figure N.M" and says something, every table must open
    with a ``<caption>`` reading "Table N.M" and something; and no two captions of a page may
    be the same (a caption copied from another figure describes what that one draws)."""
    body = article(markup)
    problems, captions = [], []
    figures = [
        (m.start(), m.end(), m.group(0)) for m in re.finditer(r"<figure\b.*?</figure>", body, re.S)
    ]
    for fig in figures:
        number = re.search(r'class="caption-number">\s*Figure [0-9]+(\.[0-9]+)*', fig[2])
        text = caption_text(fig[2])
        if not number or not text:
            problems.append(f"a figure without {'a number' if not number else 'a caption'}")
        captions.append(text)
    for img in re.finditer(r"<img\b[^>]*\bsrc=\"([^\"]+)\"", body):
        if not any(start <= img.start() < end for start, end, _ in figures):
            problems.append(f"an image outside a numbered figure: {img.group(1)}")
    for table in re.finditer(r"<table\b.*?(?=<thead|<tbody|<tr)", body, re.S):
        head = table.group(0)
        number = re.search(
            r'<caption>\s*<span class="caption-number">\s*Table [0-9]+(\.[0-9]+)*', head
        )
        text = caption_text(head)
        if not number or not text:
            cells = re.search(r"<th\b[^>]*>(.*?)</th>", body[table.end() :], re.S)
            first = html.unescape(re.sub(r"<[^>]+>", "", cells.group(1))).strip() if cells else "?"
            problems.append(f"a table without a number and caption (first header {first!r})")
        captions.append(text)
    repeated = {c for c in captions if c and captions.count(c) > 1}
    problems += [f"two figures or tables share the caption {c[:60]!r}…" for c in sorted(repeated)]
    return problems


def test_the_caption_check_sees_what_has_no_number_or_caption() -> None:
    """The check is not blind: a bare image, a table without a caption and a repeated caption
    are each reported; captioned ones are not."""

    def figure(n: str, text: str) -> str:
        return (
            f'<figure><img src="a.png"><figcaption><p><span class="caption-number">Figure {n} '
            f'</span><span class="caption-text">{text}</span><a class="headerlink" href="#x">#</a>'
            "</p></figcaption></figure>"
        )

    def table(n: str, text: str) -> str:
        return (
            f'<table class="table"><caption><span class="caption-number">Table {n} </span>'
            f'<span class="caption-text">{text}</span><a class="headerlink" href="#t">#</a>'
            "</caption><thead><tr><th>k</th></tr></thead></table>"
        )

    def page(*blocks: str) -> str:
        return (
            '<nav><img src="logo.png"></nav><article class="bd-article">'
            + "".join(blocks)
            + "</article>"
        )

    assert uncaptioned(page(figure("3.1", "Loss."), table("3.1", "Runs."))) == []
    bare_table = '<table class="table"><thead><tr><th>method</th></tr></thead></table>'
    found = uncaptioned(
        page(
            '<p><img src="b.png"></p>',
            bare_table,
            figure("3.1", ""),
            figure("3.2", "Same."),
            table("3.1", "Same."),
        )
    )
    assert any("b.png" in f for f in found), found
    assert any("'method'" in f for f in found), found
    assert any("without a caption" in f for f in found), found
    assert any("'Same.'" in f for f in found), found
    assert len(found) == 4, found


@pytest.mark.parametrize("page", PAGES)
def test_every_figure_and_table_has_a_number_and_caption(html_root: Path, page: str) -> None:
    problems = uncaptioned((html_root / f"{page}.html").read_text(encoding="utf-8"))
    assert not problems, f"{page}: " + "; ".join(problems)


def test_build_writes_every_page(html_root: Path) -> None:
    assert (html_root / f"{FIRST_CHAPTER}.html").is_file()
    for page in PAGES:
        assert (html_root / f"{page}.html").is_file(), f"{page}.html was not built"
    mathjax = html_root / "_static" / "mathjax" / "tex-svg.js"
    assert mathjax.is_file() and mathjax.stat().st_size > 1_000_000, "offline MathJax missing"


@pytest.mark.parametrize("page", PAGES)
def test_page_screenshot_is_not_blank(
    html_root: Path, chromium: str, page: str, tmp_path: Path
) -> None:
    png = tmp_path / "page.png"
    proc = run_chromium(
        chromium, html_root / f"{page}.html", f"--screenshot={png}", "--window-size=1280,4000"
    )
    stderr = proc.stderr.decode(errors="replace")
    assert png.is_file(), f"no screenshot (exit {proc.returncode}):\n{tail(stderr)}"
    with Image.open(png) as image:
        assert image.size == (1280, 4000)
        gray = image.convert("L")
    histogram = gray.histogram()
    background = max(histogram)
    drawn = 1 - background / sum(histogram)
    variance = ImageStat.Stat(gray).var[0]
    assert variance > 25 and drawn > 0.01, f"{page}: blank screenshot ({variance=}, {drawn=})"


@pytest.mark.parametrize("page", PAGES)
def test_page_renders_math_and_figures(html_root: Path, chromium: str, page: str) -> None:
    path = html_root / f"{page}.html"
    source = path.read_text(encoding="utf-8")
    proc = run_chromium(chromium, path, "--dump-dom")
    dom = proc.stdout.decode("utf-8", errors="replace")
    stderr = proc.stderr.decode(errors="replace")
    assert "</html>" in dom, f"no DOM from Chromium (exit {proc.returncode}):\n{tail(stderr)}"

    # Nothing comes from the network, in the built file or after scripts have run.
    assert external_resources(source) == [], f"{page}.html loads from the network"
    assert external_resources(dom) == [], f"{page} loaded from the network at run time"

    # No TeX is left for the reader to decode ...
    text = visible_text(dom)
    raw = re.findall(r"\\\(|\\\)|\\\[|\\\]|\$\$|\\begin\{|\$\\[A-Za-z]+", text)
    assert not raw, f"{page}: raw TeX left in the text: {raw[:5]}"

    # ... because the local MathJax typeset every equation into SVG, without errors.
    equations = source.count('class="math notranslate nohighlight"')
    if page in MATH_PAGES:
        assert equations > 0, f"{page} has no math"
    if equations:
        assert "_static/mathjax/tex-svg.js" in source, f"{page}.html does not load local MathJax"
    containers = re.findall(r"<mjx-container\b[^>]*>\s*<svg\b", dom)
    assert len(containers) >= equations, (
        f"{page}: MathJax typeset {len(containers)} of {equations} equations"
    )
    errors = re.findall(r'data-mjx-error="([^"]*)"', dom)
    errors += re.findall(r'<mtext mathcolor="red">([^<]*)</mtext>', dom)  # undefined macros
    assert not errors, f"{page}: MathJax errors {errors}"

    # Every stored figure is on the page, as a PNG copied into _images.
    images = html_root / "_images"
    figures = []
    for src in re.findall(r"<img\b[^>]*\bsrc=\"([^\"]+)\"", dom):
        target = (path.parent / src.split("?")[0]).resolve()
        assert target.is_file(), f"{page}: image {src} does not exist"
        if target.suffix.lower() == ".png":
            assert target.parent == images.resolve(), f"{page}: {src} is not in _images/"
            assert target.stat().st_size > MIN_FIGURE_BYTES, f"{page}: {src} is nearly empty"
            with Image.open(target) as image:
                extrema = image.convert("L").getextrema()
            assert extrema[0] != extrema[1], f"{page}: {src} is a blank image"
            figures.append(target)
    assert len(figures) >= expected_figures(page), (
        f"{page}: {len(figures)} figures on the page, {expected_figures(page)} in the notebook"
    )
    if page == FIRST_CHAPTER:
        assert figures, f"{page} shows no figure"
    # Tables printed by cells are Markdown outputs: they must arrive as HTML tables, not as
    # a paragraph of pipes.
    tables = expected_tables(page)
    assert dom.count("<table") >= tables, f"{page}: {tables} Markdown tables, not all rendered"
    assert not re.search(r"\|-{3,}\|", visible_text(dom)), f"{page}: raw Markdown table"
    # A number that looks broken is never printed: diverged tasks show as a median and a count.
    cells = [
        html.unescape(re.sub(r"<[^>]+>", "", c)) for c in re.findall(r"<td\b.*?</td>", dom, re.S)
    ]
    broken = [c for c in cells if re.search(r"\b(nan|inf|NaN|Infinity)\b", c)]
    assert not broken, f"{page}: tables print non-finite numbers: {broken[:5]}"
    if page == FIRST_CHAPTER:
        assert tables >= 4, f"{page}: expected the chapter's result tables"


def layout(chromium: str, page: Path, width: int, extra: str = "") -> dict:
    """What the layout probe finds on ``page`` at a window ``width`` px wide (``extra`` is
    HTML appended to the page first). The probe runs in a copy of the page beside it, so that
    every relative link still resolves."""
    probe = page.with_name(f".layout-probe-{page.name}")
    script = LAYOUT_PROBE.read_text(encoding="utf-8")
    markup = page.read_text(encoding="utf-8")
    probe.write_text(markup.replace("</body>", f"{extra}<script>{script}</script></body>"))
    try:
        proc = run_chromium(chromium, probe, "--dump-dom", f"--window-size={width},1000")
    finally:
        probe.unlink()
    dom = proc.stdout.decode("utf-8", errors="replace")
    found = re.search(r'data-layout="([^"]*)"', dom)
    assert found, f"the layout probe did not run on {page.name}:\n{tail(dom)}"
    return json.loads(html.unescape(found.group(1)))


@pytest.mark.parametrize("width", WINDOW_WIDTHS)
@pytest.mark.parametrize("page", PAGES)
def test_nothing_is_cut_off_and_figures_keep_their_size(
    html_root: Path, chromium: str, page: str, width: int
) -> None:
    report = layout(chromium, html_root / f"{page}.html", width)
    assert not report["overflow"], (
        f"{page} at {width} px: cut off on the right: {report['overflow']}"
    )
    assert not report["noAffordance"], (
        f"{page} at {width} px: scrolls sideways with nothing to show it: {report['noAffordance']}"
    )
    assert not report["code"], (
        f"{page} at {width} px: code lines wider than the column: {report['code']}"
    )
    small = [(src, round(scale, 2)) for src, scale in report["figures"] if scale < MIN_FIGURE_SCALE]
    assert not small, (
        f"{page} at {width} px: figures shown below {MIN_FIGURE_SCALE} of their size: {small}"
    )


def test_the_layout_probe_sees_what_is_cut_off(html_root: Path, chromium: str) -> None:
    """The probe is not blind: a block wider than the column, a wide unscrollable table and a
    long code line are each reported."""
    wide = '<div style="width: 3000px">wide</div>'
    table = '<div style="overflow-x: auto"><table><tr><td style="white-space: nowrap">'
    table += "x" * 3000 + "</td></tr></table></div>"
    code = '<div class="highlight"><pre style="overflow-x: auto">' + "y" * 500 + "</pre></div>"
    page = html_root / f"{FIRST_CHAPTER}.html"
    extra = f'<div id="probe-test">{wide}{table}{code}</div>'
    markup = page.read_text(encoding="utf-8")
    patched = page.with_name(".probe-test.html")
    patched.write_text(
        markup.replace('<article class="bd-article">', f'<article class="bd-article">{extra}', 1)
    )
    try:
        report = layout(chromium, patched, WINDOW_WIDTHS[0])
    finally:
        patched.unlink()
    assert any("wide" in o for o in report["overflow"]), report
    assert any("xxx" in o for o in report["noAffordance"]), report
    assert any("yyy" in o for o in report["code"]), report
