"""The book's cost per meta-iteration: the one stored, interleaved benchmark of every method.

``benchmarks/method_costs.py`` times one training step (the training loop's own
:class:`~learntolearn.fewshot.training.MetaStep`: sampling, loss, backward, outer update) of every
Omniglot method the book reports, in rounds that run every (method, setting) once in a rotated
order, on one thread; it stores every per-round time with its provenance (machine, torch,
threads, date, commit, load) as ``results/benchmarks/method-costs.json`` beside a SHA-256 file in
``sha256sum``'s format. Chapters read costs from here, never from the wall times of runs made at
different times beside other jobs: only times taken in the same rounds compare.

:func:`load` verifies the checksum and refuses a damaged or edited file; :class:`MethodCosts`
gives the medians, interquartile ranges, per-task times, ratios to a reference method taken
round by round (the median of the per-round ratios, robust to load that hits a whole round),
the saved-tensor bytes, and captioned :class:`~learntolearn.reporting.tables.Table` objects.
"""

from __future__ import annotations

import re
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from learntolearn.io import load_checked_json, save_checked_json
from learntolearn.paths import project_root
from learntolearn.reporting.results import LABELS
from learntolearn.reporting.tables import Table

__all__ = [
    "EQUAL",
    "FORMAT",
    "Cost",
    "KochCost",
    "MethodCosts",
    "default_path",
    "koch_path",
    "load",
    "load_koch",
    "method_setting",
    "save",
    "setting_label",
    "step_estimate",
    "summary_table",
]

FORMAT = 1
EQUAL = "5w-equal"  # the setting of the equal-footing entries (Reptile, MAML, first-order MAML)
REMEDY = "rerun benchmarks/method_costs.py to measure it again"


def setting_label(setting: str) -> str:
    """``5w1s`` as ``5-way 1-shot``; the equal-footing setting as what it is."""
    if setting == EQUAL:
        return "5-way, equal footing"
    n, k = setting.rstrip("s").split("w")
    return f"{n}-way {k}-shot"


def default_path() -> Path:
    """Where the benchmark is stored: ``benchmarks/method-costs.json`` in the committed results
    store (not ``$LEARNTOLEARN_RESULTS``: it measures the code, not a run of some profile, so a
    chapter executed into a scratch store reads the committed one)."""
    return project_root() / "results" / "benchmarks" / "method-costs.json"


def save(path: Path, record: dict[str, Any]) -> MethodCosts:
    """Write ``record`` atomically with its SHA-256 file, and read it back verified."""
    save_checked_json(Path(path), record)
    return load(path)


def load(path: Path | None = None) -> MethodCosts:
    """The stored benchmark, its checksum verified; a missing, damaged or edited file gets a
    one-line error saying so and how to remedy it."""
    path = Path(path) if path is not None else default_path()
    try:
        record = load_checked_json(path, REMEDY)
    except FileNotFoundError as err:
        raise FileNotFoundError(f"no stored method-cost benchmark: {err}") from err
    if not isinstance(record, dict) or record.get("format") != FORMAT:
        raise ValueError(f"{path} is not a method-cost benchmark of format {FORMAT}; {REMEDY}")
    return MethodCosts(record, path)


def _quartiles(xs: Sequence[float]) -> tuple[float, float, float]:
    if len(xs) == 1:
        return xs[0], xs[0], xs[0]
    q1, q2, q3 = statistics.quantiles(xs, n=4, method="inclusive")
    return q1, q2, q3


@dataclass(frozen=True)
class Cost:
    """One (method, setting) of the benchmark: its per-round seconds and what it trains."""

    method: str
    setting: str
    experiment: str
    meta_batch: int
    inner_steps: int | None
    seconds: tuple[float, ...]
    sample_seconds: tuple[float, ...]
    saved_bytes: float | None

    @property
    def label(self) -> str:
        return LABELS.get(self.method, self.method)

    @property
    def median(self) -> float:
        """Seconds per meta-iteration (median over the rounds)."""
        return _quartiles(self.seconds)[1]

    @property
    def iqr(self) -> tuple[float, float]:
        """The first and third quartiles of the seconds per meta-iteration."""
        q1, _, q3 = _quartiles(self.seconds)
        return q1, q3

    @property
    def per_task(self) -> float:
        """Seconds per task (episode) of the meta-batch: the median over the meta-batch size."""
        return self.median / self.meta_batch

    @property
    def sampling(self) -> float:
        """Median seconds of the step spent sampling the meta-batch."""
        return statistics.median(self.sample_seconds)


