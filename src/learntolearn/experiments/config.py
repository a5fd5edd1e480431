"""Experiment configurations, their stable keys, and the three profiles.

An experiment is a frozen :class:`ExperimentConfig`. Its *key* is a hash of every field that
can change the result (fields left at ``None`` do not count, so fields added later for other
methods leave existing keys alone); the results store files each result under its key.

Profiles say how much compute a number cost, and the book labels every number with one:
``smoke`` (seconds; CI only; numbers mean nothing), ``cpu`` (minutes to an hour per run on a
laptop CPU; shorter training than the paper, honestly labelled) and ``paper`` (the paper's
protocol).
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

from learntolearn.experiments.method_table import METHODS as METHOD_TABLE
from learntolearn.experiments.method_table import method_fields
from learntolearn.experiments.task_families import FAMILIES
from learntolearn.methods.prototypical import DISTANCES

__all__ = ["METHODS", "PROFILES", "ConfigError", "ExperimentConfig"]

METHODS = tuple(METHOD_TABLE)
TASKS = tuple(FAMILIES)
SEED_RANGE = 2**53  # seeds derived from these (e.g. seed · 1000 + K) stay below 2**63
PROFILES = ("smoke", "cpu", "paper")
# Fields that only change how a trained model is evaluated.
EVALUATION_FIELDS = frozenset(
    ("eval_shots", "eval_lrs", "eval_steps", "eval_tasks", "eval_query", "eval_seed", "test_steps")
)
_NAME = re.compile(r"[a-z0-9][a-z0-9_/-]*")


class ConfigError(ValueError):
    """A configuration that cannot be run; the message names the field and the fix."""


@dataclass(frozen=True)
class ExperimentConfig:
    """Everything that determines one training run and its evaluation."""

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
    meta_lr_halve_every: int | None = None
    augment: str | None = None
    # MAML: compare the exact and first-order meta-gradients every N iterations
    # (analysis/meta_gradients.py)
    monitor_every: int | None = None
    # evaluate on the fixed test tasks every N iterations during training, at the reported
    # step only (a learning curve; never used to select a model)
    milestone_every: int | None = None

    def __post_init__(self) -> None:
        def need(cond: bool, msg: str) -> None:
            if not cond:
                raise ConfigError(f"config {self.name!r}: {msg}")

        need(
            isinstance(self.name, str) and _NAME.fullmatch(self.name) is not None,
            "name must be lowercase letters, digits, '-', '_' and '/' (e.g. 'sinusoid/maml-k10')",
        )
        need(
            self.method in METHOD_TABLE,
            f"method {self.method!r} is unknown; use one of {tuple(METHOD_TABLE)}",
        )
        need(
            self.profile in PROFILES, f"profile {self.profile!r} is unknown; use one of {PROFILES}"
        )
        need(self.tasks in TASKS, f"tasks {self.tasks!r} is unknown; use one of {TASKS}")
        family = FAMILIES[self.tasks]
        entry = METHOD_TABLE[self.method]
        need(
            self.tasks in entry.families,
            f"method {self.method!r} is not available for {self.tasks} tasks; it applies to "
            f"{', '.join(entry.families)}",
        )
        for f in ("k_shot", "k_query", "meta_batch", "iterations", "eval_tasks", "eval_query"):
            need(
                _is_int(getattr(self, f)) and getattr(self, f) >= 1,
                f"{f} must be a positive integer, got {getattr(self, f)!r}",
            )
        need(
            _is_int(self.eval_steps) and self.eval_steps >= 0,
            f"eval_steps must be an integer >= 0, got {self.eval_steps!r}",
        )
        problem = family.check(self)  # the family's own fields (network, reported step)
        need(problem is None, str(problem))
        for f in ("seed", "eval_seed"):
            v = getattr(self, f)
            need(
                _is_int(v) and 0 <= v < SEED_RANGE,
                f"{f} must be an integer in [0, 2**53), got {v!r}",
            )
        need(_is_pos(self.meta_lr), f"meta_lr must be a positive number, got {self.meta_lr!r}")
        need(
            len(self.eval_shots) == len(self.eval_lrs) >= 1,
            "eval_shots and eval_lrs must be non-empty and of equal length "
            f"(got {self.eval_shots!r} and {self.eval_lrs!r})",
        )
        need(all(_is_int(k) and k >= 1 for k in self.eval_shots), "eval_shots must be >= 1")
        need(all(_is_pos(lr) for lr in self.eval_lrs), "eval_lrs must be positive numbers")
        for f in ("monitor_every", "milestone_every"):
            v = getattr(self, f)
            need(v is None or (_is_int(v) and v >= 1), f"{f} must be a positive integer, got {v!r}")
        needs, allows = entry.needs, entry.allows
        for f in needs:
            need(getattr(self, f) is not None, f"{self.method} needs {f}")
        stray = [
            f for f in method_fields() if getattr(self, f) is not None and f not in needs + allows
        ]
        need(not stray, f"{', '.join(stray)} do(es) not apply to {self.method!r}; leave unset")
        if self.inner_lr is not None:
            need(
                _is_pos(self.inner_lr),
                f"inner_lr must be a positive number, got {self.inner_lr!r}",
            )
        if self.inner_steps is not None:
            need(
                _is_int(self.inner_steps) and self.inner_steps >= 1,
                f"inner_steps must be an integer >= 1, got {self.inner_steps!r}",
            )
        if self.first_order is not None:
            need(isinstance(self.first_order, bool), "first_order must be true or false")
        if self.inner_batch is not None:
            need(
                _is_int(self.inner_batch) and self.inner_batch >= 1,
                f"inner_batch must be a positive integer, got {self.inner_batch!r}",
            )
        if self.inner_optimizer is not None:
            need(
                self.inner_optimizer in ("sgd", "adam"),
                f"inner_optimizer must be 'sgd' or 'adam', got {self.inner_optimizer!r}",
            )
        if self.inner_params is not None:
            need(self.inner_params == "head", "inner_params must be 'head' (ANIL) or unset")
            need(self.n_way is not None, "inner_params='head' applies to classifiers only")
        for f, low in (("train_way", 2), ("read_steps", 1), ("meta_lr_halve_every", 1)):
            v = getattr(self, f)
            need(
                v is None or (_is_int(v) and v >= low),
                f"{f} must be an integer >= {low}, got {v!r}",
            )
        if self.distance is not None:
            need(
                self.distance in DISTANCES,
                f"distance must be 'euclidean' or 'cosine', got {self.distance!r}",
            )
        if self.augment is not None:
            need(
                self.augment == "affine", f"augment must be 'affine' or unset, got {self.augment!r}"
            )
        need(
            entry.models is None or self.model in entry.models,
            f"method {self.method!r} takes model {' or '.join(map(str, entry.models or ()))}, "
            f"got {self.model!r}",
        )
        problem = entry.check(self)
        need(problem is None, str(problem))
        if self.meta_lr_final is not None:
            need(
                _is_int(self.meta_lr_final) or isinstance(self.meta_lr_final, float),
                f"meta_lr_final must be a number, got {self.meta_lr_final!r}",
            )
            need(self.meta_lr_final >= 0, "meta_lr_final must be >= 0")

    @property
    def key(self) -> str:
        """Stable identifier: readable prefix + hash of every result-relevant field."""
        payload = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))
        digest = hashlib.sha256(payload.encode()).hexdigest()[:10]
        return f"{self.name.replace('/', '-')}-{self.profile}-{digest}"

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

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ExperimentConfig:
        """Build from JSON-like data; unknown or missing fields give a :class:`ConfigError`."""
        if not isinstance(data, dict):
            raise ConfigError(f"a config must be a JSON object, got {type(data).__name__}")
        known = {f.name: f for f in fields(cls)}
        unknown = sorted(set(data) - set(known))
        if unknown:
            raise ConfigError(
                f"unknown config field(s) {unknown}; valid fields are {sorted(known)}"
            )
        missing = [n for n in ("name", "method", "profile") if n not in data]
        if missing:
            raise ConfigError(f"config is missing required field(s) {missing}")
        values = {k: tuple(v) if isinstance(v, list) else v for k, v in data.items()}
        try:
            return cls(**values)
        except TypeError as err:  # e.g. a list where a number belongs
            raise ConfigError(f"config has a value of the wrong type: {err}") from err

    def with_(self, **changes: Any) -> ExperimentConfig:
        return replace(self, **changes)


def _is_int(v: object) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_pos(v: object) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and v > 0
