"""Set-up and workflow: stable re-executed notebooks, the scratch results store, the plan that
``reproduce`` prints before training, and command-line help that reads well."""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
from pathlib import Path

import nbformat
import pytest

from learntolearn import cli, paths
from learntolearn.catalogue import experiment, plan, run
from learntolearn.cli import main
from learntolearn.reporting import notebooks
from learntolearn.reporting.notebooks import execute, notebook_profile, stable_cell_ids

ROOT = Path(__file__).resolve().parents[1]


class Trained(Exception):
    """Raised by a stand-in for the training loop: something tried to train."""


def _no_training(*args: object, **kwargs: object) -> None:
    raise Trained("training was started")


@pytest.fixture
def fresh_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A project root in a temporary folder, with no store or cache override."""
    monkeypatch.setattr(paths, "project_root", lambda: tmp_path)
    monkeypatch.delenv("LEARNTOLEARN_RESULTS", raising=False)
    monkeypatch.setenv("LEARNTOLEARN_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("LEARNTOLEARN_NO_TRAIN", raising=False)
    return tmp_path


@pytest.fixture
def store_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """One temporary store for every profile (``LEARNTOLEARN_RESULTS``)."""
    monkeypatch.setenv("LEARNTOLEARN_RESULTS", str(tmp_path / "results"))
    monkeypatch.setenv("LEARNTOLEARN_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("LEARNTOLEARN_NO_TRAIN", raising=False)
    return tmp_path / "results"


# --- notebooks: re-executing an unchanged notebook gives the same bytes ---------------------


def _tiny_notebook(path: Path, *, minor: int = 5) -> Path:
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_markdown_cell("# A tiny chapter"),
        nbformat.v4.new_code_cell('profile = "cpu"\ndevice = "auto"', metadata={"tags": []}),
        nbformat.v4.new_code_cell("print(profile, device)"),
    ]
    nb.cells[1].metadata["tags"] = ["parameters"]
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    if minor < 5:
        nb.nbformat_minor = minor
        for cell in nb.cells:
            del cell["id"]
    nbformat.write(nb, path)
    return path


def _fake_papermill(seen: dict[str, str | None]):
    """A stand-in for papermill.execute_notebook: injects a parameters cell with a random id,
    as papermill does, and records the kernel's LEARNTOLEARN_RESULTS."""
    import os

    def execute_notebook(src: str, dst: str, parameters: dict, **kwargs: object) -> None:
        seen["LEARNTOLEARN_RESULTS"] = os.environ.get("LEARNTOLEARN_RESULTS")
        nb = nbformat.read(src, as_version=4)
        nb = nbformat.v4.upgrade(nb)
        cell = nbformat.v4.new_code_cell("# Parameters\n" + repr(parameters))  # random id
        cell.metadata["tags"] = ["injected-parameters"]
        cells = [c for c in nb.cells if "injected-parameters" not in c.metadata.get("tags", [])]
        at = next(i for i, c in enumerate(cells) if "parameters" in c.metadata.get("tags", []))
        nb.cells = [*cells[: at + 1], cell, *cells[at + 1 :]]
        nb.metadata["papermill"] = {"parameters": parameters, "start_time": "now"}
        nbformat.write(nb, dst)

    return execute_notebook


@pytest.mark.parametrize("minor", [5, 4])
def test_execute_keeps_cell_ids(tmp_path, monkeypatch, minor):
    import papermill

    monkeypatch.setattr(papermill, "execute_notebook", _fake_papermill({}))
    src = _tiny_notebook(tmp_path / "tiny.ipynb", minor=minor)
    a = execute(src, device="cpu", output=tmp_path / "a.ipynb").read_bytes()
    b = execute(src, device="cpu", output=tmp_path / "b.ipynb").read_bytes()
    assert a == b, "two executions of an unchanged notebook differ"
    execute(src, device="cpu")  # in place: the second run must not change the file
    first = src.read_bytes()
    execute(src, device="cpu")
    assert src.read_bytes() == first
    ids = [c.id for c in nbformat.read(src, as_version=4).cells]
    assert len(set(ids)) == len(ids) == 4


