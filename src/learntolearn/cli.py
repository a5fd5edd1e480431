"""The command line, ``python -m learntolearn COMMAND`` (``--help`` lists the commands).

Every user-facing text here (descriptions, option help, errors) is plain text: argparse prints
it as written, so it carries no reStructuredText markup.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from learntolearn.experiments.analyses import ANALYSES
from learntolearn.experiments.config import PROFILES, ConfigError, ExperimentConfig
from learntolearn.experiments.plan import budget_seconds, duration, plan, print_plan, store_for
from learntolearn.experiments.registry import CHAPTERS, chapter_experiments, experiment, names
from learntolearn.experiments.store import Result, ResultStore
from learntolearn.io import load_json
from learntolearn.paths import results_dir
from learntolearn.reporting.tables import fmt_step

__all__ = ["main"]

DESCRIPTION = (
    "Train, evaluate, analyse and list the experiments of the Learning to Learn book, and "
    "execute its chapters. Run it as .venv/bin/python -m learntolearn COMMAND; "
    "COMMAND --help describes each command."
)
EPILOG = (
    "Profiles: smoke (seconds, for CI; the numbers mean nothing), cpu (minutes to an hour per "
    "run on a laptop CPU; shorter training than the papers), paper (the papers' protocol). "
    "Results of registered experiments at the cpu and paper profiles go to results/ "
    "(committed); smoke runs and configs that are not registered experiments go to "
    "results-scratch/ (ignored by git); "
    "LEARNTOLEARN_RESULTS, when set, is the store for everything."
)


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


def _budget(text: str) -> float:
    """An argparse type: a time budget in seconds (see :func:`~.plan.budget_seconds`)."""
    try:
        return budget_seconds(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from err


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

    for spec in args.experiments:
        cfg = _config(spec, args.profile)
        result = run(
            cfg,
            device=args.device,
            store=store_for(cfg),
            progress=not args.quiet,
            checkpoint_every=args.checkpoint_every,
            task_chunk=args.task_chunk,
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

    status = 0
    for spec in args.experiments:
        cfg = _config(spec, args.profile)
        store = store_for(cfg)
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
        values = analyse(
            cfg, args.analysis, device=args.device, store=store_for(cfg), progress=not args.quiet
        )
        print(f"{cfg.key}: {args.analysis} stored ({', '.join(values)})")
    return 0


def _cmd_list(args: argparse.Namespace) -> int:
    """List the store of ``--profile`` (without it: the committed store, then the scratch one)."""
    from learntolearn.experiments.method_table import METHODS

    roots = (
        [results_dir(args.profile)] if args.profile else [results_dir(), results_dir(scratch=True)]
    )
    shown, status = 0, 0
    for i, root in enumerate(dict.fromkeys(roots)):
        results, damaged = ResultStore(root).scan()
        if args.profile:
            results = [r for r in results if r.config.profile == args.profile]
        if i and results:
            print(f"{chr(10) if shown else ''}scratch store {root} (not committed):")
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
        shown += len(results)
        status |= 1 if damaged else 0
    if not shown and not status:
        print("the results store is empty")
    return status


def _cmd_experiments(args: argparse.Namespace) -> int:
    from learntolearn.experiments.method_table import METHODS

    print(f"{'name':28s} {'method':9s} key (profile {args.profile})")
    for name in names():
        cfg = experiment(name, args.profile)
        print(f"{name:28s} {METHODS[cfg.method].label(cfg):9s} {cfg.key}")
    return 0


def _cmd_reproduce(args: argparse.Namespace) -> int:
    """Print the plan (missing experiments, iterations, estimated time, what fits the budget);
    then train them, unless ``--plan``, or the paper profile on a CPU without ``--allow-cpu``.
    With ``--budget``, every run stops cleanly when the budget is spent (checkpointed, to be
    resumed by the same command)."""

    from learntolearn.experiments.device import resolve_device
    from learntolearn.experiments.optimizer_config import CHAPTER_OPTIMIZERS

    chapters = args.chapter or list(CHAPTERS)  # names are checked by chapter_experiments
    todo = list(dict.fromkeys(n for c in chapters for n in chapter_experiments(c, args.profile)))
    optimizers = [n for c in chapters for n in CHAPTER_OPTIMIZERS.get(c, ())]
    if args.only:
        optimizers = [n for n in optimizers if n in args.only]
        unknown = sorted(set(args.only) - set(todo) - set(optimizers))
        if unknown:
            raise ConfigError(
                f"--only {', '.join(unknown)}: not an experiment of the chosen chapters at "
                f"profile {args.profile}; pick from {', '.join([*todo, *optimizers])}"
            )
        todo = [n for n in todo if n in args.only]
    optimizers = _missing_optimizers(optimizers, args.profile)
    search = _missing_search(chapters, args)
    budget = args.budget
    deadline = None if budget is None else time.monotonic() + budget
    dev = resolve_device(args.device)
    steps, stored = plan(todo, args.profile, dev.type)
    if not steps and not optimizers and search is None:
        print(f"nothing to do: the {stored} experiments at profile {args.profile} are stored")
        return 0
    if steps:
        print_plan(steps, stored, args.profile, str(dev), budget)
    for c in optimizers:
        print(f"learned optimizer {c.name}: {c.iterations:,} horizons of {c.problem} (chapter 7)")
    if search is not None:
        from learntolearn.experiments.search_runs import studies

        trials = sum(s.trials for s in studies(search))
        print(
            f"hyperparameter search {search.key}: {trials:,} trials of about 0.3 s on one CPU "
            "thread each (chapter 8; `learntolearn search --workers 2` runs it on two cores)"
        )
    if args.plan:
        return 0
    training = [s for s in steps if s.trains]
    if (
        (training or optimizers)
        and args.profile == "paper"
        and dev.type == "cpu"
        and (not args.allow_cpu)
    ):
        known = sum(s.seconds or 0.0 for s in training)
        estimate = f" (at least ~ {duration(known)} by the plan above)" if known else ""
        raise RuntimeError(
            f"the paper profile would train {len(training) + len(optimizers)} experiment(s) on "
            f"the CPU{estimate}; "
            "run it on a GPU machine, pick runs with --chapter or --profile cpu, or pass "
            "--allow-cpu (make reproduce ALLOW_CPU=1) to train on the CPU anyway"
        )
    if deadline is None:
        args.experiments = [s.name for s in steps]
        code = _cmd_train(args) if steps else 0
        code = code or _train_optimizers(optimizers, args, None)
        return code or _run_search(search, None, not args.quiet)
    from learntolearn.experiments import distributed
    from learntolearn.experiments.runner import run

    for s in steps:
        spent = time.monotonic() >= deadline
        if distributed.world()[1] > 1:  # rank 0's clock decides for every rank
            spent = distributed.agree(spent, dev)
        if spent:
            print("budget spent: the runs left wait for the next sitting")
            break
        if not s.trains and store_for(s.config).trained_like(s.config) is None:
            print(f"{s.name}: waits for the run it is evaluated from ({s.twin})")
            continue
        try:
            result = run(
                s.config,
                device=dev,
                store=store_for(s.config),
                progress=not args.quiet,
                checkpoint_every=args.checkpoint_every,
                deadline=deadline,
                task_chunk=args.task_chunk,
            )
        except InterruptedError:
            record = store_for(s.config).progress(s.config) or {}
            size = record.get("checkpoint_bytes", 0) / 2**20
            print(
                f"{s.name}: {record.get('iteration', 0):,} of {s.config.iterations:,} "
                f"iterations when the budget ran out; checkpoint "
                f"{store_for(s.config).checkpoint_path(s.config)} ({size:.1f} MiB); the same "
                "command resumes it"
            )
            return 0
        print(_summary(result))
    code = _train_optimizers(optimizers, args, deadline)
    return code or _run_search(search, deadline, not args.quiet)


def _missing_search(chapters: list[str], args: argparse.Namespace) -> Any:
    """Chapter 8's search config, if the chapters include it and its summary is not stored."""
    from learntolearn.experiments.search_runs import summary_path
    from learntolearn.experiments.search_space import search_config

    if "08_hyperparameter_search" not in chapters or args.only:
        return None
    config = search_config(args.profile)
    return None if summary_path(config).is_file() else config


