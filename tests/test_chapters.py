"""Every chapter runs top to bottom at the smoke profile, into a fresh results store."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
import yaml

from learntolearn.catalogue import CHAPTERS
from learntolearn.reporting.notebooks import execute, strip_volatile_metadata

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "book").glob("[0-9]*.ipynb"))


def test_every_chapter_is_in_the_toc_and_the_registry():
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    entries = [c for part in toc.get("parts", [toc]) for c in part["chapters"]]
    listed = {c["file"] for c in entries if (ROOT / f"{c['file']}.ipynb").exists()}
    assert {f"book/{nb.stem}" for nb in NOTEBOOKS} == listed
    assert {nb.stem for nb in NOTEBOOKS} == set(CHAPTERS)


def test_committed_chapters_have_parameters_and_no_volatile_metadata():
    for path in NOTEBOOKS:
        nb = nbformat.read(path, as_version=4)
        tags = [t for c in nb.cells for t in c.metadata.get("tags", [])]
        assert "parameters" in tags, f"{path.name} has no cell tagged 'parameters'"
        before = nbformat.writes(nb)
        assert nbformat.writes(strip_volatile_metadata(nb)) == before, path.name
        outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
        assert outputs, f"{path.name} is committed without outputs"
        assert not [o for o in outputs if o.output_type == "error"]
        assert not [o for o in outputs if o.get("name") == "stderr"], f"{path.name}: stderr"


@pytest.mark.book
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_chapter_runs_at_smoke_profile(path, tmp_path, monkeypatch):
    monkeypatch.setenv("LEARNTOLEARN_RESULTS", str(tmp_path / "results"))
    monkeypatch.delenv("LEARNTOLEARN_NO_TRAIN", raising=False)
    out = execute(path, profile="smoke", device="cpu", output=tmp_path / path.name)
    nb = nbformat.read(out, as_version=4)
    text = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs)
    assert "profile: smoke" in text
    assert "sanity checks passed" in text
    assert any((tmp_path / "results").iterdir()), "the smoke run stored no results"
