"""A realistic new method is one algorithm file and three entries (issue 21).

The test adds, to a copy of the package, a metric method with a config field of its own, a
network of its own and an experiment in the catalogue: scaled cosine centroids (the cosine
similarity to each class's mean embedding times a fixed scale, as in Chen et al. 2019's
Baseline++ and Gidaris & Komodakis 2018), on a 32-filter conv4 that no other method uses. It
trains the new experiment with the command line, at the smoke profile, and counts the files
the method took.
"""

from __future__ import annotations

import filecmp
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"

METHOD = '''"""Scaled cosine centroids: logits s · cos(f_φ(x), c_k), with c_k the class's mean
embedding (Eq. 1 of Snell et al. 2017) and a fixed scale s (Chen et al. 2019, Sec. 3.2)."""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor

from learntolearn.methods.metric import MetricLearner, one_hot_support
from learntolearn.methods.prototypical import negative_distance, prototypes
from learntolearn.objective import Params
from learntolearn.tasks import TaskBatch


@dataclass(frozen=True)
class ScaledCosine(MetricLearner):
    scale: float = 10.0

    def compare(
        self, params: Params, batch: TaskBatch, support: Tensor, query: Tensor, mode: str
    ) -> Tensor:
        centres = prototypes(support, one_hot_support(batch, support.dtype))
        return self.scale * negative_distance(query, centres, "cosine")
'''

# (file, the line the addition follows, the addition)
EDITS = [
    (
        "fewshot/config.py",
        "    milestone_every: int | None = None\n",
        "    scale: float | None = None  # scaled-cosine: the cosine's scale\n",
    ),
    (
        "fewshot/method_table.py",
        "from learntolearn.methods.siamese import Siamese\n",
        "from learntolearn.methods.scaled_cosine import ScaledCosine\n"
        "from learntolearn.models.networks import ConvNet\n",
    ),
    (
        "fewshot/method_table.py",
        "METHODS: dict[str, MethodEntry] = {\n",
        '    "scaled-cosine": MethodEntry(\n'
        '        families=("omniglot",),\n'
        "        build=lambda c, o: ScaledCosine(o, c.scale),\n"
        '        needs=dict((("scale", _positive),)),\n'
        '        models=("conv4-32",),\n'
        '        networks={"conv4-32": lambda c: ConvNet(None, pool=True, hidden=32)},\n'
        "    ),\n",
    ),
    (
        "catalogue/fewshot.py",
        "_REGISTRY: dict[str, tuple[str, Callable[[str], ExperimentConfig]]] = {\n",
        '    "omniglot/scaled-cosine-5w1s": (\n'
        '        "metric-ablation",\n'
        '        lambda profile: _metric("matching", 5, 1)(profile).with_(\n'
        '            name="omniglot/scaled-cosine-5w1s",\n'
        '            method="scaled-cosine",\n'
        "            distance=None,\n"
        '            model="conv4-32",\n'
        "            scale=10.0,\n"
        "        ),\n"
        "    ),\n",
    ),
]


def changed_files(before: Path, after: Path) -> list[str]:
    """Files of ``after`` that are new or differ from ``before`` (caches left out)."""
    out = []
    for path in sorted(after.rglob("*.py")):
        rel = path.relative_to(after)
        old = before / rel
        if not old.is_file() or not filecmp.cmp(old, path, shallow=False):
            out.append(str(rel))
    return out


@pytest.mark.slow
def test_a_realistic_method_is_one_file_and_three_entries(tmp_path, real_env_vars):
    package = tmp_path / "src" / "learntolearn"
    shutil.copytree(SRC / "learntolearn", package, ignore=shutil.ignore_patterns("__pycache__"))
    (package / "methods" / "scaled_cosine.py").write_text(METHOD)
    for file, anchor, addition in EDITS:
        path = package / file
        text = path.read_text()
        assert text.count(anchor) == 1, f"{file}: the anchor moved: {anchor!r}"
        path.write_text(text.replace(anchor, anchor + addition))
    env = {
        **os.environ,
        **real_env_vars,
        "PYTHONPATH": str(tmp_path / "src"),
        "LEARNTOLEARN_RESULTS": str(tmp_path / "results"),
        "OMP_NUM_THREADS": "1",
    }
    argv = ["train", "omniglot/scaled-cosine-5w1s", "--profile", "smoke", "--quiet"]
    done = subprocess.run(
        [sys.executable, "-m", "learntolearn", *argv, "--device", "cpu"],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr
    assert "transductive K= 1 accuracy" in done.stdout
    assert changed_files(SRC / "learntolearn", package) == [
        "catalogue/fewshot.py",
        "fewshot/config.py",
        "fewshot/method_table.py",
        "methods/scaled_cosine.py",
    ]