def test_stable_cell_ids_keeps_the_injected_cells_id():
    source = {
        "cells": [
            {"id": "p", "metadata": {"tags": ["parameters"]}, "source": ""},
            {"id": "old", "metadata": {"tags": ["injected-parameters"]}, "source": ""},
            {"id": "c", "metadata": {}, "source": "x"},
        ]
    }
    executed = {
        "cells": [
            {"id": "p", "metadata": {"tags": ["parameters"]}, "source": ""},
            {"id": "random", "metadata": {"tags": ["injected-parameters"]}, "source": ""},
            {"id": "c", "metadata": {}, "source": "x"},
        ]
    }
    stable_cell_ids(executed, source, "nb", {"device": "cpu"})
    assert [c["id"] for c in executed["cells"]] == ["p", "old", "c"]
    source["cells"].pop(1)  # a first run: the injected cell gets an id derived from the inputs
    executed["cells"][1]["id"] = "random"
    stable_cell_ids(executed, source, "nb", {"device": "cpu"})
    derived = executed["cells"][1]["id"]
    assert re.fullmatch("[0-9a-f]{8}", derived)
    executed["cells"][1]["id"] = "other"
    assert stable_cell_ids(executed, source, "nb", {"device": "cpu"})["cells"][1]["id"] == derived


def _has_kernel() -> bool:
    try:
        from jupyter_client.kernelspec import KernelSpecManager

        return "python3" in KernelSpecManager().find_kernel_specs()
    except Exception:
        return False


@pytest.mark.skipif(not _has_kernel(), reason="no python3 Jupyter kernel installed")
def test_executing_an_unchanged_notebook_twice_gives_identical_bytes(tmp_path):
    """With papermill and a real kernel: the committed-notebook case of `make book`."""
    src = _tiny_notebook(tmp_path / "tiny.ipynb")
    execute(src, device="cpu")
    first = src.read_bytes()
    execute(src, device="cpu")
    assert src.read_bytes() == first, "re-executing an unchanged notebook changed the file"
    out = "".join(
        o.get("text", "")
        for c in nbformat.read(src, as_version=4).cells
        for o in c.get("outputs", [])
    )
    assert "cpu cpu" in out


