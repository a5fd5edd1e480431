"""Why random search works (chapter 9): the chance that random trials hit the best settings.

Draw x settings independently and uniformly from N, of which K count as good (the top K). One
trial misses them with probability 1 − K/N, all x miss with (1 − K/N)^x, so at least one hits
with probability

    P(hit) = 1 − (1 − K/N)^x,

and P(hit) > p once x > log(1 − p) / log(1 − K/N). With N = 1000, K = 10 that is x = 230 for
p = 0.9; with K = 100 it is x = 22 (the example of Hung-yi Lee's 2019 lecture on meta-learning,
whose notes call it the probability of *missing* the top K). Nothing in it depends on the number
of hyperparameters: only the fraction K/N of good settings counts.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

__all__ = ["best_so_far", "hit_probability", "simulated_hits", "trials_needed"]


def hit_probability(k: int, n: int, x: int | np.ndarray) -> float | np.ndarray:
    """P(at least one of x uniform draws, with replacement, is among the top k of n)."""
    if not 0 < k <= n:
        raise ValueError(f"need 0 < k <= n, got k={k}, n={n}")
    return 1.0 - (1.0 - k / n) ** np.asarray(x, dtype=float)


def trials_needed(k: int, n: int, p: float) -> int:
    """The smallest x with ``hit_probability(k, n, x) > p``."""
    if not 0 < p < 1:
        raise ValueError(f"p must be in (0, 1), got {p}")
    if k == n:
        return 1
    x = math.ceil(math.log(1 - p) / math.log(1 - k / n))
    while hit_probability(k, n, x) <= p:  # at equality (round-off), one more
        x += 1
    return x


def simulated_hits(
    values: Sequence[float], k: int, xs: Sequence[int], repeats: int, seed: int = 0
) -> np.ndarray:
    """The fraction of ``repeats`` simulated random searches of x trials (for each x in ``xs``),
    drawn with replacement from ``values`` (the N settings' scores, lower is better), whose
    best trial is among the top ``k`` settings (exactly k: ties broken by position)."""
    v = np.asarray(values, dtype=float)
    good = np.zeros(len(v), dtype=bool)
    good[np.argsort(v, kind="stable")[:k]] = True
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, len(v), size=(repeats, max(xs)))
    hit_by = np.maximum.accumulate(good[draws], axis=1)  # [repeats, x]: a hit among the first x
    return np.array([hit_by[:, x - 1].mean() for x in xs])


def best_so_far(values: Sequence[float]) -> np.ndarray:
    """The running minimum: the best value after each trial (lower is better)."""
    return np.minimum.accumulate(np.asarray(values, dtype=float))
