"""miniImageNet (Vinyals et al. 2016) with the class split of Ravi & Larochelle (ICLR 2017).

100 ImageNet classes of 600 images each, split 64 / 16 / 20 into meta-training, validation and
meta-test classes by ``splits/ravi/{train,val,test}.csv`` (rows ``filename,label``, as
published with the authors' code). The images (about 3 GB, derived from ImageNet) cannot be
downloaded by this project: a user who has them points ``LEARNTOLEARN_MINIIMAGENET`` at the
folder holding them (every file the CSVs name, e.g. ``n0153282900000005.jpg``), or puts them
in ``<data>/miniimagenet/images/``. Every listed file is checked to exist before any is
decoded; images are resized to 84x84 RGB (the papers' size), as uint8.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from learntolearn.data.episodes import ClassImageTasks
from learntolearn.data.verified import DataError, MissingDataError, folders
from learntolearn.tasks import TaskBatch

__all__ = [
    "SPLITS",
    "MiniImagenet",
    "MiniImagenetTasks",
    "fixed_tasks",
    "listed_images",
    "load_miniimagenet",
]

SPLITS = ("train", "val", "test")
SIZE = 84


@dataclass(frozen=True, eq=False)
class MiniImagenet:
    """One split: ``images`` uint8 ``[classes, examples, 3, 84, 84]`` and the class names."""

    images: Tensor
    classes: tuple[str, ...]


def _find(relpath: str) -> Path | None:
    for folder in folders("miniimagenet"):
        if (folder / relpath).exists():
            return folder / relpath
    return None


def read_split(path: Path) -> dict[str, list[str]]:
    """The files of each class of a Ravi split CSV (``filename,label`` rows, each file once), in
    file order."""
    by_class: dict[str, list[str]] = {}
    first_line: dict[str, int] = {}  # file name -> the line that lists it
    with open(path, newline="") as fh:
        rows = csv.reader(fh)
        if next(rows, None) != ["filename", "label"]:
            raise DataError(f"{path} does not start with the header 'filename,label'")
        for i, row in enumerate(rows, start=2):
            if len(row) != 2 or not row[0] or "/" in row[0] or row[0].startswith("."):
                raise DataError(f"{path}, line {i}: expected 'filename,label', got {row!r}")
            if row[0] in first_line:
                raise DataError(
                    f"{path}, line {i}: {row[0]} is listed already on line {first_line[row[0]]}; "
                    "an image may be listed once: remove the duplicate row, or restore the "
                    "published split file"
                )
            first_line[row[0]] = i
            by_class.setdefault(row[1], []).append(row[0])
    if not by_class:
        raise DataError(f"{path} lists no images")
    counts = {len(v) for v in by_class.values()}
    if len(counts) != 1:
        raise DataError(f"{path}: classes have different numbers of images ({sorted(counts)})")
    return by_class


def listed_images(
    split: str, *, images: Path | None = None, splits: Path | None = None
) -> tuple[Path, dict[str, list[str]]]:
    """The image folder and the ``split``'s files by class, every listed file checked to be
    there (nothing is decoded: a cheap check before hours of training)."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    csv_path = (splits / f"{split}.csv") if splits else _find(f"splits/ravi/{split}.csv")
    if csv_path is None or not csv_path.is_file():
        raise MissingDataError(
            f"the Ravi split file {split}.csv is not in "
            f"{', '.join(str(f / 'splits/ravi') for f in folders('miniimagenet'))}"
        )
    env = os.environ.get("LEARNTOLEARN_MINIIMAGENET", "").strip()
    folder = images or (Path(env) if env else _find("images"))
    if folder is None or not Path(folder).is_dir():
        raise MissingDataError(
            "no miniImageNet image folder: set LEARNTOLEARN_MINIIMAGENET to the folder of the "
            "JPEGs that the Ravi split CSVs name (they cannot be downloaded here)"
        )
    folder = Path(folder)
    by_class = read_split(csv_path)
    missing = [f for files in by_class.values() for f in files if not (folder / f).is_file()]
    if missing:
        raise MissingDataError(
            f"{len(missing)} of the images {csv_path.name} lists are not in {folder}, e.g. "
            f"{missing[0]}"
        )
    return folder, by_class


def load_miniimagenet(
    split: str, *, images: Path | None = None, splits: Path | None = None
) -> MiniImagenet:
    """The ``split`` classes, decoded from the image folder (see the module docstring)."""
    folder, by_class = listed_images(split, images=images, splits=splits)
    names = sorted(by_class)
    out = np.empty((len(names), len(by_class[names[0]]), SIZE, SIZE, 3), dtype=np.uint8)
    for c, name in enumerate(names):
        for i, file in enumerate(by_class[name]):
            try:
                with Image.open(folder / file) as im:
                    im = im.convert("RGB").resize((SIZE, SIZE), Image.Resampling.LANCZOS)
                    out[c, i] = np.asarray(im)
            except OSError as err:
                raise DataError(f"cannot decode {folder / file}: {err}") from err
    return MiniImagenet(torch.from_numpy(out).permute(0, 1, 4, 2, 3).contiguous(), tuple(names))


class MiniImagenetTasks(ClassImageTasks):
    """N-way K-shot tasks from the classes of one split (Ravi & Larochelle, Sec. 4: 5-way
    1-shot and 5-shot with 15 queries per class)."""

    def __init__(
        self,
        data: MiniImagenet,
        *,
        n_way: int,
        k_shot: int,
        k_query: int,
        device: torch.device | str = "cpu",
    ) -> None:
        self.check_sizes(n_way, k_shot, k_query, *data.images.shape[:2], "miniImageNet")
        self.images = data.images.to(device)


def fixed_tasks(
    data: MiniImagenet,
    *,
    n_way: int,
    k_shot: int,
    k_query: int,
    num_tasks: int = 600,
    seed: int = 2017,
    chunk: int = 50,
) -> Iterator[TaskBatch]:
    """Seeded meta-test tasks, the same for every method and rerun, in chunks."""
    tasks = MiniImagenetTasks(data, n_way=n_way, k_shot=k_shot, k_query=k_query)
    g = torch.Generator().manual_seed(seed)
    for start in range(0, num_tasks, chunk):
        yield tasks.sample(min(chunk, num_tasks - start), g)
