"""The few-shot experiments' config: :class:`ExperimentConfig` and its checks.

An experiment is a frozen :class:`ExperimentConfig`. Its *key* is a hash of every field that
can change the result (fields left at ``None`` do not count, so fields added later for other
methods leave existing keys alone); the results store files each result under its key. The
fields every method shares are checked here, the task family's by its table entry
(:mod:`~learntolearn.fewshot.task_families`) and each method's own by its entry in
:mod:`~learntolearn.fewshot.method_table`.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, fields
from typing import Any, ClassVar

from learntolearn.experiments.spec import (
    PROFILES,
    ConfigError,
    Spec,
    is_int,
    is_number,
    is_positive,
)
from learntolearn.fewshot.method_table import METHODS as METHOD_TABLE
from learntolearn.fewshot.method_table import method_fields
from learntolearn.fewshot.task_families import FAMILIES

__all__ = ["METHODS", "PROFILES", "ConfigError", "ExperimentConfig"]

METHODS = tuple(METHOD_TABLE)
TASKS = tuple(FAMILIES)
SEED_RANGE = 2**53  # seeds derived from these (e.g. seed · 1000 + K) stay below 2**63
# Fields that only change how a trained model is evaluated.
EVALUATION_FIELDS = frozenset(
    ("eval_shots", "eval_lrs", "eval_steps", "eval_tasks", "eval_query", "eval_seed", "test_steps")
)


@dataclass(frozen=True)
class ExperimentConfig(Spec):
    """Everything that determines one training run and its evaluation."""

    what: ClassVar[str] = "config"

    name: str
    method: str
    profile: str
    tasks: str = "sinusoid"
    # task family: K support and k_query query examples (per class for classification)
    k_shot: int = 10
    k_query: int = 10
    n_way: int | None = None  # classification only
    # model: hidden widths of the sinusoid MLP, or a named classifier (see models/networks.py)
    hidden: tuple[int, ...] | None = (40, 40)
    model: str | None = None
    # inner loop (MAML and Reptile)
    inner_lr: float | None = None
    inner_steps: int | None = None
    first_order: bool | None = None  # MAML only
    inner_params: str | None = None  # MAML only: "head" adapts the head alone (ANIL)
    inner_batch: int | None = None  # Reptile only: examples per inner minibatch
    inner_optimizer: str | None = None  # Reptile only: "sgd" or "adam" (also at test time)
    # outer loop / joint training
    meta_batch: int = 25
    meta_lr: float = 1e-3  # Adam's step size; Reptile: the outer step size ε at the start
    meta_lr_final: float | None = None  # Reptile only: ε at the end, reached linearly
    iterations: int = 70_000
    seed: int = 0
    # evaluation on fixed test tasks: fine-tuning with lr eval_lrs[i] on eval_shots[i] points
    eval_shots: tuple[int, ...] = (5, 10, 20)
    eval_lrs: tuple[float, ...] = (0.01, 0.01, 0.01)
    eval_steps: int = 10
    eval_tasks: int = 600
    eval_query: int = 100
    eval_seed: int = 2017
    # classification: the adaptation steps the paper reports at test time (curve runs 0..eval_steps)
    test_steps: int | None = None
    # metric-based methods: classes per training episode, when not n_way (Prototypical: 60; a
    # set train_way makes n_way an evaluation field), the distance compared with (Prototypical
    # and Matching: "euclidean" or "cosine"), Matching's full context embeddings (K attention
    # steps), Adam's step size halved every N iterations, and Koch's affine distortions of the
    # training images ("affine", Siamese)
    train_way: int | None = None
    distance: str | None = None
    read_steps: int | None = None
    attention_scale: float | None = None  # Matching: the temperature of its softmax (1 unset)
    meta_lr_halve_every: int | None = None
    augment: str | None = None
    # batch norm while training (metric-based methods): "non-transductive" normalises each
    # query with its task's support-set statistics, the mode the papers are compared in (unset:
    # transductive, each set by its own statistics, as the Prototypical and Relation code)
    train_bn_mode: str | None = None
    # MAML: compare the exact and first-order meta-gradients every N iterations
    # (analysis/meta_gradients.py)
    monitor_every: int | None = None
    # evaluate on the fixed test tasks every N iterations during training, at the reported
    # step only (a learning curve; never used to select a model)
    milestone_every: int | None = None
    # a stopping rule fixed before the run (fewshot/stopping.py): score the validation classes
    # every stop_every iterations, keep the best parameters, stop when the score has not risen
    # by more than stop_delta (accuracy, a fraction) for stop_patience evaluations
    stop_every: int | None = None
    stop_patience: int | None = None
    stop_delta: float | None = None

    def __post_init__(self) -> None:
        need = self.need
        self.check_common()
        need(
            self.method in METHOD_TABLE,
            f"method {self.method!r} is unknown; use one of {tuple(METHOD_TABLE)}",
        )
        need(self.tasks in TASKS, f"tasks {self.tasks!r} is unknown; use one of {TASKS}")
        entry = METHOD_TABLE[self.method]
        need(
            self.tasks in entry.families,
            f"method {self.method!r} is not available for {self.tasks} tasks; it applies to "
            f"{', '.join(entry.families)}",
        )
        for f in ("k_shot", "k_query", "meta_batch", "iterations", "eval_tasks", "eval_query"):
            need(
                is_int(getattr(self, f)) and getattr(self, f) >= 1,
                f"{f} must be a positive integer, got {getattr(self, f)!r}",
            )
        need(
            is_int(self.eval_steps) and self.eval_steps >= 0,
            f"eval_steps must be an integer >= 0, got {self.eval_steps!r}",
        )
        family = FAMILIES[self.tasks]
        problem = family.check(self)  # the family's own fields (way, reported step)
        need(problem is None, str(problem))
        networks = (*family.networks, *entry.networks)
        need(
            self.model is None or self.model in networks,
            f"model {self.model!r} is unknown for {self.tasks} tasks and {self.method!r}; use "
            f"one of {networks}",
        )
        for f in ("seed", "eval_seed"):
            v = getattr(self, f)
            need(
                is_int(v) and 0 <= v < SEED_RANGE,
                f"{f} must be an integer in [0, 2**53), got {v!r}",
            )
        need(is_positive(self.meta_lr), f"meta_lr must be a positive number, got {self.meta_lr!r}")
        need(
            isinstance(self.eval_shots, tuple)
            and isinstance(self.eval_lrs, tuple)
            and len(self.eval_shots) == len(self.eval_lrs) >= 1,
            "eval_shots and eval_lrs must be non-empty and of equal length "
            f"(got {self.eval_shots!r} and {self.eval_lrs!r})",
        )
        need(all(is_int(k) and k >= 1 for k in self.eval_shots), "eval_shots must be >= 1")
        need(all(is_positive(lr) for lr in self.eval_lrs), "eval_lrs must be positive numbers")
        for f in ("monitor_every", "milestone_every"):
            v = getattr(self, f)
            need(v is None or (is_int(v) and v >= 1), f"{f} must be a positive integer, got {v!r}")
        needs, allows = entry.needs, entry.allows
        for f in needs:
            need(getattr(self, f) is not None, f"{self.method} needs {f}")
        owned = {**needs, **allows}
        stray = [f for f in method_fields() if getattr(self, f) is not None and f not in owned]
        need(not stray, f"{', '.join(stray)} do(es) not apply to {self.method!r}; leave unset")
        for f, check in owned.items():  # each set field by its method's table entry
            value = getattr(self, f)
            problem = None if value is None else check(self, value)
            need(problem is None, f"{f} {problem}")
        rule = (self.stop_every, self.stop_patience, self.stop_delta)
        need(
            all(v is None for v in rule) or all(v is not None for v in rule),
            "stop_every, stop_patience and stop_delta make one stopping rule: set all or none",
        )
        if self.stop_every is not None:
            for f in ("stop_every", "stop_patience"):
                v = getattr(self, f)
                need(is_int(v) and v >= 1, f"{f} must be a positive integer, got {v!r}")
            need(
                is_number(self.stop_delta) and 0 <= self.stop_delta < 1,  # type: ignore[operator]
                f"stop_delta must be a number in [0, 1), got {self.stop_delta!r}",
            )
            need(
                family.validation_sets is not None,
                f"{self.tasks} tasks have no validation classes for a stopping rule",
            )
        need(
            entry.models is None or self.model in entry.models,
            f"method {self.method!r} takes model {' or '.join(map(str, entry.models or ()))}, "
            f"got {self.model!r}",
        )
        problem = entry.check(self)
        need(problem is None, str(problem))

    @property
    def training_key(self) -> str:
        """Hash of the fields that determine training (the evaluation fields left out, and
        ``n_way`` when ``train_way`` is set): two configs with the same training key train
        bit-for-bit the same parameters."""
        fields_ = {k: v for k, v in self.to_dict().items() if k not in EVALUATION_FIELDS}
        fields_.pop("name")
        if self.train_way is not None:  # training episodes have their own way: N is the test's
            fields_.pop("n_way")
        payload = json.dumps(fields_, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(payload.encode()).hexdigest()[:16]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready fields; a ``None`` is left out where ``None`` is the field's default."""
        defaults = {f.name: f.default for f in fields(self)}
        return {
            k: list(v) if isinstance(v, tuple) else v
            for k, v in asdict(self).items()
            if v is not None or defaults[k] is not None
        }
