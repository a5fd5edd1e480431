"""Both cores for one run: torch.distributed ranks against threads, on the training loop itself.

One paper-protocol meta-iteration of a registered experiment (default: Omniglot 5-way 1-shot
MAML, Finn et al. 2017, Sec. 5.2: 32 tasks, one inner step, second order), timed through the
library's own :func:`learntolearn.fewshot.training.train` (sampling, meta-gradient,
all-reduce, Adam), in three layouts:

- one process, one intra-op thread (the library's CPU default);
- one process, two intra-op threads;
- two ranks of one thread each (``torchrun --nproc-per-node 2``, gloo): each rank takes half
  of every meta-batch and the meta-gradients are all-reduced
  (:mod:`learntolearn.experiments.distributed`);
- two runs side by side, one thread each (what the standing queue does with two workers): two
  independent processes at once; their throughput counts both runs' iterations, so its
  "ms/iteration" is the pair's median time per iteration halved.

``--all`` runs the four one after the other as subprocesses and prints a Markdown table with
the ratios against one thread, measured in the same invocation; ``--rounds`` alternates them
that many times (medians reported) so that load changes on a shared machine hit each alike.

    python benchmarks/distributed_step.py --all --iterations 10 --rounds 3
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch


def measure(name: str, profile: str, iterations: int, threads: int, task_chunk: int | None) -> None:
    """Time ``iterations`` training iterations after two untimed ones; rank 0 prints JSON."""
    from learntolearn.catalogue import experiment
    from learntolearn.experiments.device import cpu_numerics
    from learntolearn.experiments.distributed import finish, init_from_env, world
    from learntolearn.experiments.training import RunSettings
    from learntolearn.fewshot.runs import build
    from learntolearn.fewshot.training import train

    cfg = experiment(name, profile)
    dev = init_from_env(torch.device("cpu"))
    cpu_numerics(dev)
    torch.set_num_threads(threads)
    setup = build(cfg, dev)
    outer = setup.entry.outer(cfg)

    def timed(n: int) -> float:
        settings = RunSettings(
            key=cfg.key,
            iterations=n,
            seed=cfg.seed,
            device=dev,
            progress=False,
            task_chunk=task_chunk,
        )
        start = time.perf_counter()
        train(
            setup.method,
            setup.params,
            lambda g: setup.prepare(setup.tasks.sample(cfg.meta_batch, g)),
            outer,
            settings,
        )
        return time.perf_counter() - start

    timed(2)
    seconds = timed(iterations)
    rank, size = world()
    if rank == 0:
        print(json.dumps({"ranks": size, "threads": threads, "s_per_it": seconds / iterations}))
    finish()


LAYOUTS = {
    "1 process, 1 thread": (1, 1),
    "1 process, 2 threads": (1, 2),
    "2 ranks x 1 thread": (2, 1),
    "2 runs side by side x 1 thread": (1, 1),
}
SIDE_BY_SIDE = "2 runs side by side x 1 thread"


def command(ranks: int, threads: int, args: argparse.Namespace) -> list[str]:
    script = str(Path(__file__).resolve())
    common = ["--experiment", args.experiment, "--profile", args.profile]
    common += ["--iterations", str(args.iterations), "--threads", str(threads)]
    if args.task_chunk:
        common += ["--task-chunk", str(args.task_chunk)]
    cmd = [sys.executable, script, *common]
    if ranks > 1:
        cmd = [
            sys.executable,
            "-m",
            "torch.distributed.run",
            f"--nproc-per-node={ranks}",
            script,
            *common,
        ]
    return cmd


def launch(ranks: int, threads: int, args: argparse.Namespace, copies: int = 1) -> float:
    """Seconds per iteration of the layout; with ``copies`` runs at once, the time per
    iteration of all of them together (their median divided by ``copies``)."""
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    procs = [
        subprocess.Popen(command(ranks, threads, args), env=env, stdout=subprocess.PIPE, text=True)
        for _ in range(copies)
    ]
    times = []
    for proc in procs:
        out, _ = proc.communicate()
        if proc.returncode:
            raise subprocess.CalledProcessError(proc.returncode, proc.args, out)
        times.append(json.loads(out.strip().splitlines()[-1])["s_per_it"])
    return statistics.median(times) / copies


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--experiment", default="omniglot/maml-5w1s")
    p.add_argument("--profile", default="paper")
    p.add_argument("--iterations", type=int, default=10)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--task-chunk", type=int)
    p.add_argument("--rounds", type=int, default=1)
    p.add_argument("--all", action="store_true", help="run the four layouts and print a table")
    args = p.parse_args()
    if not args.all:
        measure(args.experiment, args.profile, args.iterations, args.threads, args.task_chunk)
        return
    times: dict[str, list[float]] = {k: [] for k in LAYOUTS}
    for r in range(args.rounds):
        order = list(LAYOUTS)[r % len(LAYOUTS) :] + list(LAYOUTS)[: r % len(LAYOUTS)]
        for layout in order:
            copies = 2 if layout == SIDE_BY_SIDE else 1
            times[layout].append(launch(*LAYOUTS[layout], args, copies))
            print(f"round {r + 1}: {layout}: {1000 * times[layout][-1]:.0f} ms/it", file=sys.stderr)
    base = statistics.median(times["1 process, 1 thread"])
    runs = f"{args.iterations} timed iterations x {args.rounds} rounds"
    print(f"{args.experiment} ({args.profile}), {runs}, torch {torch.__version__}")
    print("| layout | ms/iteration (median) | speed-up vs 1 thread |")
    print("| --- | ---: | ---: |")
    for layout, ts in times.items():
        m = statistics.median(ts)
        print(f"| {layout} | {1000 * m:.0f} | {base / m:.2f} |")


if __name__ == "__main__":
    main()
