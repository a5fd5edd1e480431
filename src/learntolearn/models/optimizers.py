"""The networks of the learned optimizers: small LSTMs applied to every coordinate at once.

* :class:`CoordinatewiseLSTM`: the optimizer of Andrychowicz et al. (NIPS 2016, Sec. 2.1 and
  Fig. 3): a two-layer LSTM with 20 hidden units whose weights are shared by every coordinate
  of the optimizee, each coordinate keeping its own hidden state; a linear read-out gives the
  coordinate's update.
* :class:`MetaLearnerCell`: the meta-learner of Ravi & Larochelle (ICLR 2017, Sec. 3.2):
  a standard LSTM over the preprocessed loss and gradient, then a cell-update layer whose cell
  state *is* the learner's parameters, θ_t = f_t ⊙ θ_{t−1} + i_t ⊙ (−∇_t) (Eq. 2), with
  i_t = σ(W_I·[h_t, θ_{t−1}, i_{t−1}] + b_I) and f_t = σ(W_F·[h_t, θ_{t−1}, f_{t−1}] + b_F)
  (Eqs. 3 and 4, with the first layer's output h_t standing for ∇_t and L_t, as in the
  authors' two-layer network). Both gates are shared by every coordinate of every layer.
* :class:`LearnerAndMetaLearner`: the learner network and its meta-learner as one module, so
  that one parameter dictionary holds the learner's initialisation c_0 and the meta-learner.

The state of every coordinate lives in a ``dict`` of tensors with one row per coordinate, the
``state`` of the update-rule seam (:data:`learntolearn.methods.inner_loop.UpdateRule`).
"""

from __future__ import annotations

import itertools
import math

import torch
from torch import Tensor, nn

__all__ = ["CoordinatewiseLSTM", "LearnerAndMetaLearner", "MetaLearnerCell"]

State = dict[str, Tensor]


class CoordinatewiseLSTM(nn.Module):
    """``layers`` LSTM cells of ``hidden`` units over ``inputs`` features per coordinate, and a
    linear output: ``forward(x [C, inputs], state) → (output [C], state)``."""

    def __init__(self, inputs: int = 2, hidden: int = 20, layers: int = 2) -> None:
        super().__init__()
        if inputs < 1 or hidden < 1 or layers < 1:
            raise ValueError(
                f"inputs, hidden and layers must be positive, got {inputs}, {hidden}, {layers}"
            )
        sizes = [inputs] + [hidden] * layers
        self.cells = nn.ModuleList(nn.LSTMCell(a, b) for a, b in itertools.pairwise(sizes))
        self.out = nn.Linear(hidden, 1)
        self.hidden = hidden

    def initial_state(self, coordinates: int, like: Tensor) -> State:
        """Zero hidden and cell states for ``coordinates`` coordinates."""
        zeros = like.new_zeros(coordinates, self.hidden)
        return {f"{s}{i}": zeros for i in range(len(self.cells)) for s in "hc"}

    def forward(self, x: Tensor, state: State) -> tuple[Tensor, State]:
        new: State = {}
        for i, cell in enumerate(self.cells):
            h, c = cell(x, (state[f"h{i}"], state[f"c{i}"]))
            new[f"h{i}"], new[f"c{i}"] = h, c
            x = h
        return self.out(x).squeeze(-1), new


class MetaLearnerCell(nn.Module):
    """Ravi & Larochelle's two-layer meta-learner; ``forward(x [C, inputs], θ [C], ∇ [C],
    state) → (θ_t [C], state)``, the state holding the first layer's (h, c) and the previous
    gates ``i`` and ``f``.

    Initialisation (Sec. 3.2 and the authors' code): every weight and bias uniform in ±0.01,
    then the forget-gate bias in [4, 5] (f ≈ 0.99: almost no shrinkage) and the input-gate bias
    in [−5, −4] (i ≈ 0.01: a small step), so that the meta-learner starts as gradient descent
    with a small learning rate. The gates read the previous gate *values* i_{t−1}, f_{t−1}, as
    the paper's Eqs. 3–4 write them (the authors' code feeds the pre-sigmoid values).
    """

    def __init__(self, inputs: int = 4, hidden: int = 20) -> None:
        super().__init__()
        self.lstm = nn.LSTMCell(inputs, hidden)
        self.input_gate = nn.Linear(hidden + 2, 1)
        self.forget_gate = nn.Linear(hidden + 2, 1)
        self.hidden = hidden
        for p in self.parameters():
            nn.init.uniform_(p, -0.01, 0.01)
        nn.init.uniform_(self.input_gate.bias, -5.0, -4.0)
        nn.init.uniform_(self.forget_gate.bias, 4.0, 5.0)

    def initial_state(self, coordinates: int, like: Tensor) -> State:
        """Zero first-layer states and zero previous gates."""
        zeros = like.new_zeros(coordinates, self.hidden)
        gate = like.new_zeros(coordinates)
        return {"h": zeros, "c": zeros, "i": gate, "f": gate}

    def forward(self, x: Tensor, theta: Tensor, grad: Tensor, state: State) -> tuple[Tensor, State]:
        h, c = self.lstm(x, (state["h"], state["c"]))
        th = theta.unsqueeze(-1)
        i = torch.sigmoid(self.input_gate(torch.cat([h, th, state["i"][:, None]], -1)))
        f = torch.sigmoid(self.forget_gate(torch.cat([h, th, state["f"][:, None]], -1)))
        i, f = i.squeeze(-1), f.squeeze(-1)
        return f * theta - i * grad, {"h": h, "c": c, "i": i, "f": f}

    def set_gradient_descent(self, lr: float) -> None:
        """Gates fixed at f = 1 and i = ``lr`` (zero weights; the forget bias saturated, the
        input bias logit(lr)): the cell update is then θ_t = θ_{t−1} − lr ∇_t to round-off,
        gradient descent (the paper's Sec. 3.1)."""
        if not 0 < lr < 1:
            raise ValueError(f"an input gate is a sigmoid: lr must be in (0, 1), got {lr}")
        with torch.no_grad():
            for gate in (self.input_gate, self.forget_gate):
                gate.weight.zero_()
            self.input_gate.bias.fill_(math.log(lr / (1 - lr)))
            self.forget_gate.bias.fill_(50.0)  # σ(50) = 1 in float32 and float64


class LearnerAndMetaLearner(nn.Module):
    """A learner network (``learner``: its parameters are the meta-learner's c_0) and the
    meta-learner (``meta_learner``); the module's forward is the learner's."""

    def __init__(self, learner: nn.Module, meta_learner: MetaLearnerCell) -> None:
        super().__init__()
        self.learner = learner
        self.meta_learner = meta_learner

    def forward(self, x: Tensor, stats_from: int | None = None) -> Tensor:
        return self.learner(x, stats_from)
