"""MNIST (LeCun, Bottou, Bengio & Haffner 1998), through ``torchvision.datasets.MNIST``.

The optimizee of "Learning to learn by gradient descent by gradient descent" (Andrychowicz et
al., NIPS 2016, Sec. 3.2): 60 000 training and 10 000 test images of 28x28 handwritten digits.
torchvision reads the four official IDX files and checks each against its MD5. The files are
looked for in ``data_dir()/mnist`` (``LEARNTOLEARN_DATA``), then in the cache; found ones are
verified (torchvision's MD5, and ``SHA256SUMS`` beside them if it lists them) and copied where
torchvision expects them, ``cache_dir()/mnist/MNIST/raw``, whose files are checked against the
same MD5s before torchvision reads them; missing ones torchvision downloads from its official
mirrors, checking the same MD5s.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import io
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor
from torchvision.datasets import MNIST

from learntolearn.data.verified import REMEDY, DataError, MissingDataError, check_digest, folders
from learntolearn.io import atomic_write
from learntolearn.paths import cache_dir

__all__ = ["Digits", "flat_digits", "load_mnist"]


@dataclass(frozen=True, eq=False)
class Digits:
    """One split of MNIST: ``images`` float ``[N, 1, 28, 28]`` in [0, 1], ``labels`` ``[N]``."""

    images: Tensor
    labels: Tensor


def _stage(root: Path) -> list[str]:
    """Copy verified files of the data folder to torchvision's raw folder (once), and check
    the official MD5 of every file there, so that torchvision never finds a damaged one (it
    would try to download it again and report only that); returns the names of the files that
    are in neither."""
    raw, missing = root / "MNIST" / "raw", []
    for name, md5 in MNIST.resources:
        target = raw / name
        for folder in folders("mnist"):
            source = folder / name
            if source.is_file() and source != target:
                check_digest(source, md5)
                if not target.is_file():
                    atomic_write(target, lambda tmp, s=source: shutil.copyfile(s, tmp))
                break
        if target.is_file():
            check_digest(target, md5)
        else:
            missing.append(name)
    return missing


@contextlib.contextmanager
def _exclusive(root: Path) -> Iterator[None]:
    """Held while a process stages and extracts the files: torchvision writes the extracted
    IDX files in place, so a second process (e.g. a parallel search's worker) waits instead of
    reading a half-written one."""
    root.mkdir(parents=True, exist_ok=True)
    with open(root / ".lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def load_mnist(train: bool = True, *, download: bool = True) -> Digits:
    """The MNIST training (``train=True``) or test split, verified on the way in."""
    root = cache_dir() / "mnist"
    with _exclusive(root):
        return _load(root, train, download)


@functools.lru_cache(maxsize=2)
def flat_digits(train: bool) -> tuple[Tensor, Tensor]:
    """The training or test images as vectors ``[N, 784]``, and their labels, read once per
    process (the MLP optimizees of chapters 7 and 8)."""
    digits = load_mnist(train=train)
    return digits.images.flatten(1), digits.labels


def _one_line(err: BaseException) -> str:
    """``err``'s message with its lines joined, so that none of it is cut off."""
    return " ".join(str(err).split()).rstrip(".")


def _load(root: Path, train: bool, download: bool) -> Digits:
    missing = _stage(root)
    if missing and not download:
        searched = ", ".join(str(f) for f in folders("mnist"))
        raise MissingDataError(
            f"MNIST file {missing[0]} not found; searched {searched}. Set LEARNTOLEARN_DATA to a "
            "folder holding mnist/*-ubyte.gz, or allow the download (download=True)"
        )
    quiet = contextlib.redirect_stdout(io.StringIO())  # torchvision prints each file it checks
    try:
        with quiet:  # with every file staged, torchvision verifies and extracts, offline
            data = MNIST(str(root), train=train, download=True)
    except RuntimeError as err:  # torchvision's download errors span several lines
        raise DataError(f"cannot read MNIST from {root}: {_one_line(err)}. {REMEDY}") from err
    except OSError as err:  # offline
        raise MissingDataError(
            f"MNIST is not in {', '.join(str(f) for f in folders('mnist'))} and downloading it "
            f"failed: {_one_line(err)}. Set LEARNTOLEARN_DATA to a folder holding "
            "mnist/*-ubyte.gz"
        ) from err
    images = data.data.unsqueeze(1).to(torch.float32) / 255.0
    return Digits(images, data.targets.clone())
