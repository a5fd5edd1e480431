"""The command line, ``python -m learntolearn COMMAND`` (``--help`` lists the commands).

Every user-facing text here (descriptions, option help, errors) is plain text: argparse prints
it as written, so it carries no reStructuredText markup.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from learntolearn.catalogue import (
    CHAPTERS,
    chapter_experiments,
    experiment,
    kind_of,
    names,
    run,
    store_for,
)
from learntolearn.catalogue.plan import plan, print_plan
from learntolearn.experiments.clock import (
    budget_seconds,
    deadline_after,
    duration,
    passed,
    remaining,
)
from learntolearn.experiments.spec import PROFILES, ConfigError, Spec
from learntolearn.fewshot.config import ExperimentConfig
from learntolearn.fewshot.store import ResultStore
from learntolearn.fewshot.stored_analyses import ANALYSES
from learntolearn.io import load_json
from learntolearn.learned_optimizers.config import OptimizerConfig
from learntolearn.learned_optimizers.runs import FOLDER, OptimizerResult, OptimizerStore
from learntolearn.paths import results_dir
from learntolearn.reporting.costs import step_estimate
from learntolearn.reporting.tables import fmt_step
from learntolearn.search.space import SearchConfig

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


def _config(spec: str, profile: str) -> Spec:
    """An experiment's name, or the path of a JSON config file (a few-shot run's fields, or a
    learned optimizer's: one with a ``problem``)."""
    path = Path(spec)
    if spec.endswith(".json") or path.is_file():
        if not path.is_file():
            raise ConfigError(f"config file {spec} does not exist")
        data = load_json(path, "fix the file (fields as in results/*/config.json)")
        kind = OptimizerConfig if isinstance(data, dict) and "problem" in data else ExperimentConfig
        return kind.from_dict(data)
    return experiment(spec, profile)  # type: ignore[no-any-return]


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


def _summary(result: Any) -> str:
    """What ``train``, ``evaluate`` and ``list -v`` print of a stored result (any kind)."""
    if isinstance(result, dict):  # the search's summary
        c, made = result["config"], result["provenance"]
        best = min(min(s["values"]) for s in result["studies"].values())
        return (
            f"search {c['name']} ({c['profile']}): {len(result['studies'])} studies, best "
            f"validation error {best:.4f} ({made['wall_time_s']:.0f} s, {made['date']})"
        )
    c, p = result.config, result.provenance
    lines = [f"{result.key}  ({kind_of(c)}, profile {c.profile}, {c.iterations} iterations, "]
    lines[0] += f"{p['device']}, {p['wall_time_s']:.0f} s, {p['date']})"
    if isinstance(result, OptimizerResult):
        for setting, found in result.metrics["eval"].items():
            finals = ", ".join(
                f"{m} {v['final'][0]:.3g}"
                for m, v in found.items()
                if isinstance(v, dict) and "final" in v
            )
            lines.append(f"  [{setting}] final loss: {finals}")
        return "\n".join(lines)
    for mode, curves in result.metrics["eval"].items():
        for k, ev in curves.items():
            steps = [i for i in (0, 1, 5, 10) if i < len(ev["mean"])]
            cells = "  ".join(f"{i}: {fmt_step(ev, i)}" for i in steps)
            lines.append(f"  {mode:>16s} K={k:>2} {ev['metric']} after steps {cells}")
    return "\n".join(lines)


def _cmd_train(args: argparse.Namespace) -> int:
    """Load or compute every experiment named (all checked first), of any kind."""
    specs = [_config(spec, args.profile) for spec in args.experiments]
    deadline = deadline_after(getattr(args, "budget", None))
    for spec in specs:
        try:
            result = run(spec, **_run_options(args, deadline))
        except InterruptedError as err:
            print(f"budget spent: {err}")
            return 0
        print(_summary(result))
    return 0


def _run_options(args: argparse.Namespace, deadline: float | None) -> dict[str, Any]:
    """The options of ``catalogue.run`` a command's arguments set."""
    return {
        "device": getattr(args, "device", "auto"),
        "progress": not args.quiet,
        "deadline": deadline,
        "checkpoint_every": getattr(args, "checkpoint_every", None),
        "task_chunk": getattr(args, "task_chunk", None),
        "workers": getattr(args, "workers", 1),
    }


