"""SNAIL, the simple neural attentive meta-learner (Mishra, Rohaninejad, Chen & Abbeel, ICLR
2018).

The learner reads the episode as a sequence (Sec. 3): each support example with its own label
and then the query with a zero label (Sec. 4.1, ``label_delay = 0`` of the black-box
formulation, :mod:`~learntolearn.methods.black_box`), and predicts the query's label from its
output at the last step. It interleaves two causal building blocks (Sec. 3.1): temporal
convolutions, which aggregate the past at exponentially growing dilations, and soft attention,
which picks out single past steps. For a sequence ``x [T, C]`` (``x_t`` the row of step t):

Dense block (dilation d, ``filters`` channels), a gated causal convolution of kernel size 2:

    xf_t = W_f,0 x_{t−d} + W_f,1 x_t + b_f          (causal: x_{t−d} = 0 for t < d)
    xg_t = W_g,0 x_{t−d} + W_g,1 x_t + b_g
    a_t  = tanh(xf_t) ⊙ σ(xg_t)
    DenseBlock(x)_t = [x_t; a_t]                                     (C + filters features)

TC block (sequence length T, ``filters``): ⌈log₂ T⌉ dense blocks, dilations 1, 2, 4, …,
2^{⌈log₂ T⌉−1}, one after the other, so output t sees every input 0..t (receptive field
2^{⌈log₂ T⌉} ≥ T); C + ⌈log₂ T⌉ · filters features.

Attention block (key size K, value size V):

    k_t = W_k x_t,   q_t = W_q x_t,   v_t = W_v x_t
    p_{t,s} = softmax_s(q_t · k_s / √K)   over s ≤ t   (causal mask: p_{t,s} = 0 for s > t)
    AttentionBlock(x)_t = [x_t; Σ_{s≤t} p_{t,s} v_s]                       (C + V features)

The Omniglot network of the paper's appendix (its embedding there is a four-block convolutional
network like the book's conv4-64, which the book shares with the metric-based methods):

    AttentionBlock(64, 32) → TCBlock(T, 128) → AttentionBlock(256, 128) → TCBlock(T, 128)
    → AttentionBlock(512, 256) → 1×1 convolution to N logits

with T = N·K + 1 the episode's length. A trap of a public implementation: it counts the dense
blocks of a TC block with the natural logarithm, ⌈ln T⌉ (``math.log``), where the paper's
Sec. 3.1 says ⌈log₂ T⌉; for T = 26 (5-way 5-shot) that is 4 blocks instead of 5, and the last
step's receptive field (16) no longer covers the sequence.

Every query continues the support sequence on its own, so one query never sees another. As
every block is causal, the support steps' features do not depend on the query: :meth:`SNAILCore.
answer` computes them once per task and then each query's last step alone (``extend``), which
gives the same numbers as re-reading the support sequence for every query.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from learntolearn.methods.black_box import BlackBox, SequenceCore

__all__ = ["AttentionBlock", "DenseBlock", "SNAILCore", "Snail", "TCBlock", "dense_blocks"]


def dense_blocks(length: int) -> int:
    """⌈log₂ T⌉: how many dense blocks a TC block needs for sequences of ``length`` T, the
    fewest whose dilations 1, 2, …, 2^{n−1} give the last step a view of every step."""
    if length < 1:
        raise ValueError(f"a TC block needs a sequence length of at least 1, got {length}")
    return math.ceil(math.log2(length))


class DenseBlock(nn.Module):
    """A gated causal convolution of kernel size 2 and ``dilation``, its ``filters`` outputs
    appended to the input: ``[B, T, C] → [B, T, C + filters]``."""

    kernel_size = 2

    def __init__(self, inputs: int, dilation: int, filters: int) -> None:
        super().__init__()
        self.dilation = dilation
        self.f = nn.Conv1d(inputs, filters, self.kernel_size, dilation=dilation)
        self.g = nn.Conv1d(inputs, filters, self.kernel_size, dilation=dilation)

    def forward(self, x: Tensor) -> Tensor:
        # Pad (kernel − 1) · dilation zeros on the left only: output t reads steps t − d and t.
        padded = F.pad(x.transpose(1, 2), ((self.kernel_size - 1) * self.dilation, 0))
        activations = torch.tanh(self.f(padded)) * torch.sigmoid(self.g(padded))
        return torch.cat([x, activations.transpose(1, 2)], -1)

    def extend(self, past: Tensor, new: Tensor) -> Tensor:
        """The block's output at step S for each of ``new [B, Q, C]`` read after ``past
        [B, S, C]`` (the block's inputs at steps 0..S−1)."""
        s = past.shape[1]
        earlier = (
            past[:, s - self.dilation] if s >= self.dilation else past.new_zeros(past[:, 0].shape)
        )
        earlier = earlier.unsqueeze(1).expand_as(new)

        def conv(c: nn.Conv1d) -> Tensor:
            return F.linear(earlier, c.weight[:, :, 0]) + F.linear(new, c.weight[:, :, 1], c.bias)

        return torch.cat([new, torch.tanh(conv(self.f)) * torch.sigmoid(conv(self.g))], -1)


class TCBlock(nn.Module):
    """⌈log₂ ``length``⌉ dense blocks of dilations 1, 2, 4, …: ``[B, T, C] → [B, T, C +
    blocks · filters]``."""

    def __init__(self, inputs: int, length: int, filters: int) -> None:
        super().__init__()
        self.blocks = dense_blocks(length)
        self.dense = nn.ModuleList(
            DenseBlock(inputs + i * filters, 2**i, filters) for i in range(self.blocks)
        )
        self.features = inputs + self.blocks * filters

    def forward(self, x: Tensor) -> Tensor:
        for block in self.dense:
            x = block(x)
        return x

    def extend(self, past: Tensor, new: Tensor) -> Tensor:
        """As :meth:`DenseBlock.extend`, through every dense block."""
        for block in self.dense:
            past, new = block(past), block.extend(past, new)
        return new


class AttentionBlock(nn.Module):
    """Causal single-head soft attention, the read appended to the input: ``[B, T, C] →
    [B, T, C + value_size]``."""

    def __init__(self, inputs: int, key_size: int, value_size: int) -> None:
        super().__init__()
        self.key_size = key_size
        self.keys = nn.Linear(inputs, key_size)
        self.queries = nn.Linear(inputs, key_size)
        self.values = nn.Linear(inputs, value_size)
        self.features = inputs + value_size

    def weights(self, x: Tensor) -> Tensor:
        """The attention probabilities ``[B, T, T]``: row t, how much step t reads each step
        0..t (zero above the diagonal, each row summing to one)."""
        logits = self.queries(x) @ self.keys(x).transpose(1, 2) / math.sqrt(self.key_size)
        t = x.shape[1]
        future = torch.ones(t, t, dtype=torch.bool, device=x.device).triu(1)
        return logits.masked_fill(future, float("-inf")).softmax(-1)

    def forward(self, x: Tensor) -> Tensor:
        return torch.cat([x, self.weights(x) @ self.values(x)], -1)

    def extend(self, past: Tensor, new: Tensor) -> Tensor:
        """The block's output at step S for each of ``new [B, Q, C]`` read after ``past
        [B, S, C]``: each query attends to the past steps and to itself."""
        q = self.queries(new)
        logits = torch.cat(
            [q @ self.keys(past).transpose(1, 2), (q * self.keys(new)).sum(-1, keepdim=True)], -1
        )
        p = (logits / math.sqrt(self.key_size)).softmax(-1)
        read = p[..., :-1] @ self.values(past) + p[..., -1:] * self.values(new)
        return torch.cat([new, read], -1)


class SNAILCore(SequenceCore):
    """The Omniglot SNAIL of the paper's appendix over steps of ``inputs`` features
    (embedding and one-hot label), for sequences of up to ``length`` steps and ``n_way``
    classes."""

    def __init__(self, inputs: int, n_way: int, length: int) -> None:
        super().__init__(inputs, n_way, length)
        blocks: list[AttentionBlock | TCBlock] = []
        features = inputs
        for block in (
            lambda c: AttentionBlock(c, 64, 32),
            lambda c: TCBlock(c, length, 128),
            lambda c: AttentionBlock(c, 256, 128),
            lambda c: TCBlock(c, length, 128),
            lambda c: AttentionBlock(c, 512, 256),
        ):
            blocks.append(block(features))
            features = blocks[-1].features
        self.blocks = nn.ModuleList(blocks)
        self.out = nn.Linear(features, n_way)  # the 1×1 convolution to N logits

    def read(self, steps: Tensor) -> Tensor:
        x = steps
        for block in self.blocks:
            x = block(x)
        return self.out(x)

    def answer(self, support: Tensor, queries: Tensor) -> Tensor:
        """Each query's logits ``[B, Q, N]`` after the support sequence, whose features every
        block computes once for all queries."""
        past, new = support, queries
        for block in self.blocks:
            past, new = block(past), block.extend(past, new)
        return self.out(new)

    def attention(self, steps: Tensor) -> list[Tensor]:
        """The probabilities ``[B, T, T]`` of each attention block, in order, for ``steps
        [B, T, D]`` (row t: how step t spreads its attention over steps 0..t)."""
        probs = []
        x = steps
        for block in self.blocks:
            if isinstance(block, AttentionBlock):
                probs.append(block.weights(x))
            x = block(x)
        return probs


@dataclass(frozen=True)
class Snail(BlackBox):
    """SNAIL (Mishra et al. 2018): each support example shown with its own label, the query
    with a zero label, and only the query predicted."""

    label_delay: int = 0
