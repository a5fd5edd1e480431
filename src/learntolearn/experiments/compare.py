"""Is a re-evaluation the same as the stored one? Bit for bit, within a stated tolerance, or not.

Committed results reproduce bit for bit only with the CPU instruction set that made them (ATen
picks AVX2 or AVX-512 kernels, whose float sums round differently); a few test queries near a
decision boundary may then change class. A difference counts as *within tolerance* when every
per-step mean, CI half-width and median moved by at most :data:`TOLERANCE` of that step's
stored 95% CI half-width (plus 1e-9), and every count of diverged tasks is unchanged: far below
what the interval can resolve. For accuracies the median is not compared: per-task accuracies
are multiples of one over the number of query images, so one changed query can move the median
by a whole step while the mean moves by a thousandth. Where the stored mean is ``null`` (a task
diverged to a non-finite loss), the fresh mean and CI must be ``null`` too, and the median must
agree to a relative :data:`MEDIAN_RTOL`.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

from learntolearn.io import finite_json

__all__ = ["TOLERANCE", "Verdict", "compare_evaluations"]

TOLERANCE = 0.25  # of the stored 95% CI half-width at the same step (about 0.13 standard errors)
MEDIAN_RTOL = 1e-3  # where no CI exists (a non-finite mean)


@dataclass(frozen=True)
class Verdict:
    bitwise: bool
    ok: bool
    worst: float  # the largest difference, in stored CI half-widths
    where: str

    def __str__(self) -> str:
        if self.bitwise:
            return "identical to the store (bit for bit)"
        if self.ok:
            return (
                f"not bitwise identical, but within tolerance (largest difference "
                f"{self.worst:.3f} of a 95% CI half-width, at {self.where}; tolerance {TOLERANCE})"
            )
        return (
            f"DIFFERENT from the store beyond tolerance ({self.where}: {self.worst:.3g} "
            f"CI half-widths; tolerance {TOLERANCE})"
        )


def _curves(tree: dict[str, Any], prefix: str = "") -> dict[str, dict[str, Any]]:
    """Every stored curve summary (a dict with ``mean``) by its path."""
    out: dict[str, dict[str, Any]] = {}
    for k, v in tree.items():
        if isinstance(v, dict):
            if "mean" in v:
                out[f"{prefix}{k}"] = v
            else:
                out.update(_curves(v, f"{prefix}{k}/"))
    return out


def _num(x: Any) -> float:
    return math.nan if x is None else float(x)


def compare_evaluations(fresh: dict[str, Any], stored: dict[str, Any]) -> Verdict:
    """Compare a fresh evaluation with a stored one (non-finite values compare as ``null``)."""
    fresh, stored = finite_json(fresh), finite_json(stored)
    if json.dumps(fresh, sort_keys=True) == json.dumps(stored, sort_keys=True):
        return Verdict(True, True, 0.0, "")
    a, b = _curves(fresh), _curves(stored)
    if a.keys() != b.keys():
        return Verdict(False, False, math.inf, f"different curves {sorted(a)} vs {sorted(b)}")
    worst, where, ok = 0.0, "", True
    for path, new in a.items():
        old = b[path]
        if new.get("diverged") != old.get("diverged") or len(new["mean"]) != len(old["mean"]):
            return Verdict(False, False, math.inf, f"{path} (diverged counts or steps)")
        fields = [  # the curves' fields (a learned optimizer's loss curves have no median)
            f
            for f in ("mean", "ci95", "median")
            if f in new and f in old and not (f == "median" and new.get("metric") == "accuracy")
        ]
        for field in fields:
            for step, (x, y) in enumerate(zip(new[field], old[field], strict=True)):
                x, y = _num(x), _num(y)
                if math.isnan(x) and math.isnan(y):
                    continue
                diff, ci = abs(x - y), abs(_num(old["ci95"][step]))
                if math.isnan(diff):  # one side null, the other not
                    d, fine = math.inf, False
                elif math.isnan(ci):  # no CI at this step: compare the median alone, relatively
                    d = diff / (MEDIAN_RTOL * max(abs(y), 1e-12)) * TOLERANCE
                    fine = field != "median" or diff <= MEDIAN_RTOL * abs(y) + 1e-12
                else:
                    d = diff / ci if ci > 0 else (0.0 if diff <= 1e-9 else math.inf)
                    fine = diff <= TOLERANCE * ci + 1e-9
                ok = ok and fine
                if d > worst:
                    worst, where = d, f"{path} {field}[{step}]"
    return Verdict(False, ok, worst, where)
