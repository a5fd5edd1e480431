"""MNIST through torchvision: the shared copy loads, a damaged or missing file is refused."""

from __future__ import annotations

import gzip
import hashlib
import os
from pathlib import Path

import pytest
import torch

from learntolearn.data import mnist
from learntolearn.data.verified import DataError, MissingDataError

SHARED = Path(__file__).parents[2] / "shared" / "data"


def shared_data() -> Path:
    for folder in (os.environ.get("LEARNTOLEARN_DATA", ""), str(SHARED)):
        if folder and (Path(folder) / "mnist" / "t10k-images-idx3-ubyte.gz").is_file():
            return Path(folder)
    pytest.skip("no MNIST copy in $LEARNTOLEARN_DATA or ../shared/data")


def test_the_shared_copy_loads_offline(tmp_path, monkeypatch):
    monkeypatch.setenv("LEARNTOLEARN_DATA", str(shared_data()))
    monkeypatch.setenv("LEARNTOLEARN_CACHE", str(tmp_path))
    test = mnist.load_mnist(train=False, download=False)
    assert test.images.shape == (10_000, 1, 28, 28) and test.labels.shape == (10_000,)
    assert 0 <= test.images.min() < test.images.max() <= 1
    assert set(test.labels.tolist()) == set(range(10))
    again = mnist.load_mnist(train=False, download=False)  # from the staged copy
    assert torch.equal(again.images, test.images)


def test_a_damaged_file_is_refused(tmp_path, monkeypatch):
    src = shared_data() / "mnist"
    data = tmp_path / "data" / "mnist"
    data.mkdir(parents=True)
    lines = []
    for name, _ in mnist.MNIST.resources:
        blob = (src / name).read_bytes()
        lines.append(f"{hashlib.sha256(blob).hexdigest()}  {name}")
        if name.startswith("t10k-labels"):
            blob = gzip.compress(b"\x00" * 100)  # replaced
        (data / name).write_bytes(blob)
    (data / "SHA256SUMS").write_text("\n".join(lines) + "\n")
    monkeypatch.setenv("LEARNTOLEARN_DATA", str(tmp_path / "data"))
    monkeypatch.setenv("LEARNTOLEARN_CACHE", str(tmp_path / "cache"))
    with pytest.raises(DataError, match="damaged or was replaced"):
        mnist.load_mnist(train=False, download=False)


def test_missing_files_are_reported_without_a_download(tmp_path, monkeypatch):
    monkeypatch.setenv("LEARNTOLEARN_DATA", str(tmp_path / "nothing"))
    monkeypatch.setenv("LEARNTOLEARN_CACHE", str(tmp_path / "cache"))
    with pytest.raises(MissingDataError, match="LEARNTOLEARN_DATA"):
        mnist.load_mnist(download=False)