class MethodCosts:
    """The stored benchmark: a :class:`Cost` per (method, setting), and its provenance."""

    def __init__(self, record: dict[str, Any], path: Path) -> None:
        self.record, self.path = record, path
        self.costs = {
            (e["method"], e["setting"]): Cost(
                e["method"],
                e["setting"],
                e["experiment"],
                int(e["meta_batch"]),
                e.get("inner_steps"),
                tuple(e["seconds"]),
                tuple(e["sample_seconds"]),
                e.get("saved_bytes"),
            )
            for e in record["entries"]
        }

    def __contains__(self, key: tuple[str, str]) -> bool:
        return key in self.costs

    def __getitem__(self, key: tuple[str, str]) -> Cost:
        if key not in self.costs:
            left = {(e["method"], e["setting"]): e["reason"] for e in self.record["left_out"]}
            why = left.get(key, "not in the benchmark")
            raise KeyError(f"{key[0]} {key[1]}: {why} ({self.path})")
        return self.costs[key]

    @property
    def rounds(self) -> int:
        return int(self.record["rounds"])

    def ratio(self, method: str, setting: str, ref: str = "maml", ref_setting: str = "") -> float:
        """``method``'s time over ``ref``'s, the median over rounds of the ratio within a round
        (both ran in every round, so a load spike that slows a round cancels)."""
        a, b = self[method, setting].seconds, self[ref, ref_setting or setting].seconds
        return statistics.median(x / y for x, y in zip(a, b, strict=True))

    def speedup(self, method: str, setting: str, ref: str = "maml") -> float:
        """The fraction of ``ref``'s time that ``method`` saves: ``1 − ratio``."""
        return 1.0 - self.ratio(method, setting, ref)

    def memory_ratio(self, method: str, setting: str, ref: str = "maml") -> float:
        """``ref``'s saved-tensor bytes over ``method``'s."""
        mine, theirs = self[method, setting].saved_bytes, self[ref, setting].saved_bytes
        if not mine or not theirs:
            raise ValueError(f"no saved-tensor bytes for {method} or {ref} at {setting}")
        return theirs / mine

    @property
    def machine(self) -> str:
        m = self.record["machine"]
        threads = "thread" if m["threads"] == 1 else "threads"
        return f"{m['device']}, {m['cores']} cores, torch {m['torch']}, {m['threads']} {threads}"

    @property
    def load_average(self) -> tuple[float, float, float]:
        """The 1-minute load average before, during (median over the rounds) and after."""
        load = self.record["load_1min"]
        during = statistics.median(load["during"]) if load["during"] else load["before"]
        return load["before"], during, load["after"]

    def provenance(self) -> str:
        """One sentence: what was measured where, when, from which commit, under what load."""
        before, during, after = self.load_average
        commit = (self.record.get("commit") or "unknown")[:7]
        dirty = " with uncommitted edits" if self.record.get("dirty") else ""
        note = f"; {self.record['note']}" if self.record.get("note") else ""
        return (
            f"`benchmarks/method_costs.py` on {self.record['date'][:10]} (commit {commit}{dirty}): "
            f"{self.machine}; {self.rounds} interleaved rounds after a dropped warm-up round; "
            f"1-minute load average {before:.1f} before, {during:.1f} during (median), "
            f"{after:.1f} after{note}"
        )

    def table(
        self,
        methods: Sequence[str],
        settings: Sequence[str],
        *,
        caption: str,
        name: str,
        ref: str | None = "maml",
        memory: bool = True,
    ) -> Table:
        """Rows for every (method, setting) measured, in the order given: milliseconds per
        meta-iteration (median and IQR over the rounds), per task, the ratio to ``ref`` in the
        same rounds (None: no such column), and the saved-tensor MiB."""
        headers = ["setting", "method", "meta-batch", "ms / meta-iteration", "IQR (ms)"]
        headers += ["ms / task"]
        if ref is not None:
            headers.append(f"× {LABELS.get(ref, ref)}")
        if memory:
            headers.append("saved MiB")
        rows = []
        for s in settings:
            for m in methods:
                if (m, s) not in self:
                    continue
                c = self[m, s]
                q1, q3 = c.iqr
                row: list[object] = [
                    setting_label(s),
                    c.label,
                    c.meta_batch,
                    f"{1e3 * c.median:,.0f}",
                    f"{1e3 * q1:,.0f}–{1e3 * q3:,.0f}",
                    f"{1e3 * c.per_task:,.1f}",
                ]
                if ref is not None:
                    row.append(f"{self.ratio(m, s, ref):.2f}" if (ref, s) in self else "—")
                if memory:
                    row.append("—" if c.saved_bytes is None else f"{c.saved_bytes / 2**20:,.1f}")
                rows.append(row)
        return Table(headers, rows, caption, name)


