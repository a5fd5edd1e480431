"""What every kind of experiment's config shares: a stable key, JSON round trips, field checks.

A config is a frozen dataclass that mixes in :class:`Spec`: few-shot runs
(:class:`~learntolearn.fewshot.config.ExperimentConfig`), learned optimizers
(:class:`~learntolearn.learned_optimizers.config.OptimizerConfig`) and hyperparameter searches
(:class:`~learntolearn.search.space.SearchConfig`). Its *key* is a readable prefix and a hash
of :meth:`Spec.to_dict`, which each kind writes itself (they leave ``None`` fields out by
different rules, and every stored key must stay as it is). The engine files results under
that key and knows nothing else about the kind.

Profiles say how much compute a number cost, and the book labels every number with one:
``smoke`` (seconds; CI only; numbers mean nothing), ``cpu`` (minutes to an hour per run on a
laptop CPU; shorter than the paper, honestly labelled) and ``paper`` (the paper's protocol).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import re
from typing import Any, ClassVar, TypeVar

__all__ = [
    "PROFILES",
    "ConfigError",
    "Spec",
    "is_int",
    "is_number",
    "is_positive",
]

PROFILES = ("smoke", "cpu", "paper")
S = TypeVar("S", bound="Spec")
NAME = re.compile(r"[a-z0-9][a-z0-9_/-]*")


class ConfigError(ValueError):
    """A configuration that cannot be run; the message names the field and the fix."""


def is_int(v: object) -> bool:
    """An integer that is not a bool (``True`` is not the number of iterations 1)."""
    return isinstance(v, int) and not isinstance(v, bool)


def is_number(v: object) -> bool:
    """A finite int or float that is not a bool."""
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)


def is_positive(v: object) -> bool:
    """A finite number > 0 (NaN and infinity are not step sizes)."""
    return is_number(v) and v > 0  # type: ignore[operator]


class Spec:
    """The mix-in of every experiment config (a frozen dataclass with ``name`` and
    ``profile``): its key, ``to_dict``/``from_dict`` and :meth:`need` for field checks.

    ``what`` names the kind in error messages ("config", "optimizer config", ...).
    """

    what: ClassVar[str] = "config"
    name: str
    profile: str

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready fields; the key is a hash of exactly this (each kind's own rule)."""
        raise NotImplementedError

    @property
    def key(self) -> str:
        """Stable identifier: readable prefix + hash of every result-relevant field."""
        payload = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))
        digest = hashlib.sha256(payload.encode()).hexdigest()[:10]
        return f"{self.name.replace('/', '-')}-{self.profile}-{digest}"

    def need(self, cond: bool, msg: str) -> None:
        """Raise :class:`ConfigError` naming this config with ``msg`` unless ``cond``."""
        if not cond:
            raise ConfigError(f"{self.what} {getattr(self, 'name', '?')!r}: {msg}")

    def check_common(self) -> None:
        """The checks every kind shares: a usable name and a known profile."""
        self.need(
            isinstance(self.name, str) and NAME.fullmatch(self.name) is not None,
            "name must be lowercase letters, digits, '-', '_' and '/' (e.g. 'sinusoid/maml-k10')",
        )
        self.need(
            self.profile in PROFILES, f"profile {self.profile!r} is unknown; use one of {PROFILES}"
        )

    @classmethod
    def from_dict(cls: type[S], data: Any) -> S:
        """Build from JSON-like data (lists become tuples); a value that is not a JSON object,
        an unknown or missing field, or a value of the wrong type gives a :class:`ConfigError`."""
        if not isinstance(data, dict):
            raise ConfigError(f"a {cls.what} must be a JSON object, got {type(data).__name__}")
        fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
        unknown = sorted(set(data) - set(fields))
        if unknown:
            raise ConfigError(
                f"unknown {cls.what} field(s) {unknown}; valid fields are {sorted(fields)}"
            )
        required = [
            n
            for n, f in fields.items()
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        ]
        missing = [n for n in required if n not in data]
        if missing:
            raise ConfigError(f"{cls.what} is missing required field(s) {missing}")
        values = {k: tuple(v) if isinstance(v, list) else v for k, v in data.items()}
        try:
            return cls(**values)
        except TypeError as err:  # e.g. a list where a number belongs
            raise ConfigError(f"{cls.what} has a value of the wrong type: {err}") from err

    def with_(self: S, **changes: Any) -> S:
        """A copy with ``changes`` (checked again)."""
        return dataclasses.replace(self, **changes)  # type: ignore[type-var]
