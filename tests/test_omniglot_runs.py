"""Lake's one-shot runs and the background split (chapter 6): read from the verified archive,
shaped as 20 tasks, and disjoint from the characters the Lake-protocol model trains on."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch

from learntolearn.data import omniglot as om
from learntolearn.data.omniglot_runs import RUNS, lake_runs
from learntolearn.data.verified import DataError


@pytest.fixture
def runs_zip(real_env_vars: dict[str, str]) -> Path:
    path = Path(real_env_vars["LEARNTOLEARN_DATA"]) / "omniglot" / "one-shot-classification"
    if not (path / "all_runs.zip").is_file():
        pytest.skip(f"no all_runs.zip in {path}")
    return path / "all_runs.zip"


@pytest.mark.usefixtures("real_env", "runs_zip")
def test_lake_runs_are_twenty_within_alphabet_one_shot_problems(real: om.Omniglot) -> None:
    runs = lake_runs(download=False)
    assert runs.num_tasks == RUNS == 20
    assert runs.x_support.shape == runs.x_query.shape == (20, 20, 1, 28, 28)
    for r in range(RUNS):  # each test item matches exactly one training image
        assert sorted(runs.y_query[r].tolist()) == list(range(20))
    # Every image is an Omniglot drawing of an evaluation alphabet, never a background one:
    # the Lake-protocol model trains on the background set and sees none of them.
    where = {}
    for i, character in enumerate(real.characters):
        for j in range(real.images.shape[1]):
            where.setdefault(real.images[i, j].numpy().tobytes(), set()).add(character)
    background = {c for c, _ in om.background_split(download=False)}
    images = torch.cat([runs.x_support, runs.x_query], 1).mul(255).round().to(torch.uint8)
    found = [where.get(x[0].numpy().tobytes()) for x in images.flatten(0, 1)]
    assert all(found), "a run image is not an Omniglot drawing"
    assert not set().union(*found) & background
    per_run = [set().union(*found[r * 40 : (r + 1) * 40]) for r in range(20)]
    alphabets = [{c.split("/")[0] for c in characters} for characters in per_run]
    assert all(len(a) == 1 for a in alphabets)  # a run stays within one alphabet
    runs_per_alphabet = {a: sum(x == {a} for x in alphabets) for a in set().union(*alphabets)}
    assert sorted(runs_per_alphabet.values()) == [2] * 10  # ten alphabets, two runs each


@pytest.mark.usefixtures("real_env")
def test_background_split_is_the_30_background_alphabets_unrotated() -> None:
    classes = om.background_split(download=False)
    assert len(classes) == 964 and {t for _, t in classes} == {0}
    assert len({c.split("/")[0] for c, _ in classes}) == 30


def test_damaged_runs_archive_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, runs_zip: Path
) -> None:
    folder = tmp_path / "data" / "omniglot" / "one-shot-classification"
    folder.mkdir(parents=True)
    data = runs_zip.read_bytes()
    (folder / "all_runs.zip").write_bytes(data[: len(data) // 2])
    monkeypatch.setenv("LEARNTOLEARN_DATA", str(tmp_path / "data"))
    monkeypatch.setenv("LEARNTOLEARN_CACHE", str(tmp_path / "cache"))
    with pytest.raises(DataError, match="MD5"):
        lake_runs(download=False)
    shutil.rmtree(folder)
    with pytest.raises(DataError, match="not found"):
        lake_runs(download=False)
