"""One run split over two ranks with torch.distributed (gloo) equals the one-process run.

Every rank draws the whole meta-batch and keeps its share of the tasks, so both runs see the
same tasks and differ only in the order of floating-point sums. Adam turns the rounding noise
of a parameter whose exact gradient is zero into whole steps of size ``meta_lr``: the
convolution biases before batch norm (which removes any per-channel shift) are such
parameters, so they are left out of the Omniglot comparison.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from learntolearn.experiments.registry import experiment
from learntolearn.experiments.store import ResultStore


def train(tmp_path: Path, name: str, ranks: int, env: dict[str, str]) -> ResultStore:
    store = tmp_path / f"ranks{ranks}"
    cmd = [sys.executable, "-m", "learntolearn", "train", name, "--profile", "smoke", "--quiet"]
    if ranks > 1:
        cmd = [sys.executable, "-m", "torch.distributed.run", f"--nproc-per-node={ranks}"]
        cmd += ["-m", "learntolearn", "train", name, "--profile", "smoke", "--quiet"]
    env = {**os.environ, **env, "LEARNTOLEARN_RESULTS": str(store), "OMP_NUM_THREADS": "1"}
    env["LEARNTOLEARN_CACHE"] = env.get("LEARNTOLEARN_CACHE") or str(tmp_path / "cache")
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return ResultStore(store)


def compare(tmp_path: Path, name: str, env: dict[str, str], skip: str | None = None) -> None:
    cfg = experiment(name, "smoke")
    one = train(tmp_path, name, 1, env).get(cfg)
    two = train(tmp_path, name, 2, env).get(cfg)
    assert one is not None and two is not None
    a, b = one.params(), two.params()
    scale = max(v.abs().max().item() for v in a.values())
    for k in a:
        if skip is None or skip not in k:
            assert (a[k] - b[k]).abs().max().item() <= 1e-4 * scale, k
    h1, h2 = one.metrics["train"]["history"], two.metrics["train"]["history"]
    assert [i for i, _ in h1] == [i for i, _ in h2]
    assert torch.allclose(torch.tensor(h1), torch.tensor(h2), rtol=1e-5, atol=0)


def test_two_ranks_equal_one_sinusoid(tmp_path):
    """Sinusoid MAML, meta-batch 5 split 3 + 2 (uneven shares are weighted by their size)."""
    compare(tmp_path, "sinusoid/maml-k5", {})


def test_two_ranks_equal_one_omniglot(tmp_path, real_env_vars):
    """Omniglot MAML with the convolutional network and task batch norm."""
    compare(tmp_path, "omniglot/maml-5w1s", real_env_vars, skip=".bias")


@pytest.mark.parametrize("size", [1, 2, 3, 5])
def test_shards_cover_the_meta_batch(size):
    from learntolearn.experiments.distributed import shard
    from learntolearn.tasks import TaskBatch

    x = torch.arange(5.0).view(5, 1, 1)
    batch = TaskBatch(x, x, x, x)
    parts = [shard(batch, r, size).x_support.flatten().tolist() for r in range(size)]
    assert [v for p in parts for v in p] == [0.0, 1.0, 2.0, 3.0, 4.0]
    assert max(map(len, parts)) - min(map(len, parts)) <= 1
    with pytest.raises(ValueError, match="cannot be split over 6 ranks"):
        shard(batch, 0, 6)
