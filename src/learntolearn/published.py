"""Numbers the papers report, with where each comes from, for the book's comparison tables.

Only numbers printed in a paper's text or tables are listed; numbers that exist only as curves
in a figure are not read off the plot (the chapter says "curve only" instead).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["SINUSOID_MAML_ONE_STEP", "Published"]


@dataclass(frozen=True)
class Published:
    mean: float
    ci95: float | None
    source: str

    def __str__(self) -> str:
        ci = f" ± {self.ci95:.2f}" if self.ci95 is not None else ""
        return f"{self.mean:.2f}{ci} ({self.source})"


# MAML on sinusoid regression, meta-test MSE after one gradient step, K = 5 / 10 / 20 support
# points. The MAML paper (Finn et al. 2017, Fig. 3) shows these results as curves only; Li et
# al. (2017, "Meta-SGD", arXiv:1707.09835, Table 1) report them as numbers, for MAML trained with
# one inner step on the same task distribution.
SINUSOID_MAML_ONE_STEP: dict[int, Published] = {
    5: Published(1.13, 0.18, "Meta-SGD Tab. 1"),
    10: Published(0.77, 0.11, "Meta-SGD Tab. 1"),
    20: Published(0.48, 0.08, "Meta-SGD Tab. 1"),
}
