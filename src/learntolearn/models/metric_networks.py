"""The networks of the metric-based methods: an embedding, and what compares embeddings.

A metric-based learner meta-learns an embedding f_φ and a comparison; it has no inner loop, so
every task shares one set of parameters. :class:`MetricNet` holds both parts: its ``forward``
is the embedding (what batch normalisation and ``stats_from`` apply to, as for every network of
the book) and ``comparator`` is the learned comparison, when the method has one:

* Siamese networks (Koch et al. 2015, Sec. 3, Eq. 1): the weights α_j and bias of
  p = σ(Σ_j α_j |h₁ʲ − h₂ʲ| + b), a linear layer with one output over |h₁ − h₂|;
* Matching networks with full context embeddings (Vinyals et al. 2016, App. A):
  :class:`FullContext`;
* Relation networks (Sung et al. 2018, Sec. 3.4, Fig. 2): :class:`RelationModule`, on the maps
  of :class:`RelationEncoder`.

Prototypical and plain Matching networks compare with a fixed distance and use the conv4-64
embedding alone (:class:`~learntolearn.models.networks.ConvNet` without a head).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from learntolearn.models.batchnorm import TaskBatchNorm
from learntolearn.models.networks import ConvNet

__all__ = [
    "METRIC_NETWORKS",
    "ConvBlock",
    "FullContext",
    "KochEmbedding",
    "MetricNet",
    "RelationEncoder",
    "RelationModule",
    "conv4",
    "koch_siamese",
]


class ConvBlock(nn.Module):
    """3x3 convolution, batch normalisation, ReLU and (``pool``) 2x2 max-pooling."""

    def __init__(self, c_in: int, c_out: int, *, padding: int, pool: bool) -> None:
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, 3, padding=padding)
        self.norm = TaskBatchNorm(c_out)
        self.pool = pool

    def forward(self, x: Tensor, stats_from: int | None = None) -> Tensor:
        x = torch.relu(self.norm(self.conv(x), stats_from))
        return F.max_pool2d(x, 2) if self.pool else x


class RelationEncoder(nn.Module):
    """The embedding of Relation networks for Omniglot (Sung et al. 2018, Fig. 2 and the
    authors' code): four 64-filter blocks, the first two unpadded and max-pooled, the last two
    padded; a 28x28 image becomes a 64x5x5 feature map (not a vector: the relation module
    convolves over it)."""

    def __init__(self, in_channels: int = 1, hidden: int = 64) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(
            [
                ConvBlock(in_channels, hidden, padding=0, pool=True),
                ConvBlock(hidden, hidden, padding=0, pool=True),
                ConvBlock(hidden, hidden, padding=1, pool=False),
                ConvBlock(hidden, hidden, padding=1, pool=False),
            ]
        )

    def forward(self, x: Tensor, stats_from: int | None = None) -> Tensor:
        for block in self.blocks:
            x = block(x, stats_from)
        return x


class RelationModule(nn.Module):
    """g_φ of Relation networks (Sung et al. 2018, Sec. 3.4, Eq. 1): two max-pooled conv
    blocks over a concatenated pair of feature maps C(f(x_i), f(x_j)), then a ReLU layer of
    ``hidden`` units and one sigmoid output, the relation score r_ij in (0, 1). Its batch
    normalisation normalises the pairs it is given together."""

    def __init__(self, channels: int = 64, hidden: int = 8, size: int = 5) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(
            [
                ConvBlock(2 * channels, channels, padding=1, pool=True),
                ConvBlock(channels, channels, padding=1, pool=True),
            ]
        )
        side = size // 4
        self.fc1 = nn.Linear(channels * side * side, hidden)
        self.fc2 = nn.Linear(hidden, 1)

    def forward(self, pairs: Tensor) -> Tensor:
        """Relation scores ``[P]`` of ``P`` concatenated pairs ``[P, 2C, h, w]``."""
        x = pairs
        for block in self.blocks:
            x = block(x)
        return torch.sigmoid(self.fc2(torch.relu(self.fc1(x.flatten(1))))).squeeze(-1)


class FullContext(nn.Module):
    """Full context embeddings of Matching networks (Vinyals et al. 2016, App. A.1 and A.2).

    g(x_i, S) = h⃗_i + h⃖_i + g'(x_i): a bidirectional LSTM over the support embeddings g'
    (App. A.2). f(x, S) = attLSTM(f'(x), g(S), K): K steps of an LSTM whose input is always
    f'(x), each after a read of the support set (App. A.1):

        r_{k−1} = Σ_i softmax_i(h_{k−1}ᵀ g(x_i)) g(x_i)          (h_0 = 0: the mean of g)
        ĥ_k, c_k = LSTM(f'(x), [h_{k−1}, r_{k−1}], c_{k−1});   h_k = ĥ_k + f'(x)

    and f(x, S) = h_K. As in most reimplementations, the hidden state passed to the LSTM is
    h_{k−1} + r_{k−1} (one vector of the embedding's width) rather than the concatenation.
    """

    def __init__(self, features: int = 64) -> None:
        super().__init__()
        self.support_lstm = nn.LSTM(features, features, bidirectional=True, batch_first=True)
        self.query_lstm = nn.LSTMCell(features, features)

    def forward(self, support: Tensor, query: Tensor, steps: int) -> tuple[Tensor, Tensor]:
        """``(g(S) [B, S, F], f(x, S) [B, Q, F])`` for B tasks' embeddings ``support [B, S, F]``
        (read in the order the support set is given) and ``query [B, Q, F]``."""
        out, _ = self.support_lstm(support)
        forward_, backward_ = out.chunk(2, dim=-1)
        g = forward_ + backward_ + support
        b, q, f = query.shape
        x = query.reshape(b * q, f)
        h, c = torch.zeros_like(x), torch.zeros_like(x)
        for _ in range(steps):
            attention = torch.softmax(torch.bmm(h.view(b, q, f), g.transpose(1, 2)), dim=-1)
            r = torch.bmm(attention, g).reshape(b * q, f)  # the read r_{k−1}
            h_hat, c = self.query_lstm(x, (h + r, c))
            h = h_hat + x
        return g, h.view(b, q, f)


class MetricNet(nn.Module):
    """An embedding (``forward``) and the learned comparison of a metric-based method."""

    def __init__(self, embedding: nn.Module, comparator: nn.Module) -> None:
        super().__init__()
        self.embedding = embedding
        self.comparator = comparator

    def forward(self, x: Tensor, stats_from: int | None = None) -> Tensor:
        return self.embedding(x, stats_from)


class KochEmbedding(nn.Module):
    """The embedding of Koch et al.'s Omniglot Siamese network (2015, Sec. 3.1, Fig. 4) for
    105x105 images: 64 filters 10x10, 128 filters 7x7, 128 filters 4x4 (each ReLU and 2x2
    max-pooling), 256 filters 4x4 (ReLU), then a fully connected layer of 4096 sigmoid units
    over the 256x6x6 maps. No batch normalisation (``stats_from`` is accepted and unused). With
    the comparator (:func:`koch_siamese`) it has 38,951,745 parameters, 347x the book's
    conv4-64 Siamese network, which reads the 28x28 images the book's data holds."""

    size = 105  # the input's height and width

    def __init__(self) -> None:
        super().__init__()
        widths, kernels = (1, 64, 128, 128, 256), (10, 7, 4, 4)  # channels, kernel sizes
        self.convs = nn.ModuleList(
            nn.Conv2d(c_in, c_out, k)
            for c_in, c_out, k in zip(widths[:-1], widths[1:], kernels, strict=True)
        )
        self.features = 4096
        self.fc = nn.Linear(256 * 6 * 6, self.features)

    def forward(self, x: Tensor, stats_from: int | None = None) -> Tensor:
        for i, conv in enumerate(self.convs):
            x = torch.relu(conv(x))
            x = F.max_pool2d(x, 2) if i < len(self.convs) - 1 else x
        return torch.sigmoid(self.fc(x.flatten(1)))


def koch_siamese() -> MetricNet:
    """Koch et al.'s Siamese network (Sec. 3.1): :class:`KochEmbedding` and the weighted L1
    comparator σ(Σ_j α_j |h₁ʲ − h₂ʲ| + b), on 105x105 images (``model="siamese-koch"``;
    ``benchmarks/koch_siamese.py`` measures what a step costs here)."""
    embedding = KochEmbedding()
    return MetricNet(embedding, nn.Linear(embedding.features, 1))


def conv4() -> ConvNet:
    """conv4-64 with max-pooling, no head: 64 features per 28x28 image (Snell et al., Sec. 3.1)."""
    return ConvNet(None, pool=True)


def _siamese() -> nn.Module:
    embedding = conv4()
    return MetricNet(embedding, nn.Linear(embedding.features, 1))


def _full_context() -> nn.Module:
    embedding = conv4()
    return MetricNet(embedding, FullContext(embedding.features))


METRIC_NETWORKS: dict[str, Callable[[], nn.Module]] = {
    "embedding": conv4,  # Prototypical and Matching networks
    "siamese": _siamese,
    "siamese-koch": koch_siamese,  # 105x105 images (fewshot.task_families.IMAGE_SIZES)
    "fce": _full_context,
    "relation": lambda: MetricNet(RelationEncoder(), RelationModule()),
}
"""The metric-based methods' networks by ``config.model``: 28x28 Omniglot images, except Koch
et al.'s Siamese network, which reads the 105x105 drawings."""
