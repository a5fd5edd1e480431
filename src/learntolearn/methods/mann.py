"""Memory-augmented neural networks (MANN): Santoro, Bartunov, Botvinick, Wierstra &
Lillicrap, "Meta-Learning with Memory-Augmented Neural Networks", ICML 2016, Sec. 3.

An LSTM controller reads (f(x_t), y_{t−1}) and the previous reads r_{t−1}, and an external
memory M_t of ``slots`` rows holds what it chose to store about the episode. Each of the
``heads`` heads emits a key k_t (here tanh of a linear map of the controller's state) and a
gate α_t. Reading is by content (Sec. 3.1):

    K(k_t, M_t(i)) = k_t · M_t(i) / (‖k_t‖ ‖M_t(i)‖)                         (Eq. 1)
    w^r_t(i) = exp K(k_t, M_t(i)) / Σ_j exp K(k_t, M_t(j))                   (Eq. 2)
    r_t = Σ_i w^r_t(i) M_t(i)                                                (Eq. 3)

Writing is least-recently-used access, LRUA (Sec. 3.2): the usage w^u decays by γ and grows
with every read and write; a head writes its key either where it last read (to update a
memory) or into the least-used slots (to store a new one), mixed by the gate σ(α_t):

    w^u_t = γ w^u_{t−1} + w^r_t + w^w_t                                      (Eq. 4)
    w^lu_t(i) = 0 if w^u_t(i) > m(w^u_t, n), else 1                          (Eq. 5)
    w^w_t = σ(α_t) w^r_{t−1} + (1 − σ(α_t)) w^lu_{t−1}                       (Eq. 6)
    M_t(i) = M_{t−1}(i) + w^w_t(i) k_t                                       (Eq. 7)

with m(v, n) the n-th smallest element of v and n the number of read heads (here exactly the n
least-used slots, ties broken by index, as public implementations do: see :func:`least_used`);
before the write, the least-used slot of w^u_{t−1} is set to zero (the first one on a tie).
The prediction is softmax(W_o [h_t; r_t]). The memory is wiped between episodes: every
sequence starts from M_0 = 10⁻⁶ (a constant, so that Eq. 1 is defined), no usage and no reads.
With several heads each head reads and writes its own key and Eq. 4 sums their weights. The
paper's sizes: an LSTM of 200 units, 128 slots of 40, 4 read heads; γ = 0.95 as in public
implementations (the paper does not print it). Episode, label delay and loss: :mod:`.black_box`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from learntolearn.methods.black_box import BlackBox, SequenceCore

__all__ = ["MANN", "MANNCore", "MemoryState", "cosine_read_weights", "least_used", "write_weights"]


def cosine_read_weights(keys: Tensor, memory: Tensor) -> Tensor:
    """Eq. 1-2: ``[B, H, slots]`` softmax over the cosine similarity of each head's key
    ``[B, H, W]`` with every memory row ``[B, slots, W]``."""
    sim = F.normalize(keys, dim=-1, eps=1e-8) @ F.normalize(memory, dim=-1, eps=1e-8).mT
    return sim.softmax(-1)


def least_used(usage: Tensor, n: int) -> Tensor:
    """Eq. 5: ``[B, slots]`` 1 on the n least-used slots, 0 elsewhere (no gradient flows
    through this choice). Ties are broken by slot index, so exactly n slots are chosen: with
    Eq. 5's "at most the n-th smallest" taken literally, a wiped memory (every usage equal)
    marks every slot, every slot receives the same write, and the rows never become different
    enough for a read to tell them apart (the memory stays symmetric)."""
    chosen = torch.argsort(usage.detach(), dim=-1, stable=True)[..., :n]
    return torch.zeros_like(usage).scatter_(-1, chosen, 1.0)


def write_weights(alpha: Tensor, previous_reads: Tensor, previous_least_used: Tensor) -> Tensor:
    """Eq. 6: ``[B, H, slots]`` from each head's gate ``alpha [B, H]``, its read weights at
    t − 1 ``[B, H, slots]`` and the least-used slots at t − 1 ``[B, slots]``."""
    gate = torch.sigmoid(alpha).unsqueeze(-1)
    return gate * previous_reads + (1 - gate) * previous_least_used.unsqueeze(1)


@dataclass(frozen=True)
class MemoryState:
    """What MANN carries from step to step: the controller's (h, c), the memory ``[B, slots,
    W]``, the last reads r ``[B, H·W]``, read weights ``[B, H, slots]`` and usage
    ``[B, slots]``."""

    h: Tensor
    c: Tensor
    memory: Tensor
    reads: Tensor
    read_weights: Tensor
    usage: Tensor

    def repeat(self, q: int) -> MemoryState:
        """Each of the B states ``q`` times in a row (one copy per query)."""
        return MemoryState(*(t.repeat_interleave(q, 0) for t in self.__dict__.values()))


class MANNCore(SequenceCore):
    """The LSTM controller, the LRUA memory and the read-out softmax(W_o [h_t; r_t])."""

    def __init__(
        self,
        inputs: int,
        n_way: int,
        length: int,
        hidden: int = 200,
        slots: int = 128,
        width: int = 40,
        heads: int = 4,
        gamma: float = 0.95,
    ) -> None:
        super().__init__(inputs, n_way, length)
        self.slots, self.width, self.heads, self.gamma = slots, width, heads, gamma
        self.controller = nn.LSTMCell(inputs + heads * width, hidden)
        self.keys = nn.Linear(hidden, heads * width)
        self.gates = nn.Linear(hidden, heads)
        self.out = nn.Linear(hidden + heads * width, n_way)

    def initial(self, b: int, like: Tensor) -> MemoryState:
        """The wiped memory of a new episode, for ``b`` sequences."""
        zeros = like.new_zeros
        return MemoryState(
            h=zeros(b, self.controller.hidden_size),
            c=zeros(b, self.controller.hidden_size),
            memory=like.new_full((b, self.slots, self.width), 1e-6),
            reads=zeros(b, self.heads * self.width),
            read_weights=zeros(b, self.heads, self.slots),
            usage=zeros(b, self.slots),
        )

    def step(self, x: Tensor, s: MemoryState) -> tuple[Tensor, MemoryState, Tensor]:
        """One step: ``(logits [B, N], the new state, write weights [B, H, slots])``."""
        h, c = self.controller(torch.cat([x, s.reads], -1), (s.h, s.c))
        keys = torch.tanh(self.keys(h)).view(-1, self.heads, self.width)
        writes = write_weights(self.gates(h), s.read_weights, least_used(s.usage, self.heads))
        wiped = 1 - F.one_hot(s.usage.argmin(-1), self.slots).to(x.dtype)  # the least used
        memory = s.memory * wiped.unsqueeze(-1) + writes.mT @ keys  # Eq. 7, summed over heads
        reads = cosine_read_weights(keys, memory)
        r = (reads @ memory).flatten(1)  # Eq. 3, one read per head
        usage = self.gamma * s.usage + (reads + writes).sum(1)  # Eq. 4
        logits = self.out(torch.cat([h, r], -1))
        return logits, MemoryState(h, c, memory, r, reads, usage), writes

    def run(self, steps: Tensor, state: MemoryState | None = None) -> tuple[Tensor, MemoryState]:
        """Logits ``[B, T, N]`` of ``steps [B, T, D]`` and the state after the last step."""
        s = state or self.initial(steps.shape[0], steps)
        out = []
        for t in range(steps.shape[1]):
            logits, s, _ = self.step(steps[:, t], s)
            out.append(logits)
        return torch.stack(out, 1), s

    def read(self, steps: Tensor) -> Tensor:
        return self.run(steps)[0]

    def answer(self, support: Tensor, queries: Tensor) -> Tensor:
        return self.read_and_answer(support, queries)[1]

    def read_and_answer(self, support: Tensor, queries: Tensor) -> tuple[Tensor, Tensor]:
        """The support sequence is read once; each query continues from the state it leaves."""
        b, q, d = queries.shape
        online, state = self.run(support)
        answers = self.run(queries.reshape(b * q, 1, d), state.repeat(q))[0]
        return online, answers.view(b, q, -1)

    def history(self, steps: Tensor) -> dict[str, Tensor]:
        """For a figure: the read weights, write weights ``[B, T, H, slots]`` and usage
        ``[B, T, slots]`` at every step of ``steps``."""
        s = self.initial(steps.shape[0], steps)
        reads, writes, usage = [], [], []
        for t in range(steps.shape[1]):
            _, s, w = self.step(steps[:, t], s)
            reads.append(s.read_weights)
            writes.append(w)
            usage.append(s.usage)
        return {
            "read_weights": torch.stack(reads, 1),
            "write_weights": torch.stack(writes, 1),
            "usage": torch.stack(usage, 1),
        }


@dataclass(frozen=True)
class MANN(BlackBox):
    """Santoro et al.'s MANN: the label one step late, an online loss at every step."""

    label_delay: int = 1
