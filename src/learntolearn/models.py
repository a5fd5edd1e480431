"""Networks used across the book.

Initialisation follows the MAML reference code (Finn et al., 2017, github.com/cbfinn/maml):
fully connected weights from a normal distribution with standard deviation 0.01 truncated at two
standard deviations, biases zero.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

from torch import nn

__all__ = ["MLP"]


class MLP(nn.Sequential):
    """``sizes[0] → sizes[1] → … → sizes[-1]`` with ReLU between layers (none after the last).

    The sinusoid regressor of MAML (Sec. 5.1) is ``MLP((1, 40, 40, 1))``.
    """

    def __init__(self, sizes: Sequence[int], init_std: float = 0.01) -> None:
        if len(sizes) < 2 or any(int(s) < 1 for s in sizes):
            raise ValueError(f"MLP sizes must be at least two positive integers, got {sizes!r}")
        layers: list[nn.Module] = []
        for i, (n_in, n_out) in enumerate(itertools.pairwise(sizes)):
            linear = nn.Linear(n_in, n_out)
            nn.init.trunc_normal_(linear.weight, std=init_std, a=-2 * init_std, b=2 * init_std)
            nn.init.zeros_(linear.bias)
            layers.append(linear)
            if i < len(sizes) - 2:
                layers.append(nn.ReLU())
        super().__init__(*layers)
        self.sizes = tuple(int(s) for s in sizes)

    def extra_repr(self) -> str:
        return f"sizes={self.sizes}"
