"""The miniImageNet family on a tiny generated folder in the Ravi layout (the real images are
not available here), and the shipped Ravi split CSVs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from learntolearn.data import miniimagenet as mi
from learntolearn.data.verified import DataError, MissingDataError

SHARED = Path(__file__).parents[2] / "shared" / "data" / "miniimagenet" / "splits" / "ravi"


def _folder(tmp_path: Path, classes: int = 6, per_class: int = 4) -> tuple[Path, Path]:
    images, splits = tmp_path / "images", tmp_path / "splits"
    images.mkdir()
    splits.mkdir()
    rng = np.random.default_rng(0)
    for split in mi.SPLITS:
        rows = ["filename,label"]
        for c in range(classes):
            label = f"n{split}{c:05d}"
            for i in range(per_class):
                name = f"{label}{i:08d}.jpg"
                size = (int(rng.integers(60, 120)), int(rng.integers(60, 120)))
                pixels = np.full((*size, 3), 40 * c, dtype=np.uint8)
                Image.fromarray(pixels).save(images / name)
                rows.append(f"{name},{label}")
        (splits / f"{split}.csv").write_text("\n".join(rows) + "\n")
    return images, splits


def test_tiny_folder_gives_episodes(tmp_path: Path) -> None:
    images, splits = _folder(tmp_path)
    data = mi.load_miniimagenet("test", images=images, splits=splits)
    assert data.images.shape == (6, 4, 3, 84, 84) and data.images.dtype == torch.uint8
    tasks = mi.MiniImagenetTasks(data, n_way=5, k_shot=1, k_query=2)
    batch = tasks.sample(3, torch.Generator().manual_seed(0))
    assert batch.x_support.shape == (3, 5, 3, 84, 84) and batch.x_query.shape == (3, 10, 3, 84, 84)
    # every image of a class is one colour: the label says which class it came from
    colour = (batch.x_query[:, :, 0, 0, 0] * 255).round() / 40
    chosen = batch.info["classes"].gather(1, batch.y_query)
    assert torch.equal(colour.long(), chosen)
    first = list(mi.fixed_tasks(data, n_way=5, k_shot=1, k_query=2, num_tasks=4, chunk=3))
    again = list(mi.fixed_tasks(data, n_way=5, k_shot=1, k_query=2, num_tasks=4, chunk=3))
    assert [b.num_tasks for b in first] == [3, 1]
    assert all(torch.equal(a.x_query, b.x_query) for a, b in zip(first, again, strict=True))


def test_missing_images_are_named_before_decoding(tmp_path: Path) -> None:
    images, splits = _folder(tmp_path)
    victim = sorted(images.iterdir())[5]
    victim.unlink()
    with pytest.raises(MissingDataError, match=rf"1 of the images .* e\.g\. {victim.name}"):
        mi.load_miniimagenet(
            "train" if "train" in victim.name else "test" if "test" in victim.name else "val",
            images=images,
            splits=splits,
        )
    with pytest.raises(ValueError, match="split must be one of"):
        mi.load_miniimagenet("training", images=images, splits=splits)


def test_a_malformed_split_file_is_a_clear_error(tmp_path: Path) -> None:
    images, splits = _folder(tmp_path)
    (splits / "val.csv").write_text("name,class\nx.jpg,n1\n")
    with pytest.raises(DataError, match="header 'filename,label'"):
        mi.load_miniimagenet("val", images=images, splits=splits)
    (splits / "val.csv").write_text("filename,label\n../x.jpg,n1\n")
    with pytest.raises(DataError, match="line 2"):
        mi.load_miniimagenet("val", images=images, splits=splits)


@pytest.mark.skipif(not SHARED.is_dir(), reason="no shared copy of the Ravi split CSVs")
def test_the_ravi_split_is_64_16_20_classes_of_600() -> None:
    sizes = {s: mi.read_split(SHARED / f"{s}.csv") for s in mi.SPLITS}
    assert {s: len(v) for s, v in sizes.items()} == {"train": 64, "val": 16, "test": 20}
    assert all(len(files) == 600 for v in sizes.values() for files in v.values())
    classes = [set(v) for v in sizes.values()]
    assert not (classes[0] & classes[1] or classes[0] & classes[2] or classes[1] & classes[2])


def _data_folder(tmp_path: Path) -> Path:
    """A generated miniImageNet laid out as in the data folder (splits/ravi/, images/)."""
    root = tmp_path / "data" / "miniimagenet"
    root.mkdir(parents=True)
    _folder(root, classes=5, per_class=16)
    (root / "splits").rename(root / "ravi")
    (root / "splits").mkdir()
    (root / "ravi").rename(root / "splits" / "ravi")
    return root


def test_meta_learner_lstm_trains_on_a_tiny_miniimagenet(tmp_path: Path, monkeypatch) -> None:
    """The registered paper experiment, at the smoke profile, on a generated folder: the
    family reads the CSVs and images from the data folder and the run stores a result."""
    from learntolearn.catalogue import experiment, run

    _data_folder(tmp_path)
    monkeypatch.setenv("LEARNTOLEARN_DATA", str(tmp_path / "data"))
    monkeypatch.setenv("LEARNTOLEARN_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("LEARNTOLEARN_RESULTS", str(tmp_path / "results"))
    monkeypatch.delenv("LEARNTOLEARN_MINIIMAGENET", raising=False)
    config = experiment("miniimagenet/meta-lstm-5w1s", "smoke").with_(
        iterations=2,
        eval_tasks=3,
        milestone_every=None,
        inner_steps=2,
        eval_steps=2,
        test_steps=2,
    )
    result = run(config, device="cpu", progress=False)
    curve = result.curve("non-transductive")
    assert len(curve["mean"]) == 3 and all(0 <= v <= 1 for v in curve["mean"])


def test_a_missing_test_image_is_refused_before_training(tmp_path: Path, monkeypatch) -> None:
    """The test split's files are checked before the first iteration, not after training."""
    from learntolearn.catalogue import experiment, run
    from learntolearn.data.verified import MissingDataError

    root = _data_folder(tmp_path)
    test_csv = (root / "splits" / "ravi" / "test.csv").read_text().splitlines()
    (root / "images" / test_csv[1].split(",")[0]).unlink()
    monkeypatch.setenv("LEARNTOLEARN_DATA", str(tmp_path / "data"))
    monkeypatch.setenv("LEARNTOLEARN_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("LEARNTOLEARN_RESULTS", str(tmp_path / "results"))
    monkeypatch.delenv("LEARNTOLEARN_MINIIMAGENET", raising=False)
    monkeypatch.setattr("learntolearn.fewshot.runs.train", lambda *a, **k: pytest.fail("trained"))
    config = experiment("miniimagenet/meta-lstm-5w1s", "smoke")
    with pytest.raises(MissingDataError, match=r"test\.csv lists are not in"):
        run(config, device="cpu", progress=False)
