"""What one training step of Koch et al.'s Siamese network costs here, against the book's.

Koch, Zemel & Salakhutdinov (2015, Sec. 3.1) train a 38.95M-parameter network on 105x105
Omniglot images; the book's Siamese network (``omniglot/siamese-*``, chapter 6) is the conv4-64
embedding on 28x28 images (112,001 parameters). Both are timed on the same training step of the
book's paper protocol: one meta-batch of the ``omniglot/siamese-5w1s`` paper config (4 episodes
of 8-way 1-shot with one query per class: 256 same/different pairs of 64 images), the library's
:class:`~learntolearn.methods.siamese.Siamese` loss, backward and an Adam step
(:class:`~learntolearn.fewshot.training.MetaStep`, as training runs it). For Koch's network
the images are resized to 105x105 (bilinear; the cost does not depend on the pixels).

Interleaved: each round runs both steps once, in alternating order; a warm-up round is dropped.
Reported: the median seconds per step of each, the median of the per-round ratios, the
parameter counts, and what Koch's schedule would cost at that speed (one thread, the library's
CPU settings). ``--save`` stores every per-round time with the provenance (machine, torch,
date, commit, load) in ``results/benchmarks/koch-siamese.json`` with its SHA-256, which chapter
6 reads (:func:`learntolearn.reporting.costs.load_koch`).
Run: ``python benchmarks/koch_siamese.py --rounds 5 --save``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F

from learntolearn.catalogue import experiment
from learntolearn.experiments.device import cpu_numerics
from learntolearn.experiments.provenance import device_name, git_state
from learntolearn.experiments.training import RunSettings
from learntolearn.fewshot.runs import build
from learntolearn.fewshot.training import MetaStep, OuterLoop
from learntolearn.io import save_checked_json
from learntolearn.methods.siamese import Siamese
from learntolearn.models.metric_networks import KochEmbedding, koch_siamese
from learntolearn.objective import Objective, init_params
from learntolearn.reporting.costs import (
    KOCH_EPOCHS,
    KOCH_FORMAT,
    KOCH_PAIRS,
    KochCost,
    koch_path,
    load_koch,
)
from learntolearn.tasks import TaskBatch


def resized(batch: TaskBatch, size: int) -> TaskBatch:
    """``batch`` with every image resized to ``size`` x ``size``."""

    def up(x: torch.Tensor) -> torch.Tensor:
        flat = F.interpolate(x.flatten(0, 1), size=(size, size), mode="bilinear")
        return flat.unflatten(0, x.shape[:2])

    return TaskBatch(up(batch.x_support), batch.y_support, up(batch.x_query), batch.y_query)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--save", action="store_true", help="store the result for the book")
    args = parser.parse_args()
    dev = torch.device("cpu")
    cpu_numerics(dev)
    config = experiment("omniglot/siamese-5w1s", "paper")
    setup = build(config, dev)
    torch.manual_seed(0)
    koch = koch_siamese()
    method = Siamese(Objective(koch, setup.method.objective.loss))
    run = RunSettings(key="benchmark", iterations=1, seed=0, device=dev, progress=False)
    outer = OuterLoop("adam", config.meta_lr)

    def sample(size: int | None) -> Callable[[torch.Generator], TaskBatch]:
        def draw(gen: torch.Generator) -> TaskBatch:
            batch = setup.prepare(setup.tasks.sample(config.meta_batch, gen))
            return batch if size is None else resized(batch, size)

        return draw

    steps = {
        "book (conv4-64, 28x28)": MetaStep(setup.method, setup.params, sample(None), outer, run),
        "Koch et al. (105x105)": MetaStep(
            method, init_params(koch), sample(KochEmbedding.size), outer, run
        ),
    }
    times: dict[str, list[float]] = {name: [] for name in steps}
    load_before = os.getloadavg()[0]
    for r in range(args.rounds + 1):  # round 0 warms up
        for name in sorted(steps, reverse=r % 2 == 1):
            start = time.perf_counter()
            steps[name].step(r)
            if r:
                times[name].append(time.perf_counter() - start)
    book, paper = list(steps)
    pairs = config.meta_batch * (config.train_way or 0) ** 2  # query x support pairs per step
    git = git_state()
    record = {
        "format": KOCH_FORMAT,
        "machine": device_name(dev),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "commit": git["commit"],
        "dirty": git["dirty"],
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "load_1min": {"before": load_before, "after": os.getloadavg()[0]},
        "rounds": args.rounds,
        "pairs_per_step": pairs,
        "book": {
            "parameters": sum(p.numel() for p in steps[book].params.values()),
            "seconds": times[book],
        },
        "koch": {
            "parameters": sum(p.numel() for p in steps[paper].params.values()),
            "seconds": times[paper],
        },
    }
    if args.save:
        save_checked_json(koch_path(), record)
    result = load_koch() if args.save else KochCost(record)  # stored: read back verified
    print(result.provenance())
    print("| network | parameters | s per step (median) | ratio |")
    print("|---|---|---|---|")
    print(f"| {book} | {result.book_parameters:,} | {result.book_seconds:.3f} | 1.0 |")
    print(
        f"| {paper} | {result.koch_parameters:,} | {result.koch_seconds:.3f} | {result.ratio:.1f} |"
    )
    print(
        f"Koch's schedule ({KOCH_EPOCHS} epochs of {KOCH_PAIRS:,} pairs) at this speed: "
        f"{result.schedule_hours:,.0f} CPU-hours ({pairs} pairs per step)"
    )


if __name__ == "__main__":
    main()