def _run_search(config: Any, deadline: float | None, progress: bool) -> int:
    """Run the search (one process) until the monotonic ``deadline``; it resumes next time."""
    from learntolearn.experiments.search_runs import run_search

    if config is None:
        return 0
    if deadline is not None and time.monotonic() >= deadline:
        print("budget spent: the hyperparameter search waits for the next sitting")
        return 0
    wall = None if deadline is None else time.time() + (deadline - time.monotonic())
    path = run_search(config, progress=progress, deadline=wall)
    print("budget spent: the search continues next time" if path is None else f"{path}: stored")
    return 0


def _missing_optimizers(names: list[str], profile: str) -> list[Any]:
    """The configs of the learned-optimizer experiments ``names`` not stored at ``profile``."""
    from learntolearn.experiments.optimizer_config import optimizer_experiment
    from learntolearn.experiments.optimizer_runs import stored

    configs = [optimizer_experiment(n, profile) for n in dict.fromkeys(names)]
    return [c for c in configs if not stored(c)]


def _train_optimizers(configs: list[Any], args: argparse.Namespace, deadline: float | None) -> int:
    """Train the learned optimizers ``configs`` until ``deadline`` (they resume next time)."""
    from learntolearn.experiments import distributed
    from learntolearn.experiments.optimizer_runs import run_optimizer

    if configs and distributed.world()[1] > 1:
        print("learned optimizers train in one process: run them without torchrun")
        return 0
    for c in configs:
        if deadline is not None and time.monotonic() >= deadline:
            print("budget spent: the learned optimizers left wait for the next sitting")
            break
        try:
            run_optimizer(c, device=args.device, progress=not args.quiet, deadline=deadline)
        except InterruptedError as err:
            print(f"{c.name}: {err}")
            break
        print(f"{c.key}: stored")
    return 0


