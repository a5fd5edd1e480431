"""Command line: ``python -m learntolearn COMMAND``; ``--help`` lists the commands."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from learntolearn.experiments.analyses import ANALYSES
from learntolearn.experiments.config import PROFILES, ConfigError, ExperimentConfig
from learntolearn.experiments.registry import CHAPTERS, chapter_experiments, experiment, names
from learntolearn.experiments.store import Result, ResultStore
from learntolearn.io import load_json
from learntolearn.reporting.tables import fmt_step

__all__ = ["main"]


def _config(spec: str, profile: str) -> ExperimentConfig:
    """A registered experiment name, or the path of a JSON config file."""
    path = Path(spec)
    if spec.endswith(".json") or path.is_file():
        if not path.is_file():
            raise ConfigError(f"config file {spec} does not exist")
        remedy = "fix the file (fields as in results/*/config.json)"
        return ExperimentConfig.from_dict(load_json(path, remedy))
    return experiment(spec, profile)


def _positive(text: str) -> int:
    """An argparse type: an integer >= 1."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text!r}")
    return value


def _summary(result: Result) -> str:
    c, p = result.config, result.provenance
    lines = [
        f"{result.key}  ({c.method}, profile {c.profile}, {c.iterations} iterations, "
        f"{p['device']}, {p['wall_time_s']:.0f} s, {p['date']})"
    ]
    for mode, curves in result.metrics["eval"].items():
        for k, ev in curves.items():
            steps = [i for i in (0, 1, 5, 10) if i < len(ev["mean"])]
            cells = "  ".join(f"{i}: {fmt_step(ev, i)}" for i in steps)
            lines.append(f"  {mode:>16s} K={k:>2} {ev['metric']} after steps {cells}")
    return "\n".join(lines)


def _cmd_train(args: argparse.Namespace) -> int:
    from learntolearn.experiments.runner import run

    store = ResultStore()
    for spec in args.experiments:
        cfg = _config(spec, args.profile)
        result = run(
            cfg,
            device=args.device,
            store=store,
            progress=not args.quiet,
            checkpoint_every=args.checkpoint_every,
        )
        print(_summary(result))
    return 0


def _cmd_evaluate(args: argparse.Namespace) -> int:
    """Re-evaluate stored parameters; compare with the stored metrics, or replace them."""
    from learntolearn.experiments import provenance
    from learntolearn.experiments.compare import compare_evaluations
    from learntolearn.experiments.device import resolve_device
    from learntolearn.experiments.evaluation import evaluate
    from learntolearn.experiments.runner import build

    store, status = ResultStore(), 0
    for spec in args.experiments:
        cfg = _config(spec, args.profile)
        result = store.get(cfg)
        if result is None:
            print(f"{cfg.key}: no stored result; train it first", file=sys.stderr)
            status = 1
            continue
        dev = resolve_device(args.device)
        if args.write:
            store.check_writable()
        fresh = evaluate(cfg, build(cfg, dev), result.params(dev))
        if args.write:
            record = provenance.collect(dev, wall_time_s=0.0)
            del record["wall_time_s"]
            result = store.update_evaluation(cfg, fresh, record)
            print(_summary(result))
            print(f"  evaluation re-computed on {dev} and stored")
            continue
        verdict = compare_evaluations(fresh, result.metrics["eval"])
        made = result.provenance.get("evaluation", result.provenance)
        print(_summary(result))
        print(
            f"  re-evaluated on {dev} ({provenance.cpu_capability()}; stored: "
            f"{made.get('cpu_capability', 'not recorded')}): {verdict}"
        )
        status |= 0 if verdict.ok else 1
    return status


def _cmd_analyse(args: argparse.Namespace) -> int:
    """Compute (or load) a stored analysis of trained results (analyses.py)."""
    from learntolearn.experiments.analyses import analyse

    for spec in args.experiments:
        cfg = _config(spec, args.profile)
        values = analyse(cfg, args.analysis, device=args.device, progress=not args.quiet)
        print(f"{cfg.key}: {args.analysis} stored ({', '.join(values)})")
    return 0


