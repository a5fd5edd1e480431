"""An LSTM that reads the episode: the baseline of Santoro, Bartunov, Botvinick, Wierstra &
Lillicrap (ICML 2016), Sec. 3.1 and 4.

At step t the LSTM reads the example's embedding and the previous example's label,

    h_t, c_t = LSTM([f(x_t); y_{t−1}], (h_{t−1}, c_{t−1}))
    p(y_t | x_{1:t}, y_{1:t−1}) = softmax(W h_t + b)

so it must hold, in its cell state alone, which label went with which example until the
example's class comes back. Everything it learns about a task is in (h, c); the meta-learned
weights are the embedding f, the LSTM's and W. The episode's steps and loss are the black-box
formulation's (:mod:`~learntolearn.methods.black_box`, ``label_delay = 1``).
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor, nn

from learntolearn.methods.black_box import BlackBox, SequenceCore

__all__ = ["EpisodeLSTM", "LSTMCore"]


class LSTMCore(SequenceCore):
    """One LSTM layer of ``hidden`` units and a linear read-out to ``n_way`` logits."""

    def __init__(self, inputs: int, n_way: int, length: int, hidden: int = 200) -> None:
        super().__init__(inputs, n_way, length)
        self.lstm = nn.LSTM(inputs, hidden, batch_first=True)
        self.out = nn.Linear(hidden, n_way)

    def read(self, steps: Tensor) -> Tensor:
        return self.out(self.lstm(steps)[0])

    def answer(self, support: Tensor, queries: Tensor) -> Tensor:
        return self.read_and_answer(support, queries)[1]

    def read_and_answer(self, support: Tensor, queries: Tensor) -> tuple[Tensor, Tensor]:
        """The support sequence is read once; each query continues from the state it leaves."""
        b, q, d = queries.shape
        hidden, (h, c) = self.lstm(support)
        state = tuple(s.repeat_interleave(q, dim=1) for s in (h, c))
        out, _ = self.lstm(queries.reshape(b * q, 1, d), state)
        return self.out(hidden), self.out(out).view(b, q, -1)


@dataclass(frozen=True)
class EpisodeLSTM(BlackBox):
    """Santoro et al.'s LSTM baseline: the label one step late, an online loss at every step."""

    label_delay: int = 1