def _cmd_search(args: argparse.Namespace) -> int:
    from learntolearn.experiments.search_runs import run_search, studies
    from learntolearn.experiments.search_space import search_config

    config = search_config(args.profile)
    count = sum(s.trials for s in studies(config))
    print(f"search {config.key}: {len(studies(config))} studies, {count:,} trials")
    deadline = None if args.budget is None else time.time() + args.budget
    path = run_search(config, workers=args.workers, progress=not args.quiet, deadline=deadline)
    if path is None:
        print("budget spent: the same command continues the search")
    else:
        print(f"summary: {path}")
    return 0


def _cmd_notebook(args: argparse.Namespace) -> int:
    from learntolearn.reporting.notebooks import execute

    execute(Path(args.notebook), profile=args.profile, device=args.device, output=args.output)
    return 0


PROFILE_HELP = "smoke (seconds), cpu (minutes) or paper (the papers' protocol)"
DEVICE_HELP = "auto (a GPU if there is one, else the CPU), cpu or cuda (default: auto)"
EXPERIMENTS_HELP = (
    "registered experiment names (see the experiments command) or JSON config files "
    "(fields as in results/*/config.json)"
)


def _cmd_train_optimizer(args: argparse.Namespace) -> int:
    from learntolearn.experiments.optimizer_config import optimizer_experiment
    from learntolearn.experiments.optimizer_runs import run_optimizer

    deadline = None if args.budget is None else time.monotonic() + args.budget
    configs = [optimizer_experiment(n, args.profile) for n in args.experiments]  # all checked
    for config in configs:
        try:
            result = run_optimizer(
                config, device=args.device, progress=not args.quiet, deadline=deadline
            )
        except InterruptedError as err:
            print(f"budget spent: {err}")
            return 0
        for setting, found in result.metrics["eval"].items():
            finals = ", ".join(
                f"{m} {v['final'][0]:.3g}"
                for m, v in found.items()
                if isinstance(v, dict) and "final" in v
            )
            print(f"{result.config.key} [{setting}] final loss: {finals}")
    return 0


