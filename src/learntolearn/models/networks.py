"""Networks used across the book.

Initialisation follows the MAML reference code (Finn et al., 2017, github.com/cbfinn/maml):
fully connected weights from a normal distribution with standard deviation 0.01 truncated at two
standard deviations, convolutions Xavier-uniform, biases zero.

Every network takes ``forward(x, stats_from=None)``; ``stats_from`` reaches the batch-norm layers
(see :mod:`learntolearn.models.batchnorm`) and is ignored by networks without them.

:class:`ConvNet` also offers ``forward_tasks(params, x, stats_from)``: the same network for a
batch of B tasks at once, each with its own parameters (a leading task dimension on every
parameter and input). It is what ``vmap`` over :meth:`forward` computes, written with the task
dimension folded into the channels: one grouped convolution per layer (``groups=B``), and one
batch norm over B·C channels, which is exactly per-task, per-channel normalisation. The
batching rules of ``vmap`` reach the same layout with extra copies and element-wise work.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from learntolearn.models.batchnorm import TaskBatchNorm, task_batch_norm

__all__ = ["MLP", "ConvNet", "FCNet"]


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

    def forward(self, x: Tensor, stats_from: int | None = None) -> Tensor:
        return super().forward(x)

    def extra_repr(self) -> str:
        return f"sizes={self.sizes}"


class ConvNet(nn.Module):
    """The 4-block convolutional network of MAML's Omniglot experiments (Sec. 5.2).

    Each block is a 3x3 convolution with ``hidden`` filters, batch normalisation and ReLU.
    ``pool=False`` downsamples with stride-2 convolutions (the paper's Omniglot network);
    ``pool=True`` uses stride 1 and 2x2 max-pooling instead (its MiniImagenet variant). As in
    the reference code, the strided network averages its last feature map over space, the
    max-pool network flattens it; a linear layer maps the features to ``n_way`` logits.
    ``n_way=None`` leaves the head out: the network returns its features, the embedding of
    the metric-based methods (Snell et al. 2017, Sec. 3.1: conv4-64 with max-pooling, 64
    features from a 28x28 image).
    """

    def __init__(
        self,
        n_way: int | None,
        *,
        in_channels: int = 1,
        hidden: int = 64,
        image_size: int = 28,
        pool: bool = False,
    ) -> None:
        super().__init__()
        self.pool = pool
        chans = [in_channels, hidden, hidden, hidden, hidden]
        self.convs = nn.ModuleList(
            nn.Conv2d(c_in, c_out, 3, stride=1 if pool else 2, padding=1)
            for c_in, c_out in itertools.pairwise(chans)
        )
        self.norms = nn.ModuleList(TaskBatchNorm(hidden) for _ in range(4))
        size = image_size // 16  # after four 2x2 max-pools
        self.features = hidden * size * size if pool else hidden
        self.head = None if n_way is None else nn.Linear(self.features, n_way)
        for conv in self.convs:
            nn.init.xavier_uniform_(conv.weight)
            nn.init.zeros_(conv.bias)
        if self.head is not None:
            nn.init.xavier_uniform_(self.head.weight)
            nn.init.zeros_(self.head.bias)

    def blocks(self, x: Tensor, stats_from: int | None = None) -> list[Tensor]:
        """The output of each of the four blocks (the representations of ANIL's Sec. 3)."""
        outs = []
        for conv, norm in zip(self.convs, self.norms, strict=True):
            x = torch.relu(norm(conv(x), stats_from))
            if self.pool:
                x = torch.nn.functional.max_pool2d(x, 2)
            outs.append(x)
        return outs

    def forward(
        self, x: Tensor, stats_from: int | None = None, layers: bool = False
    ) -> Tensor | tuple[Tensor, ...]:
        """Logits (the features without a head); with ``layers=True``, every block's output,
        the features and the logits."""
        outs = self.blocks(x, stats_from)
        last = outs[-1]
        features = last.flatten(1) if self.pool else last.mean(dim=(2, 3))
        logits = features if self.head is None else self.head(features)
        return (*outs, features, logits) if layers else logits

    def forward_tasks(
        self, params: dict[str, Tensor], x: Tensor, stats_from: int | None = None
    ) -> Tensor:
        """Logits ``[B, N, n_way]`` of B tasks: inputs ``x [B, N, C, H, W]``, and every
        parameter with a leading dimension B (the parameters of :meth:`named_parameters`)."""
        features = self.features_tasks(params, x, stats_from)
        return features if self.head is None else self.head_tasks(params, features)

    def features_tasks(
        self, params: dict[str, Tensor], x: Tensor, stats_from: int | None = None
    ) -> Tensor:
        """The features ``[B, N, F]`` the head sees (the body's output), for B tasks."""
        b, n = x.shape[:2]
        h = x.transpose(0, 1).reshape(n, b * x.shape[2], *x.shape[3:])  # tasks into channels
        for i, (conv, norm) in enumerate(zip(self.convs, self.norms, strict=True)):
            w = params[f"convs.{i}.weight"]
            h = F.conv2d(
                h,
                w.reshape(-1, *w.shape[2:]),
                params[f"convs.{i}.bias"].reshape(-1),
                stride=conv.stride,
                padding=conv.padding,
                groups=b,
            )
            gamma, beta = params[f"norms.{i}.weight"], params[f"norms.{i}.bias"]
            h = torch.relu(
                task_batch_norm(h, gamma.reshape(-1), beta.reshape(-1), stats_from, norm.eps)
            )
            if self.pool:
                h = F.max_pool2d(h, 2)
        per_task = h.view(n, b, -1, *h.shape[2:])  # [N, B, C, h, w]
        features = per_task.flatten(2) if self.pool else per_task.mean(dim=(3, 4))
        return features.transpose(0, 1)

    @staticmethod
    def head_tasks(params: dict[str, Tensor], features: Tensor) -> Tensor:
        """The linear head of B tasks on their features ``[B, N, F]``: logits ``[B, N, n_way]``
        (only ``head.weight`` and ``head.bias`` are read)."""
        weight, bias = params["head.weight"], params["head.bias"]
        return torch.baddbmm(bias.unsqueeze(1), features, weight.transpose(1, 2))


class FCNet(nn.Module):
    """MAML's fully connected Omniglot network: 256-128-64-64 hidden units, each with batch
    normalisation and ReLU, then a linear ``n_way`` classifier (Sec. 5.2, the non-convolutional
    baseline of Table 1)."""

    def __init__(
        self,
        n_way: int,
        *,
        in_features: int = 784,
        hidden: Sequence[int] = (256, 128, 64, 64),
        init_std: float = 0.01,
    ) -> None:
        super().__init__()
        sizes = [in_features, *hidden]
        self.linears = nn.ModuleList(nn.Linear(a, b) for a, b in itertools.pairwise(sizes))
        self.norms = nn.ModuleList(TaskBatchNorm(h) for h in hidden)
        self.head = nn.Linear(sizes[-1], n_way)
        for lin in [*self.linears, self.head]:
            nn.init.trunc_normal_(lin.weight, std=init_std, a=-2 * init_std, b=2 * init_std)
            nn.init.zeros_(lin.bias)

    def forward(self, x: Tensor, stats_from: int | None = None) -> Tensor:
        x = x.flatten(1)
        for lin, norm in zip(self.linears, self.norms, strict=True):
            x = torch.relu(norm(lin(x), stats_from))
        return self.head(x)