def _cmd_evaluate(args: argparse.Namespace) -> int:
    """Re-evaluate stored results; compare with the stored metrics, or replace them."""
    from learntolearn.experiments import provenance
    from learntolearn.fewshot.runs import reevaluate
    from learntolearn.learned_optimizers.runs import reevaluate_optimizer

    status = 0
    for spec in [_config(s, args.profile) for s in args.experiments]:
        if not isinstance(spec, ExperimentConfig | OptimizerConfig):
            print(
                f"{spec.key}: {run(spec, progress=False) and 'summary verified'}; a search "
                "is re-run from an empty trial store (its trials are deterministic)"
            )
            continue
        if isinstance(spec, OptimizerConfig):
            if args.write:
                raise ConfigError("--write re-evaluates few-shot runs only")
            result, verdict = reevaluate_optimizer(spec, store_for(spec), args.device)
        else:
            result, verdict = reevaluate(spec, store_for(spec), args.device, write=args.write)
        print(_summary(result))
        if verdict is None:
            print(f"  evaluation re-computed on {args.device} and stored")
            continue
        made = result.provenance.get("evaluation", result.provenance)
        print(
            f"  re-evaluated ({provenance.cpu_capability()}; stored: "
            f"{made.get('cpu_capability', 'not recorded')}): {verdict}"
        )
        status |= 0 if verdict.ok else 1
    return status


def _cmd_analyse(args: argparse.Namespace) -> int:
    """Compute (or load) a stored analysis of trained results (stored_analyses.py)."""
    from learntolearn.catalogue import analyse

    for spec in [_config(s, args.profile) for s in args.experiments]:
        if not isinstance(spec, ExperimentConfig):
            raise ConfigError(f"{spec.name}: analyses apply to few-shot runs")
        values = analyse(spec, args.analysis, device=args.device, progress=not args.quiet)
        print(f"{spec.key}: {args.analysis} stored ({', '.join(values)})")
    return 0


def _cmd_list(args: argparse.Namespace) -> int:
    """List the stores of ``--profile`` (without it: the committed store, then the scratch one):
    few-shot runs and learned optimizers; damaged folders are named and set the exit status."""
    roots = (
        [results_dir(args.profile)] if args.profile else [results_dir(), results_dir(scratch=True)]
    )
    shown, status = 0, 0
    for i, root in enumerate(dict.fromkeys(roots)):
        fewshot, damaged = ResultStore(root).scan()
        optimizers, damaged_optimizers = OptimizerStore(root / FOLDER).scan()
        results: list[Any] = [*fewshot, *optimizers]
        damaged.update(damaged_optimizers)
        if args.profile:
            results = [r for r in results if r.config.profile == args.profile]
        if i and results:
            print(f"{chr(10) if shown else ''}scratch store {root} (not committed):")
        if results and not args.verbose:
            print(f"{'key':45s} {'kind':17s} {'device':30s} {'train time':>10s}  date")
        for r in results:
            print(
                _summary(r)
                if args.verbose
                else f"{r.key:45s} {_label(r.config):17s} {r.provenance['device'][:30]:30s} "
                f"{r.provenance['wall_time_s']:8.0f} s  {r.provenance['date']}"
            )
        for path, why in damaged.items():
            print(f"damaged: {path.name}: {why}", file=sys.stderr)
        shown += len(results)
        status |= 1 if damaged else 0
    if not shown and not status:
        print("the results store is empty")
    return status


def _label(spec: Spec) -> str:
    """A few-shot run's method label, else the kind."""
    from learntolearn.fewshot.method_table import METHODS

    if isinstance(spec, ExperimentConfig):
        return METHODS[spec.method].label(spec)
    return kind_of(spec)


def _cmd_experiments(args: argparse.Namespace) -> int:
    print(f"{'name':33s} {'kind':17s} key (profile {args.profile})")
    for name in names():
        spec = experiment(name, args.profile)
        print(f"{name:33s} {_label(spec):17s} {spec.key}")
    return 0


