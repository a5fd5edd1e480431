"""Lake's 20 official one-shot classification runs on Omniglot (Lake et al., Science 2015).

Each run is a 20-way one-shot problem within one alphabet of the evaluation set (the 20 runs
use ten of its alphabets, two runs each; ``tests/test_omniglot_runs.py`` checks it): 20
training images (one drawing of each of 20 characters) and 20 test images (another drawing of
each), 400 test trials in all. Koch et al. (2015, Sec. 4.3, Table 2) report 92.0% on them
with a convolutional Siamese network. ``all_runs.zip`` (``one-shot-classification/`` of the
Omniglot data folder, or downloaded from Lake's repository) is verified (checksum, member
names, counts) and read from the archive, the images decoded exactly like the rest of Omniglot
(:func:`~learntolearn.data.omniglot.decode_image`, 28x28).
"""

from __future__ import annotations

import re
import zipfile

import numpy as np
import torch

from learntolearn.data.omniglot import decode_image
from learntolearn.data.verified import REMEDY, DataError, check_digest, is_unsafe, locate
from learntolearn.tasks import TaskBatch

__all__ = ["RUNS", "lake_runs"]

RUNS = 20
_WAY = 20
_RELPATH = "one-shot-classification/all_runs.zip"
_URL = (
    "https://github.com/brendenlake/omniglot/raw/master/python/one-shot-classification/all_runs.zip"
)
_MD5 = "e8996daecdf12afeeb4a53a179f06b19"
_LINE = re.compile(r"(run\d\d)/test/item(\d\d)\.png\s+(run\d\d)/training/class(\d\d)\.png")


def lake_runs(*, download: bool = True) -> TaskBatch:
    """The 20 runs as one batch of 20 tasks: ``x_support [20, 20, 1, 28, 28]`` (run r's
    training images, ``class01`` .. ``class20`` as labels 0..19), ``x_query [20, 20, 1, 28, 28]``
    (its test items in order) with ``y_query`` the label of the matching training image, from
    the run's ``class_labels.txt``. Float32 in [0, 1], white background."""
    path = locate("omniglot", _RELPATH, _URL, _MD5, download)
    check_digest(path, _MD5)
    support = np.empty((RUNS, _WAY, 28, 28), dtype=np.uint8)
    query = np.empty_like(support)
    labels = np.empty((RUNS, _WAY), dtype=np.int64)
    with zipfile.ZipFile(path) as zf:
        bad = [i.filename for i in zf.infolist() if is_unsafe(i)]
        if bad:
            raise DataError(f"refusing {path}: member {bad[0]!r} is unsafe. {REMEDY}")
        try:
            for r in range(RUNS):
                run = f"run{r + 1:02d}"
                lines = zf.read(f"{run}/class_labels.txt").decode().split("\n")
                pairs = [_LINE.fullmatch(line.strip()) for line in lines if line.strip()]
                if len(pairs) != _WAY or not all(
                    m is not None and m[1] == m[3] == run for m in pairs
                ):
                    raise DataError(f"{path}: {run}/class_labels.txt is not 20 lines of its run")
                items = sorted(int(m[2]) for m in pairs)  # type: ignore[index]
                if items != list(range(1, _WAY + 1)):
                    raise DataError(f"{path}: {run}/class_labels.txt does not name item01..20")
                for c in range(_WAY):
                    support[r, c] = decode_image(zf.read(f"{run}/training/class{c + 1:02d}.png"))
                for m in pairs:
                    item = int(m[2]) - 1
                    query[r, item] = decode_image(zf.read(f"{run}/test/item{m[2]}.png"))
                    labels[r, item] = int(m[4]) - 1
        except (KeyError, zipfile.BadZipFile, OSError, ValueError) as err:
            raise DataError(f"{path} is damaged or incomplete ({err}). {REMEDY}") from err
    for r in range(RUNS):
        if sorted(labels[r].tolist()) != list(range(_WAY)):
            raise DataError(f"{path}: run{r + 1:02d}'s test items do not match each class once")

    def images(a: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(a).float().div_(255).unsqueeze(2)

    return TaskBatch(
        x_support=images(support),
        y_support=torch.arange(_WAY).repeat(RUNS, 1),
        x_query=images(query),
        y_query=torch.from_numpy(labels),
        info={"classes": torch.arange(_WAY).repeat(RUNS, 1)},
    )