def summary_table(costs: MethodCosts) -> Table:
    """Every entry of the benchmark (what the script prints)."""
    methods = list(dict.fromkeys(m for m, _ in costs.costs))
    settings = list(dict.fromkeys(s for _, s in costs.costs))
    return costs.table(
        methods, settings, caption=f"Cost per meta-iteration: {costs.provenance()}", name=""
    )


#: Koch et al.'s largest training set: 150,000 pairs (Sec. 4.2, before the 8 affine distortions
#: of each), for up to 200 epochs in minibatches of 128 pairs.
KOCH_PAIRS, KOCH_EPOCHS = 150_000, 200
KOCH_FORMAT = 1
KOCH_REMEDY = "rerun benchmarks/koch_siamese.py --save to measure it again"


def koch_path() -> Path:
    """Where ``benchmarks/koch_siamese.py --save`` stores its result (beside the method costs)."""
    return default_path().with_name("koch-siamese.json")


class KochCost:
    """One step of Koch et al.'s Siamese network (105x105 images) against the book's, timed in
    the same interleaved rounds (``benchmarks/koch_siamese.py``)."""

    def __init__(self, record: dict[str, Any]) -> None:
        self.record = record
        self.book_parameters = int(record["book"]["parameters"])
        self.koch_parameters = int(record["koch"]["parameters"])
        self.book_seconds = statistics.median(record["book"]["seconds"])
        self.koch_seconds = statistics.median(record["koch"]["seconds"])
        rounds = zip(record["book"]["seconds"], record["koch"]["seconds"], strict=True)
        self.ratio = statistics.median(k / b for b, k in rounds)

    @property
    def schedule_hours(self) -> float:
        """CPU-hours of Koch et al.'s longest schedule at the measured speed."""
        steps = KOCH_PAIRS * KOCH_EPOCHS / self.record["pairs_per_step"]
        return steps * self.koch_seconds / 3600

    def provenance(self) -> str:
        r = self.record
        commit = (r.get("commit") or "unknown")[:7]
        return (
            f"`benchmarks/koch_siamese.py` on {r['date'][:10]} (commit {commit}): {r['machine']}, "
            f"torch {r['torch']}, one thread, {r['rounds']} interleaved rounds, 1-minute load "
            f"{r['load_1min']['before']:.1f} before"
        )


def load_koch(path: Path | None = None) -> KochCost:
    """The stored Koch benchmark, its checksum verified (one-line errors, as :func:`load`)."""
    path = Path(path) if path is not None else koch_path()
    record = load_checked_json(path, KOCH_REMEDY)
    if not isinstance(record, dict) or record.get("format") != KOCH_FORMAT:
        raise ValueError(f"{path} is not a Koch benchmark of format {KOCH_FORMAT}; {KOCH_REMEDY}")
    return KochCost(record)


def method_setting(name: str) -> tuple[str, str] | None:
    """``omniglot/maml-5w1s`` as ``("maml", "5w1s")``: the benchmark's key of a catalogue
    experiment (None for one it has no key for). An ablation that keeps its run's step
    (:data:`SAME_STEP`, e.g. ``omniglot/matching-5w1s-long``) has its run's key."""
    found = re.fullmatch(r"omniglot/(.+?)-(\d+w\d+s)(-[a-z0-9-]+)?", name)
    if found is None or (found[3] is not None and found[3] not in SAME_STEP):
        return None
    return found[1], found[2]


# Ablations whose training step costs what their run's does (the same episodes and network):
# the benchmark of the run serves them
SAME_STEP = frozenset(
    ("-cosine", "-euclidean", "-halve", "-nontransductive", "-one-sided", "-trainval", "-long")
)


def step_estimate(name: str, config: Any) -> tuple[float, str] | None:
    """Seconds per training iteration of experiment ``name`` (``config``) on this CPU by the
    stored benchmarks, and what the number is, for a run with no cost of its own yet: Koch et
    al.'s network from :func:`load_koch` (timed on the very step its runs take), any other
    Omniglot run from the method-cost benchmark (:func:`load`). None where neither measured it,
    no benchmark is stored, or ``config`` is not at the paper profile the benchmarks time
    (another profile's meta-batch and episodes cost otherwise).
    :func:`learntolearn.catalogue.plan.plan` takes it as its ``fallback``."""
    if getattr(config, "profile", None) != "paper":  # the benchmarks time paper-profile steps
        return None
    try:
        if getattr(config, "model", None) == "siamese-koch":
            koch = load_koch()
            return koch.koch_seconds, f"{koch.koch_seconds:.3g} s/it: benchmarks/koch_siamese.py"
        key = method_setting(name)
        costs = load()
    except (FileNotFoundError, ValueError):
        return None
    if key is None or key not in costs:
        return None
    seconds = costs[key].median
    return seconds, f"{seconds:.3g} s/it: benchmarks/method_costs.py ({key[0]}, {key[1]})"