def _cmd_reproduce(args: argparse.Namespace) -> int:
    """Print the plan (missing experiments of every kind, their length, estimated time, what
    fits the budget); then compute them in plan order, unless ``--plan``, or the paper profile
    on a CPU without ``--allow-cpu``. With ``--budget``, every run stops cleanly when the
    budget is spent (checkpointed, to be resumed by the same command)."""
    from learntolearn.experiments import distributed
    from learntolearn.experiments.device import resolve_device

    chapters = args.chapter or list(CHAPTERS)  # names are checked by chapter_experiments
    todo = list(dict.fromkeys(n for c in chapters for n in chapter_experiments(c, args.profile)))
    if args.only:
        unknown = sorted(set(args.only) - set(todo))
        if unknown:
            raise ConfigError(
                f"--only {', '.join(unknown)}: not an experiment of the chosen chapters at "
                f"profile {args.profile}; pick from {', '.join(todo)}"
            )
        todo = [n for n in todo if n in args.only]
    deadline = deadline_after(args.budget)
    dev = resolve_device(args.device)
    steps, stored = plan(todo, args.profile, dev.type, fallback=step_estimate)
    if not steps:
        print(f"nothing to do: the {stored} experiments at profile {args.profile} are stored")
        return 0
    print_plan(steps, stored, args.profile, str(dev), args.budget)
    if args.plan:
        return 0
    training = [s for s in steps if s.trains and not isinstance(s.config, _CPU_SIZED)]
    if training and args.profile == "paper" and dev.type == "cpu" and not args.allow_cpu:
        known = sum(s.seconds or 0.0 for s in training)
        estimate = f" (at least ~ {duration(known)} by the plan above)" if known else ""
        raise RuntimeError(
            f"the paper profile would train {len(training)} experiment(s) on the CPU"
            f"{estimate}; run it on a GPU machine, pick runs with --chapter or --profile cpu, "
            "or pass --allow-cpu (make reproduce ALLOW_CPU=1) to train on the CPU anyway"
        )
    options = _run_options(args, deadline)
    for s in steps:
        spent = passed(deadline)
        if distributed.world()[1] > 1:  # rank 0's clock decides for every rank
            spent = distributed.agree(spent, dev)
        if spent:
            print("budget spent: the runs left wait for the next sitting")
            break
        if distributed.world()[1] > 1 and not isinstance(s.config, ExperimentConfig):
            print(f"{s.name}: runs in one process; run it without torchrun")
            continue
        if deadline is not None and s.local and not s.fits(remaining(deadline)):
            left = duration(remaining(deadline))
            print(f"{s.name}: skipped: {s.local_note}, and {left} of the budget is left")
            continue
        if not s.trains and store_for(s.config).trained_like(s.config) is None:  # type: ignore[attr-defined]
            print(f"{s.name}: waits for the run it is evaluated from ({s.twin})")
            continue
        try:
            result = run(s.config, **options)
        except InterruptedError as err:
            print(_sitting_end(s.name, s.config, err))
            return 0
        print(_summary(result))
    return 0


def _cmd_campaign(args: argparse.Namespace) -> int:
    """The standing queue (:mod:`~learntolearn.catalogue.campaign`): print its plan, then run
    its jobs on ``--workers`` processes at the lowest priority until the budget is spent."""
    from learntolearn.catalogue.campaign import jobs, print_campaign, run_jobs
    from learntolearn.experiments.device import resolve_device

    chapters = args.chapter or list(CHAPTERS)
    todo = list(dict.fromkeys(n for c in chapters for n in chapter_experiments(c, args.profile)))
    dev = resolve_device(args.device)
    steps, stored = plan(todo, args.profile, dev.type, fallback=step_estimate)
    queue = jobs(steps)
    if not queue:
        print(f"nothing to do: the {stored} experiments at profile {args.profile} are stored")
        return 0
    print_campaign(queue, args.workers, args.budget)
    if args.plan:
        return 0
    if args.profile == "paper" and dev.type == "cpu" and not args.allow_cpu:
        raise RuntimeError(
            "the campaign trains the paper profile on the CPU: pass --allow-cpu "
            "(make campaign does), or run it on a GPU machine"
        )
    return run_jobs(queue, args.workers, args.budget, args.profile, str(dev))


_CPU_SIZED = (SearchConfig,)  # the search is the book's own, sized for a CPU at every profile


def _sitting_end(name: str, spec: Spec, err: InterruptedError) -> str:
    """What a run that the budget stopped says: how far it is and where its checkpoint is."""
    if not isinstance(spec, ExperimentConfig):
        return f"{name}: {err}"
    store = store_for(spec)
    record = store.progress(spec) or {}
    size = record.get("checkpoint_bytes", 0) / 2**20
    where = store.checkpoint_file(spec)
    local = ", over the limit for git: it stays on this machine" if ".local." in where.name else ""
    return (
        f"{name}: {record.get('iteration', 0):,} of {spec.iterations:,} iterations when the "
        f"budget ran out; checkpoint {where} ({size:.1f} MiB{local}); the same command resumes it"
    )