def test_committed_chapters_have_unique_ids_and_name_their_profile():
    for path in sorted((ROOT / "book").glob("[0-9]*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        ids = [c.id for c in nb.cells]
        assert len(set(ids)) == len(ids), path.name
        assert notebook_profile(nb) in ("cpu", "paper"), path.name


# --- the scratch store ---------------------------------------------------------------------


def test_results_dir_by_profile(fresh_root, monkeypatch):
    assert paths.results_dir() == fresh_root / "results"
    assert paths.results_dir("paper") == paths.results_dir("cpu") == fresh_root / "results"
    assert paths.results_dir("smoke") == fresh_root / "results-scratch"
    assert paths.results_dir("paper", scratch=True) == fresh_root / "results-scratch"
    monkeypatch.setenv("LEARNTOLEARN_RESULTS", str(fresh_root / "mine"))
    for profile in (None, "smoke", "cpu", "paper"):
        assert paths.results_dir(profile) == fresh_root / "mine"
    assert paths.results_dir(scratch=True) == fresh_root / "mine"


def test_git_ignores_the_scratch_store():
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    done = subprocess.run(
        ["git", "-C", str(ROOT), "check-ignore", "-q", "results-scratch/some-key/metrics.json"],
        check=False,
    )
    assert done.returncode == 0, "results-scratch/ is not in .gitignore"


def test_smoke_runs_and_config_files_go_to_the_scratch_store(fresh_root, capsys):
    import json

    assert main(["train", "sinusoid/oracle", "--profile", "smoke", "--quiet"]) == 0
    smoke = experiment("sinusoid/oracle", "smoke")
    assert (fresh_root / "results-scratch" / smoke.key / "metrics.json").is_file()
    assert not (fresh_root / "results").exists()
    custom = experiment("sinusoid/maml-k5", "cpu").with_(iterations=20, eval_tasks=10)
    path = fresh_root / "custom.json"
    path.write_text(json.dumps(custom.to_dict()))
    assert main(["train", str(path), "--quiet"]) == 0
    assert (fresh_root / "results-scratch" / custom.key).is_dir()
    assert not (fresh_root / "results").exists()
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    assert "scratch store" in out and custom.key in out and smoke.key in out
    registered = experiment("sinusoid/maml-k5", "cpu")  # as a committed config.json reads
    assert plan.store_for(registered).root == fresh_root / "results"


def test_a_chapter_at_the_smoke_profile_uses_the_scratch_store(fresh_root, monkeypatch):
    import papermill

    seen: dict[str, str | None] = {}
    monkeypatch.setattr(papermill, "execute_notebook", _fake_papermill(seen))
    src = _tiny_notebook(fresh_root / "tiny.ipynb")
    execute(src, profile="smoke", device="cpu", output=fresh_root / "out.ipynb")
    assert seen["LEARNTOLEARN_RESULTS"] == str(fresh_root / "results-scratch")
    execute(src, device="cpu", output=fresh_root / "out.ipynb")  # its own profile: cpu
    assert seen["LEARNTOLEARN_RESULTS"] is None
    import os

    assert "LEARNTOLEARN_RESULTS" not in os.environ
    monkeypatch.setenv("LEARNTOLEARN_RESULTS", str(fresh_root / "mine"))
    execute(src, profile="smoke", device="cpu", output=fresh_root / "out.ipynb")
    assert seen["LEARNTOLEARN_RESULTS"] == str(fresh_root / "mine")
    assert notebooks.notebook_profile(nbformat.read(src, as_version=4)) == "cpu"


# --- reproduce: a plan, an estimate, and a question before the paper profile on a CPU -------


def test_reproduce_prints_a_plan_with_estimates_and_trains_nothing(store_dir, monkeypatch, capsys):
    run(experiment("sinusoid/oracle", "smoke"), device="cpu", progress=False)
    monkeypatch.setattr("learntolearn.fewshot.runs.train", _no_training)
    argv = ["reproduce", "--chapter", "01_meta_learning", "--device", "cpu"]
    assert main([*argv, "--plan"]) == 0
    out = capsys.readouterr().out
    lines = {line.split()[0]: line for line in out.splitlines() if line.startswith("  ")}
    assert set(lines) == {f"sinusoid/{n}" for n in ("maml-k5", "maml-k10", "maml-k20")} | {
        "sinusoid/pretrain",
        "sinusoid/oracle",
    }
    assert "70,000 it." in lines["sinusoid/oracle"]
    assert re.search(r"~ \d+ (s|min|h)", lines["sinusoid/oracle"])
    assert "sinusoid-oracle-smoke" in lines["sinusoid/oracle"]
    assert "unknown" in lines["sinusoid/maml-k5"]
    assert "5 to train" in out and "total: ~ " in out and "4 run(s) of unknown length" in out


def test_reproduce_refuses_the_paper_profile_on_a_cpu(store_dir, monkeypatch, capsys):
    monkeypatch.setattr("learntolearn.fewshot.runs.train", _no_training)
    argv = ["reproduce", "--chapter", "01_meta_learning", "--device", "cpu"]
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert "sinusoid/oracle" in captured.out  # the plan comes first
    error = captured.err.strip()
    assert len(error.splitlines()) == 1 and "--allow-cpu" in error and "GPU" in error
    assert not store_dir.exists() or not any(store_dir.iterdir())
    with pytest.raises(Trained):
        main([*argv, "--allow-cpu", "--quiet"])


def test_reproduce_with_nothing_missing(store_dir, monkeypatch, capsys):
    monkeypatch.setattr(cli, "chapter_experiments", lambda c, p: ("sinusoid/oracle",))
    run(experiment("sinusoid/oracle", "smoke"), device="cpu", progress=False)
    monkeypatch.setattr("learntolearn.fewshot.runs.train", _no_training)
    assert main(["reproduce", "--profile", "smoke", "--device", "cpu"]) == 0
    assert "nothing to do" in capsys.readouterr().out


def test_reproduce_plans_the_learned_optimizers(store_dir, monkeypatch, capsys):
    monkeypatch.setattr(cli, "chapter_experiments", lambda c, p: ("l2l/mnist",))
    assert main(["reproduce", "--profile", "paper", "--device", "cpu", "--plan"]) == 0
    out = capsys.readouterr().out
    assert "l2l/mnist                    10,000 horizons" in out
    # the paper profile on a CPU refuses them without --allow-cpu, before any training
    assert main(["reproduce", "--profile", "paper", "--device", "cpu"]) == 2
    assert "--allow-cpu" in capsys.readouterr().err


def test_durations_read_well():
    assert plan.duration(40) == "40 s"
    assert plan.duration(12 * 60) == "12 min"
    assert plan.duration(7 * 3600 + 43 * 60) == "7 h 43 min"
    assert plan.duration(127 * 3600 + 48 * 60) == "5 d 8 h"


# --- help and documentation ----------------------------------------------------------------


def test_every_option_has_plain_help():
    parser = cli._parser()
    assert "``" not in parser.format_help()
    subparsers = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    for name, sub in subparsers.choices.items():
        text = sub.format_help()
        assert "``" not in text and ":func:" not in text, name
        for action in sub._actions:
            assert action.help, f"{name} {action.dest} has no help text"


def test_documented_commands_use_the_venv():
    for path in (ROOT / "README.md", ROOT / "book" / "intro.md"):
        text = path.read_text()
        bare = [m.start() for m in re.finditer(r"(?<!\.venv/bin/)python -m learntolearn", text)]
        assert not bare, f"{path.name}: `python -m learntolearn` without .venv/bin/"
    readme = (ROOT / "README.md").read_text()
    assert not re.search(r"constraints[^.]*pin[^.]*CPU wheel", readme, re.IGNORECASE)