def _cmd_list(args: argparse.Namespace) -> int:
    from learntolearn.experiments.method_table import METHODS

    results, damaged = ResultStore().scan()
    if args.profile:
        results = [r for r in results if r.config.profile == args.profile]
    if results and not args.verbose:
        print(f"{'key':45s} {'method':9s} {'device':30s} {'train time':>10s}  date")
    for r in results:
        label = METHODS[r.config.method].label(r.config)
        print(
            _summary(r)
            if args.verbose
            else f"{r.key:45s} {label:9s} {r.provenance['device'][:30]:30s} "
            f"{r.provenance['wall_time_s']:8.0f} s  {r.provenance['date']}"
        )
    for path, why in damaged.items():
        print(f"damaged: {path.name}: {why}", file=sys.stderr)
    if not results and not damaged:
        print("the results store is empty")
    return 1 if damaged else 0


def _cmd_experiments(args: argparse.Namespace) -> int:
    from learntolearn.experiments.method_table import METHODS

    print(f"{'name':28s} {'method':9s} key (profile {args.profile})")
    for name in names():
        cfg = experiment(name, args.profile)
        print(f"{name:28s} {METHODS[cfg.method].label(cfg):9s} {cfg.key}")
    return 0


def _cmd_reproduce(args: argparse.Namespace) -> int:
    chapters = args.chapter or list(CHAPTERS)  # names are checked by chapter_experiments
    todo = [n for c in chapters for n in chapter_experiments(c, args.profile)]
    args.experiments = list(dict.fromkeys(todo))
    return _cmd_train(args)


def _cmd_notebook(args: argparse.Namespace) -> int:
    from learntolearn.reporting.notebooks import execute

    execute(Path(args.notebook), profile=args.profile, device=args.device, output=args.output)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="learntolearn", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    def add(name: str, help: str, *, experiments: bool = False) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help, description=help)
        default = None if name in ("list", "notebook") else "paper"
        p.add_argument("--profile", choices=PROFILES, default=default)
        if experiments:
            p.add_argument("experiments", nargs="+", metavar="NAME|CONFIG.json")
        return p

    def training_options(p: argparse.ArgumentParser) -> None:
        p.add_argument("--device", default="auto", help="auto (a GPU if there is one), cpu, cuda")
        p.add_argument("--quiet", action="store_true", help="no progress bar")
        p.add_argument(
            "--checkpoint-every",
            type=_positive,
            default=1000,
            metavar="N",
            help="write a resumable checkpoint every N iterations (N >= 1)",
        )

    p = add("train", "train (or load) experiments, store and print their results", experiments=True)
    training_options(p)
    p.set_defaults(func=_cmd_train)
    p = add("evaluate", "re-evaluate stored results on the fixed test tasks", experiments=True)
    p.add_argument("--device", default="auto")
    p.add_argument(
        "--write",
        action="store_true",
        help="store the new evaluation (after the evaluation code changed)",
    )
    p.set_defaults(func=_cmd_evaluate)
    p = add("analyse", "compute and store an analysis of trained results")
    p.add_argument("analysis", choices=sorted(ANALYSES))
    p.add_argument("experiments", nargs="+", metavar="NAME|CONFIG.json")
    p.add_argument("--device", default="auto")
    p.add_argument("--quiet", action="store_true", help="no progress bar if training is needed")
    p.set_defaults(func=_cmd_analyse)
    p = add("list", "list the results store")
    p.add_argument("-v", "--verbose", action="store_true")
    p.set_defaults(func=_cmd_list)
    add("experiments", "list registered experiment names and keys").set_defaults(
        func=_cmd_experiments
    )
    p = add("reproduce", "train every experiment of the chapters that is missing")
    p.add_argument("--chapter", action="append", choices=sorted(CHAPTERS))
    training_options(p)
    p.set_defaults(func=_cmd_reproduce)
    p = add(
        "notebook",
        "execute a chapter notebook with papermill (in place by default; "
        "without --profile, with the profile its parameters cell names)",
    )
    p.add_argument("notebook")
    p.add_argument("--device", default="auto")
    p.add_argument("--output", help="write the executed notebook here instead")
    p.set_defaults(func=_cmd_notebook)

    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except (ConfigError, OSError, ValueError, RuntimeError) as err:
        print(f"learntolearn: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\ninterrupted: run the same command again to resume", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
