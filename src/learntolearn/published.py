"""Numbers the papers report, with where each comes from, for the book's comparison tables.

Only numbers printed in a paper's text or tables are listed; numbers that exist only as curves
in a figure are not read off the plot (the chapter says "curve only" instead).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["OMNIGLOT_FOMAML", "OMNIGLOT_MAML", "SINUSOID_MAML_ONE_STEP", "Published"]


@dataclass(frozen=True)
class Published:
    mean: float
    ci95: float | None
    source: str

    def __str__(self) -> str:
        digits = 1 if self.mean > 20 else 2  # percentages with one decimal, as printed
        ci = f" ± {self.ci95:.{digits}f}" if self.ci95 is not None else ""
        return f"{self.mean:.{digits}f}{ci} ({self.source})"


# MAML on sinusoid regression, meta-test MSE after one gradient step, K = 5 / 10 / 20 support
# points. The MAML paper (Finn et al. 2017, Fig. 3) shows these results as curves only; Li et
# al. (2017, "Meta-SGD", arXiv:1707.09835, Table 1) report them as numbers, for MAML trained with
# one inner step on the same task distribution.
SINUSOID_MAML_ONE_STEP: dict[int, Published] = {
    5: Published(1.13, 0.18, "Meta-SGD Tab. 1"),
    10: Published(0.77, 0.11, "Meta-SGD Tab. 1"),
    20: Published(0.48, 0.08, "Meta-SGD Tab. 1"),
}


def _table1(values: tuple[tuple[float, float], ...], what: str) -> dict[tuple[int, int], Published]:
    settings = ((5, 1), (5, 5), (20, 1), (20, 5))
    return {
        s: Published(m, c, f"MAML paper Tab. 1, {what}")
        for s, (m, c) in zip(settings, values, strict=True)
    }


# Omniglot few-shot accuracy (%) of the MAML paper's Table 1 (Finn et al. 2017), keyed by
# (N-way, K-shot): the convolutional MAML and its first-order approximation (Sec. 5.2).
OMNIGLOT_MAML = _table1(((98.7, 0.4), (99.9, 0.1), (95.8, 0.3), (98.9, 0.2)), "MAML")
OMNIGLOT_FOMAML = _table1(((98.3, 0.5), (99.2, 0.2), (89.4, 0.5), (97.9, 0.1)), "first order")