def _cmd_search(args: argparse.Namespace) -> int:
    from learntolearn.catalogue.search import search_config
    from learntolearn.search.studies import studies, summary_path

    config = search_config(args.profile)
    count = sum(s.trials for s in studies(config))
    print(f"search {config.key}: {len(studies(config))} studies, {count:,} trials")
    try:
        run(config, **_run_options(args, deadline_after(args.budget)))
    except InterruptedError:
        print("budget spent: the same command continues the search")
        return 0
    print(f"summary: {summary_path(config)}")
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


def _parser() -> argparse.ArgumentParser:
    """The argument parser: one subcommand per task, every option with its help."""
    parser = argparse.ArgumentParser(prog="learntolearn", description=DESCRIPTION, epilog=EPILOG)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(
        name: str,
        help: str,
        profile: str,
        default: str | None = "paper",
        epilog: str = "",
        aliases: Sequence[str] = (),
    ) -> argparse.ArgumentParser:
        """A subcommand; ``profile`` is the help of its --profile, ``default`` its default."""
        p = sub.add_parser(
            name,
            help=help,
            description=f"{help[0].upper()}{help[1:]}.",
            epilog=epilog or None,
            aliases=list(aliases),
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
            metavar="N",
            help="write a resumable checkpoint every N iterations (N >= 1; default: 1000 for a "
            "few-shot run, 50 horizons for a learned optimizer)",
        )
        p.add_argument(
            "--task-chunk",
            type=_positive,
            metavar="N",
            help="backpropagate each meta-batch N tasks at a time: less memory, the same "
            "meta-gradient up to rounding (default: all tasks at once)",
        )

    by_name = f"the profile of the registered names: {PROFILE_HELP} (default: paper)"
    p = add(
        "train",
        "train (or load) experiments of any kind (few-shot runs, learned optimizers, the "
        "search), store and print their results",
        by_name,
        aliases=("train-optimizer",),  # its old name for the learned optimizers
    )
    experiments(p)
    training_options(p)
    p.add_argument(
        "--budget",
        type=_budget,
        metavar="TIME",
        help="stop cleanly after this much time (e.g. 45m); the same command resumes",
    )
    p.set_defaults(func=_cmd_train)

    p = add(
        "search",
        "run the hyperparameter searches of chapter 9 (grid, random, TPE) and store the summary",
        "smoke (seconds) or cpu (the chapter's search, minutes on two cores; paper is the same "
        "search: it has no paper protocol)",
        default="cpu",
        epilog="Trials go to results-search/ (an Optuna SQLite study per search); rerun the "
        "same command after an interruption and it continues where it stopped.",
    )
    p.add_argument(
        "--workers",
        type=_positive,
        default=1,
        help="parallel processes, at most one per core (default: 1)",
    )
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
        "(from a stored run of the same experiment at another profile, else, on a CPU, from "
        "the stored benchmarks in results/benchmarks/, else unknown). The paper profile on a "
        "CPU trains only with --allow-cpu.",
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
        "campaign",
        "run the standing queue: the missing runs of every chapter, the most published numbers "
        "per CPU-hour first, on every core, in sittings",
        f"{PROFILE_HELP} (default: paper)",
        epilog="Each job is `reproduce --only NAME ...` (a training run and the settings "
        "evaluated from it) in its own process at the lowest priority, one thread each; a "
        "worker takes the next job when its last one ends. Every run stops cleanly when the "
        "budget is spent and resumes from its checkpoint the next time.",
    )
    p.add_argument(
        "--budget", type=_budget, metavar="TIME", required=True, help="e.g. 2h30m: the sitting"
    )
    p.add_argument(
        "--workers", type=_positive, default=2, help="processes at once (default: 2, the cores)"
    )
    p.add_argument(
        "--chapter",
        action="append",
        choices=sorted(CHAPTERS),
        metavar="CHAPTER",
        help="only this chapter's experiments (repeat for several; default: every chapter)",
    )
    p.add_argument("--plan", action="store_true", help="print the queue and stop")
    p.add_argument("--allow-cpu", action="store_true", help="train the paper profile on the CPU")
    device(p)
    p.set_defaults(func=_cmd_campaign)

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


def _attach_values(argv: list[str]) -> list[str]:
    """``--budget -5m`` as ``--budget=-5m``: argparse would take a value that starts with '-'
    for an option and say the budget is missing; its own check then names what is wrong."""
    out: list[str] = []
    for arg in argv:
        if out and out[-1] == "--budget" and arg.startswith("-"):
            out[-1] = f"--budget={arg}"
        else:
            out.append(arg)
    return out


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line with ``argv`` (default: ``sys.argv[1:]``); the exit status."""
    parser = _parser()
    args = parser.parse_args(_attach_values(sys.argv[1:] if argv is None else list(argv)))
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
