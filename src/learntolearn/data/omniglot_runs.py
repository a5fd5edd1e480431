"""Lake's 20 official one-shot classification runs on Omniglot (Lake et al., Science 2015).

Each run is a 20-way one-shot problem within one alphabet of the evaluation set (the 20 runs
use ten of its alphabets, two runs each; ``tests/test_omniglot_runs.py`` checks it): 20
training images (one drawing of each of 20 characters) and 20 test images (another drawing of
each), 400 test trials in all. Koch et al. (2015, Sec. 4.3, Table 2) report 92.0% on them
with a convolutional Siamese network. ``all_runs.zip`` (``one-shot-classification/`` of the
Omniglot data folder, or downloaded from Lake's repository) is verified (checksum, member
names, counts) and read from the archive, the images decoded exactly like the rest of Omniglot
(:func:`~learntolearn.data.omniglot.decode_image`, 28x28). The file is only ever used as
published, so its official MD5 is always checked (a ``SHA256SUMS`` line cannot replace it);
:func:`check_lake_runs` verifies it all up front, before a long training run.
"""

from __future__ import annotations

import re
import zipfile
from pathlib import Path

import numpy as np
import torch

from learntolearn.data.omniglot import decode_image
from learntolearn.data.verified import (
    REMEDY,
    DataError,
    check_digest,
    is_unsafe,
    locate,
    open_archive,
)
from learntolearn.tasks import TaskBatch

__all__ = ["RUNS", "check_lake_runs", "lake_runs"]

RUNS = 20
_WAY = 20
_RELPATH = "one-shot-classification/all_runs.zip"
_URL = (
    "https://github.com/brendenlake/omniglot/raw/master/python/one-shot-classification/all_runs.zip"
)
_MD5 = "e8996daecdf12afeeb4a53a179f06b19"
# Support images [(runs,) way, 28, 28], query images (the same) and query labels [(runs,) way].
_Runs = tuple[np.ndarray, np.ndarray, np.ndarray]
_LINE = re.compile(r"(run\d\d)/test/item(\d\d)\.png\s+(run\d\d)/training/class(\d\d)\.png")


def _locate(download: bool) -> Path:
    """The archive, found (or downloaded) and checked against the official MD5."""
    path = locate("omniglot", _RELPATH, _URL, _MD5, download)
    check_digest(path, _MD5)
    return path


def _read_run(zf: zipfile.ZipFile, path: Path, run: str, size: int = 28) -> _Runs:
    """One run's support images, query images and query labels, after checking that its
    ``class_labels.txt`` names each of its 20 test items once."""
    lines = zf.read(f"{run}/class_labels.txt").decode().split("\n")
    found = [_LINE.fullmatch(line.strip()) for line in lines if line.strip()]
    pairs = [m for m in found if m is not None and m[1] == m[3] == run]
    if len(found) != _WAY or len(pairs) != _WAY:
        raise DataError(f"{path}: {run}/class_labels.txt is not 20 lines of its run. {REMEDY}")
    pairs.sort(key=lambda m: m[2])
    if [int(m[2]) for m in pairs] != list(range(1, _WAY + 1)):
        raise DataError(f"{path}: {run}/class_labels.txt does not name item01..20. {REMEDY}")
    support = [
        decode_image(zf.read(f"{run}/training/class{c:02d}.png"), size) for c in range(1, 21)
    ]
    query = [decode_image(zf.read(f"{run}/test/item{m[2]}.png"), size) for m in pairs]
    labels = np.array([int(m[4]) - 1 for m in pairs], dtype=np.int64)
    if sorted(labels.tolist()) != list(range(_WAY)):
        raise DataError(f"{path}: {run}'s test items do not match each class once. {REMEDY}")
    return np.stack(support), np.stack(query), labels


def _read(path: Path, size: int = 28) -> _Runs:
    """Support images, query images and query labels of the 20 runs, read from the archive
    after checking its member names and every run's ``class_labels.txt``."""
    with open_archive(path) as zf:
        bad = [i.filename for i in zf.infolist() if is_unsafe(i)]
        if bad:
            raise DataError(f"refusing {path}: member {bad[0]!r} is unsafe. {REMEDY}")
        try:
            runs = [_read_run(zf, path, f"run{r + 1:02d}", size) for r in range(RUNS)]
        except (KeyError, zipfile.BadZipFile, OSError, ValueError) as err:
            raise DataError(f"{path} is damaged or incomplete ({err}). {REMEDY}") from err
    support, query, labels = (np.stack(parts) for parts in zip(*runs, strict=True))
    return support, query, labels


def check_lake_runs(*, download: bool = True) -> Path:
    """Verify the 20 runs as :func:`lake_runs` reads them (official MD5, member names, every
    ``class_labels.txt`` and image), in about a second, and return the archive's path: a run
    tested on them calls it before training, so a missing or damaged archive is refused first.

    Raises :class:`~learntolearn.data.verified.MissingDataError` when the archive is absent and
    not downloaded, :class:`~learntolearn.data.verified.DataError` when it fails a check.
    """
    path = _locate(download)
    _read(path)
    return path


def lake_runs(*, download: bool = True, size: int = 28) -> TaskBatch:
    """The 20 runs as one batch of 20 tasks: ``x_support [20, 20, 1, 28, 28]`` (run r's
    training images, ``class01`` .. ``class20`` as labels 0..19), ``x_query [20, 20, 1, 28, 28]``
    (its test items in order) with ``y_query`` the label of the matching training image, from
    the run's ``class_labels.txt``. Float32 in [0, 1], white background. Checked as
    :func:`check_lake_runs` says. ``size`` 105: the drawings unresized (Koch et al.)."""
    support, query, labels = _read(_locate(download), size)

    def images(a: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(a).float().div_(255).unsqueeze(2)

    return TaskBatch(
        x_support=images(support),
        y_support=torch.arange(_WAY).repeat(RUNS, 1),
        x_query=images(query),
        y_query=torch.from_numpy(labels),
        info={"classes": torch.arange(_WAY).repeat(RUNS, 1)},
    )
