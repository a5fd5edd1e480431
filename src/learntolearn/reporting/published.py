"""Numbers the papers report, with where each comes from, for the book's comparison tables.

Only numbers printed in a paper's text or tables are listed; numbers that exist only as curves
in a figure are not read off the plot (the chapter says "curve only" instead).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "ANIL_ANIL",
    "ANIL_MAML",
    "ANIL_NIL",
    "OMNIGLOT_FOMAML",
    "OMNIGLOT_MAML",
    "OMNIGLOT_REPTILE",
    "OMNIGLOT_REPTILE_TRANSDUCTIVE",
    "SINUSOID_MAML_ONE_STEP",
    "Published",
]


@dataclass(frozen=True)
class Published:
    mean: float
    ci95: float | None
    source: str
    decimals: int | None = None  # of the mean as printed; default 1 for percentages, else 2

    def __str__(self) -> str:
        digits = self.decimals if self.decimals is not None else 1 if self.mean > 20 else 2
        # the half-width as printed: with the mean's decimals when given, else as entered
        width = f"{self.ci95:.{digits}f}" if self.decimals is not None else repr(self.ci95)
        ci = f" ± {width}" if self.ci95 is not None else ""
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


def _settings(
    values: tuple[tuple[float, float], ...],
    source: str,
    settings: tuple[tuple[int, int], ...],
    decimals: int | None = None,
) -> dict[tuple[int, int], Published]:
    return {
        s: Published(m, c, source, decimals) for s, (m, c) in zip(settings, values, strict=True)
    }


_ALL = ((5, 1), (5, 5), (20, 1), (20, 5))
_20WAY = ((20, 1), (20, 5))

# Reptile on Omniglot (Nichol, Achiam & Schulman, arXiv:1803.02999v3, Table 1; the v1 table,
# "Reptile: a Scalable Metalearning Algorithm", has different numbers, e.g. 95.32 ± 0.05 for
# 5-way 1-shot). Without and with transduction (batch norm over the query batch).
OMNIGLOT_REPTILE = _settings(
    ((95.39, 0.09), (98.90, 0.10), (88.14, 0.15), (96.65, 0.33)), "Reptile v3 Tab. 1", _ALL, 2
)
OMNIGLOT_REPTILE_TRANSDUCTIVE = _settings(
    ((97.68, 0.04), (99.48, 0.06), (89.43, 0.14), (97.12, 0.32)),
    "Reptile v3 Tab. 1, transduction",
    _ALL,
    2,
)

# ANIL (Raghu, Raghu, Bengio & Vinyals, ICLR 2020), Omniglot 20-way: Table 2 (MAML and ANIL,
# trained with MAML's protocol) and the NIL table (no inner loop at test time, ANIL-trained).
ANIL_MAML = _settings(((93.7, 0.7), (96.4, 0.1)), "ANIL paper Tab. 2", _20WAY)
ANIL_ANIL = _settings(((96.2, 0.5), (98.0, 0.3)), "ANIL paper Tab. 2", _20WAY)
ANIL_NIL = _settings(((96.7, 0.3), (98.0, 0.04)), "ANIL paper, NIL table", _20WAY)