def _parser() -> argparse.ArgumentParser:
    """The argument parser: one subcommand per task, every option with its help."""
    parser = argparse.ArgumentParser(prog="learntolearn", description=DESCRIPTION, epilog=EPILOG)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(
        name: str, help: str, profile: str, default: str | None = "paper", epilog: str = ""
    ) -> argparse.ArgumentParser:
        """A subcommand; ``profile`` is the help of its --profile, ``default`` its default."""
        p = sub.add_parser(
            name, help=help, description=f"{help[0].upper()}{help[1:]}.", epilog=epilog or None
        )
        p.add_argument("--profile", choices=PROFILES, default=default, help=profile)
        return p

    def experiments(p: argparse.ArgumentParser) -> None:
        p.add_argument("experiments", nargs="+", metavar="NAME|CONFIG.json", help=EXPERIMENTS_HELP)

    def device(p: argparse.ArgumentParser) -> None:
        p.add_argument("--device", default="auto", help=DEVICE_HELP)

    def quiet_and_budget(p: argparse.ArgumentParser, budget: str) -> None:
        p.add_argument("--quiet", action="store_true", help="no progress bar")
        p.add_argument("--budget", type=_budget, metavar="TIME", help=budget)

    def training_options(p: argparse.ArgumentParser) -> None:
        device(p)
        p.add_argument("--quiet", action="store_true", help="no progress bar")
        p.add_argument(
            "--checkpoint-every",
            type=_positive,
            default=1000,
            metavar="N",
            help="write a resumable checkpoint every N iterations (N >= 1; default: 1000)",
        )
        p.add_argument(
            "--task-chunk",
            type=_positive,
            metavar="N",
            help="backpropagate each meta-batch N tasks at a time: less memory, the same "
            "meta-gradient up to rounding (default: all tasks at once)",
        )

    by_name = f"the profile of the registered names: {PROFILE_HELP} (default: paper)"
    p = add("train", "train (or load) experiments, store and print their results", by_name)
    experiments(p)
    training_options(p)
    p.set_defaults(func=_cmd_train)

    p = add(
        "train-optimizer",
        "train (or load) learned optimizers (chapter 7), store and print their final losses",
        by_name,
    )
    p.add_argument("experiments", nargs="+", metavar="NAME", help="l2l/quadratic, l2l/mnist, ...")
    device(p)
    quiet_and_budget(p, "stop cleanly after this much time (e.g. 45m); the same command resumes")
    p.set_defaults(func=_cmd_train_optimizer)

    p = add(
        "search",
        "run the hyperparameter searches of chapter 8 (grid, random, TPE) and store the summary",
        "smoke (seconds) or cpu (the chapter's search, minutes on two cores; paper is the same "
        "search: it has no paper protocol)",
        default="cpu",
        epilog="Trials go to results-search/ (an Optuna SQLite study per search); rerun the "
        "same command after an interruption and it continues where it stopped.",
    )
    p.add_argument("--workers", type=_positive, default=1, help="parallel processes (default: 1)")
    quiet_and_budget(p, "start no trial after this much time (e.g. 5m); the same command continues")
    p.set_defaults(func=_cmd_search)

    p = add("evaluate", "re-evaluate stored results on the fixed test tasks", by_name)
    experiments(p)
    device(p)
    p.add_argument(
        "--write",
        action="store_true",
        help="store the new evaluation instead of comparing (after the evaluation code changed)",
    )
    p.set_defaults(func=_cmd_evaluate)

    p = add("analyse", "compute and store an analysis of trained results", by_name)
    p.add_argument("analysis", choices=sorted(ANALYSES), help="which analysis to compute")
    experiments(p)
    device(p)
    p.add_argument("--quiet", action="store_true", help="no progress bar if training is needed")
    p.set_defaults(func=_cmd_analyse)

    p = add(
        "list",
        "list the stored results (the committed store, then the scratch store)",
        f"only the results of this profile: {PROFILE_HELP} (default: all)",
        default=None,
    )
    p.add_argument(
        "-v", "--verbose", action="store_true", help="print each result's evaluation curves"
    )
    p.set_defaults(func=_cmd_list)

    p = add(
        "experiments",
        "list registered experiment names and their keys",
        f"the profile whose keys to show: {PROFILE_HELP} (default: paper)",
    )
    p.set_defaults(func=_cmd_experiments)

    p = add(
        "reproduce",
        "print the plan, then train every experiment of the chapters that is missing",
        f"{PROFILE_HELP} (default: paper)",
        epilog="The plan lists each missing experiment, its iterations and an estimated time "
        "(from a stored run of the same experiment at another profile, else unknown). The "
        "paper profile on a CPU trains only with --allow-cpu.",
    )
    p.add_argument(
        "--chapter",
        action="append",
        choices=sorted(CHAPTERS),
        metavar="CHAPTER",
        help="only this chapter's experiments, one of "
        f"{', '.join(sorted(CHAPTERS))} (repeat for several; default: every chapter)",
    )
    p.add_argument("--plan", "--dry-run", action="store_true", help="print the plan and stop")
    p.add_argument(
        "--only",
        action="append",
        metavar="NAME",
        help="only this experiment of the chosen chapters (repeat for several)",
    )
    p.add_argument(
        "--budget",
        type=_budget,
        metavar="TIME",
        help="stop cleanly after this much training time, e.g. 45m, 2h, 1h30m: runs are "
        "checkpointed in results/in-progress/ and the same command resumes them",
    )
    p.add_argument(
        "--allow-cpu",
        action="store_true",
        help="train the paper profile even when the device is the CPU "
        "(hours to days per Omniglot run)",
    )
    training_options(p)
    p.set_defaults(func=_cmd_reproduce)

    p = add(
        "notebook",
        "execute a chapter notebook with papermill, in place unless --output is given",
        f"run it at this profile: {PROFILE_HELP} (default: the profile its parameters cell "
        "names, i.e. the committed results)",
        default=None,
    )
    p.add_argument("notebook", help="the notebook, e.g. book/01_meta_learning.ipynb")
    device(p)
    p.add_argument("--output", metavar="FILE", help="write the executed notebook here instead")
    p.set_defaults(func=_cmd_notebook)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line with ``argv`` (default: ``sys.argv[1:]``); the exit status."""
    parser = _parser()
    args = parser.parse_args(argv)
    if int(os.environ.get("RANK", "0")) > 0:  # torchrun: rank 0 alone prints (and stores)
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 (for the life of the process)
    try:
        return args.func(args)
    except (ConfigError, OSError, ValueError, RuntimeError) as err:
        print(f"learntolearn: error: {err}", file=sys.stderr)
        return 2
    except FloatingPointError as err:  # a diverged run: rerunning it diverges again
        print(
            f"learntolearn: error: {err}. Training is deterministic: change meta_lr or the "
            "seed of the config to train it differently",
            file=sys.stderr,
        )
        return 2
    except KeyboardInterrupt:
        print("\ninterrupted: run the same command again to resume", file=sys.stderr)
        return 130
    finally:
        from learntolearn.experiments.distributed import finish

        finish()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
