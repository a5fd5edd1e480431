"""Time and memory per meta-iteration: ANIL against MAML on the same tasks.

ANIL (Raghu et al., ICLR 2020) adapts only the head in the inner loop; MAML (Finn et al. 2017)
adapts every parameter. Both use the registry's Omniglot protocol (network, inner steps and
step size, meta-batch) for the chosen setting; each round samples one meta-batch and runs one
forward + backward pass of both methods on it, in alternating order (interleaved trials, so a
load spike on a shared machine hits both). Reported: the median ms per meta-iteration of each,
the median over rounds of the per-round time ratio MAML/ANIL, and the exact bytes autograd
saves for the backward pass (``diagnostics.step_cost``). On the CPU both run under the library's
CPU settings (one thread, denormals flushed).

Run: ``python benchmarks/anil_step.py --setting 20w1s --rounds 10``.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from learntolearn.analysis.meta_gradients import step_cost
from learntolearn.catalogue import experiment
from learntolearn.experiments.device import cpu_numerics, resolve_device
from learntolearn.fewshot.runs import build


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--setting", default="5w1s", choices=["5w1s", "5w5s", "20w1s", "20w5s"])
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()
    dev = resolve_device(args.device)
    cpu_numerics(dev)
    setups = {
        m: build(experiment(f"omniglot/{m}-{args.setting}", "paper"), dev) for m in ("maml", "anil")
    }
    meta_batch = experiment(f"omniglot/maml-{args.setting}", "paper").meta_batch
    gen = torch.Generator(dev).manual_seed(0)
    times: dict[str, list[float]] = {m: [] for m in setups}
    for r in range(args.rounds + 1):  # round 0 warms up
        batch = setups["maml"].tasks.sample(meta_batch, gen)
        for m in sorted(setups, reverse=r % 2 == 1):
            s = setups[m]
            params = {k: v.detach().requires_grad_() for k, v in s.params.items()}
            if dev.type == "cuda":
                torch.cuda.synchronize(dev)
            start = time.perf_counter()
            s.method.loss(params, batch).backward()
            if dev.type == "cuda":
                torch.cuda.synchronize(dev)
            if r:
                times[m].append(time.perf_counter() - start)
    ratio = statistics.median(a / b for a, b in zip(times["maml"], times["anil"], strict=True))
    saved = {
        m: step_cost(s.method.loss, s.params, batch, repeats=1)["saved_bytes"]
        for m, s in setups.items()
    }
    ms = {m: f"{1000 * statistics.median(t):.0f}" for m, t in times.items()}
    print(
        "| setting | device | meta-batch | MAML ms | ANIL ms | MAML/ANIL time | MAML/ANIL memory |"
    )
    print("|---|---|---|---|---|---|---|")
    print(
        f"| {args.setting} | {dev} ({torch.get_num_threads()} threads) | {meta_batch} | "
        f"{ms['maml']} | {ms['anil']} | {ratio:.2f}x | {saved['maml'] / saved['anil']:.2f}x |"
    )


if __name__ == "__main__":
    main()
