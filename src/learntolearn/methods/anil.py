"""ANIL, Almost No Inner Loop (Raghu, Raghu, Bengio & Vinyals, ICLR 2020, Sec. 4).

MAML (Algorithm 2 of Finn et al.) with the inner loop restricted to the network's head, the
final linear classifier; the outer loop still trains every parameter:

    θ'_head = θ_head − α ∇_{θ_head} L_{T_i}(f_θ)      (Eq. 1, the body fixed)
    θ ← θ − β ∇_θ Σ_i L_{T_i}(f_{θ_body, θ'_head})

At test time the head alone is fine-tuned. Everything else is :class:`~.maml.MAML`'s.
"""

from __future__ import annotations

from dataclasses import dataclass

from learntolearn.methods.maml import MAML

__all__ = ["ANIL", "HEAD"]

HEAD = ("head.weight", "head.bias")
"""The classifier's last layer in the book's networks (``ConvNet.head``, ``FCNet.head``): what
ANIL adapts (Sec. 4)."""


@dataclass(frozen=True)
class ANIL(MAML):
    """MAML whose inner loop adapts ``adapted`` (the head) alone."""

    adapted: tuple[str, ...] | None = HEAD

    def __post_init__(self) -> None:
        if not self.adapted:
            raise ValueError("ANIL adapts the head: adapted must name its parameters")
