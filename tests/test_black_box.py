"""The black-box formulation (methods/black_box.py), the episode LSTM and MANN: the label shown
one step late, causality, LRUA by hand, query independence, finite differences, bad input."""

from __future__ import annotations

import pytest
import torch
from torch.func import functional_call

from learntolearn.analysis.instance_accuracy import instance_accuracy, instance_numbers
from learntolearn.methods.black_box import BlackBox, SequenceCore, presentation_order
from learntolearn.methods.episode_lstm import EpisodeLSTM, LSTMCore
from learntolearn.methods.mann import MANN, MANNCore, least_used, write_weights
from learntolearn.methods.snail import Snail, SNAILCore
from learntolearn.models.metric_networks import MetricNet, conv4
from learntolearn.objective import MODES, Objective, cross_entropy, init_params
from learntolearn.tasks import TaskBatch
from tests.gradcheck import finite_difference, flatten, rel_error


def fake_tasks(b: int, n: int, k: int, q: int, seed: int = 0) -> TaskBatch:
    """``b`` random N-way K-shot tasks of 28x28 images, labels in class-major order."""
    g = torch.Generator().manual_seed(seed)
    return TaskBatch(
        x_support=torch.rand(b, n * k, 1, 28, 28, generator=g),
        y_support=torch.arange(n).repeat_interleave(k).repeat(b, 1),
        x_query=torch.rand(b, n * q, 1, 28, 28, generator=g),
        y_query=torch.arange(n).repeat_interleave(q).repeat(b, 1),
        info={"classes": torch.arange(n).repeat(b, 1)},
    )


def tiny_mann(inputs: int, n: int, length: int) -> MANNCore:
    return MANNCore(inputs, n, length, hidden=6, slots=5, width=3, heads=2)


CORES = {
    "episode-lstm": (EpisodeLSTM, lambda i, n, t: LSTMCore(i, n, t, hidden=8)),
    "mann": (MANN, tiny_mann),
}
# SNAIL's own tests (test_snail.py) check its gradients block by block; here it joins the
# checks every black-box core must pass.
ALL_CORES = {**CORES, "snail": (Snail, SNAILCore)}


def method(name: str, n: int, k: int, transductive: bool = False) -> BlackBox:
    cls, core = ALL_CORES[name]
    torch.manual_seed(0)
    net = MetricNet(conv4(), core(64 + n, n, n * k + 1))
    return cls(Objective(net, cross_entropy, transductive=transductive))


@pytest.mark.parametrize("name", ALL_CORES)
def test_causal(name: str) -> None:
    """Changing step j never changes an output before j, and does change the output at j."""
    torch.manual_seed(1)
    core = ALL_CORES[name][1](4, 3, 7).double()
    x = torch.randn(2, 7, 4, dtype=torch.float64)
    out = core.read(x)
    for j in range(7):
        y = x.clone()
        y[:, j] += 1.0
        changed = core.read(y)
        torch.testing.assert_close(changed[:, :j], out[:, :j], rtol=0, atol=0)
        assert not torch.allclose(changed[:, j], out[:, j])


@pytest.mark.parametrize("name", ALL_CORES)
def test_answer_continues_the_support_sequence(name: str) -> None:
    """A core's shortcut (read the support once, continue per query: a recurrent core from its
    state, SNAIL from every block's support features) equals reading support + query for each
    query on its own."""
    torch.manual_seed(2)
    core = ALL_CORES[name][1](4, 3, 7).double()
    support, queries = torch.randn(2, 5, 4).double(), torch.randn(2, 3, 4).double()
    reference = SequenceCore.answer(core, support, queries)
    torch.testing.assert_close(core.answer(support, queries), reference)
    online, answers = core(support, queries, online=True)
    torch.testing.assert_close(online, core.read(support))
    torch.testing.assert_close(answers, reference)


def test_label_is_shown_one_step_late() -> None:
    """Step t's input carries y_{t−1} (nothing at t = 0); a query's carries the last support
    label; and changing the label of the last example read changes no online prediction."""
    m = method("mann", 3, 2)
    batch = fake_tasks(2, 3, 2, 1)
    params = init_params(m.objective.model)
    emb = torch.randn(2, 6, 64)
    steps = m.sequence(batch, emb, torch.randn(2, 3, 64))
    shown = steps.support[..., 64:]
    assert shown[:, 0].abs().sum() == 0
    expected = torch.nn.functional.one_hot(steps.labels[:, :-1], 3).float()
    torch.testing.assert_close(shown[:, 1:], expected)
    last = torch.nn.functional.one_hot(steps.labels[:, -1], 3).float()
    torch.testing.assert_close(steps.queries[..., 64:], last.unsqueeze(1).expand(2, 3, 3))
    # relabel the last example read (its class keeps its other example)
    order = presentation_order(batch.x_support)
    y = batch.y_support.clone()
    for b in range(2):
        y[b, order[b, -1]] = (y[b, order[b, -1]] + 1) % 3
    relabelled = TaskBatch(batch.x_support, y, batch.x_query, batch.y_query, batch.info)
    with torch.no_grad():
        before, _ = m.online(params, batch)
        after, _ = m.online(params, relabelled)
    torch.testing.assert_close(after, before, rtol=0, atol=0)


def test_presentation_order_is_random_but_fixed() -> None:
    batch = fake_tasks(8, 5, 2, 1)
    order = presentation_order(batch.x_support)
    assert torch.equal(order, presentation_order(batch.x_support.clone()))
    assert sorted(order[0].tolist()) == list(range(10))
    assert not torch.equal(order[0], order[1])  # each task its own order
    assert not torch.equal(order[0], torch.arange(10))  # not the class-major order


def test_lrua_by_hand() -> None:
    """Eq. 5 and 6 on a memory of four slots, and one MANN step's write (Eq. 7)."""
    usage = torch.tensor([[0.5, 0.1, 0.3, 0.1]])
    assert least_used(usage, 2).tolist() == [[0.0, 1.0, 0.0, 1.0]]
    assert least_used(usage, 3).tolist() == [[0.0, 1.0, 1.0, 1.0]]
    # a tie: exactly n slots, the first ones (a literal "<= n-th smallest" would mark all four)
    assert least_used(torch.zeros(1, 4), 2).tolist() == [[1.0, 1.0, 0.0, 0.0]]
    reads = torch.tensor([[[0.2, 0.3, 0.4, 0.1]]])
    w = write_weights(torch.zeros(1, 1), reads, least_used(usage, 2))  # σ(0) = 1/2
    torch.testing.assert_close(w, torch.tensor([[[0.1, 0.65, 0.2, 0.55]]]))
    # the first step of a wiped memory: slot 0 (least used, first on the tie) is zeroed, and
    # with no previous reads each head writes (1 − σ(α)) k to the 2 least used, slots 0 and 1
    torch.manual_seed(3)
    core = MANNCore(4, 2, 5, hidden=6, slots=4, width=3, heads=2).double()
    x = torch.randn(1, 4, dtype=torch.float64)
    s0 = core.initial(1, x)
    _, s1, writes = core.step(x, s0)
    h, _ = core.controller(torch.cat([x, s0.reads], -1), (s0.h, s0.c))
    keys = torch.tanh(core.keys(h)).view(2, 3)
    gate = 1 - torch.sigmoid(core.gates(h)).view(2, 1)
    lu = torch.tensor([1.0, 1.0, 0.0, 0.0], dtype=torch.float64)
    torch.testing.assert_close(writes[0], gate * lu)
    expected = torch.full((4, 3), 1e-6, dtype=torch.float64)
    expected[0] = 0
    expected[:2] += (gate * keys).sum(0)
    torch.testing.assert_close(s1.memory[0], expected)
    torch.testing.assert_close(s1.usage[0], s1.read_weights[0].sum(0) + writes[0].sum(0))


@pytest.mark.parametrize("name", ALL_CORES)
def test_query_predictions_are_independent(name: str) -> None:
    """Non-transductive: one query's prediction depends on the support set and itself alone."""
    m = method(name, 3, 1)
    batch = fake_tasks(2, 3, 1, 2)
    params = init_params(m.objective.model)
    other = batch.x_query.clone()
    other[:, 1:] = torch.rand_like(other[:, 1:])
    changed = TaskBatch(batch.x_support, batch.y_support, other, batch.y_query, batch.info)
    p = m.predictions(params, batch, steps=0, lr=0.1, modes=MODES)
    q = m.predictions(params, changed, steps=0, lr=0.1, modes=MODES)
    assert p["non-transductive"].shape == (1, 2, 6, 3)
    torch.testing.assert_close(q["non-transductive"][:, :, 0], p["non-transductive"][:, :, 0])
    assert not torch.allclose(q["non-transductive"][:, :, 1], p["non-transductive"][:, :, 1])


@pytest.mark.parametrize("name", CORES)
def test_gradient_matches_finite_differences(name: str) -> None:
    """The gradient of an online loss and a query loss w.r.t. every parameter of the sequence
    model, against central finite differences in float64 (the embedding, with its ReLU and
    max-pool kinks, is checked with the metric-based methods)."""
    torch.manual_seed(4)
    core = CORES[name][1](5, 2, 5).double()
    support = torch.randn(2, 4, 5, dtype=torch.float64)
    queries = torch.randn(2, 2, 5, dtype=torch.float64)
    params = {k: v.detach() for k, v in core.named_parameters()}

    def loss(p: dict[str, torch.Tensor]) -> torch.Tensor:
        online = functional_call(core, p, (support,)).log_softmax(-1)[..., 0].sum()
        answers = functional_call(core, p, (support, queries)).log_softmax(-1)[..., 1].sum()
        return online + answers

    leaves = {k: v.clone().requires_grad_() for k, v in params.items()}
    analytic = torch.cat(
        [g.flatten() for g in torch.autograd.grad(loss(leaves), [*leaves.values()])]
    )
    assert rel_error(analytic, finite_difference(loss, params)) < 1e-6
    assert flatten(params).numel() == analytic.numel()


@pytest.mark.parametrize("name", ALL_CORES)
def test_loss_trains_the_embedding_too(name: str) -> None:
    m = method(name, 3, 1, transductive=True)
    params = init_params(m.objective.model)
    loss = m.loss(params, fake_tasks(2, 3, 1, 1))
    assert loss.ndim == 0 and torch.isfinite(loss)
    grads = torch.autograd.grad(loss, list(params.values()), allow_unused=True)
    assert all(g is not None and g.abs().sum() > 0 for g in grads)


@pytest.mark.parametrize(
    "change, message",
    [
        ("longer", "built for 4"),
        ("label", "labels must lie in 0..2"),
        ("missing", "shows no example of class 2"),
    ],
)
def test_bad_episodes_are_refused(change: str, message: str) -> None:
    m = method("mann", 3, 1)
    params = init_params(m.objective.model)
    batch = fake_tasks(1, 3, 1, 1)
    if change == "longer":
        batch = fake_tasks(1, 3, 2, 1)
    elif change == "label":
        batch = TaskBatch(
            batch.x_support, batch.y_support, batch.x_query, batch.y_query + 1, batch.info
        )
    else:
        y = batch.y_support.clone()
        y[0, 2] = 0
        batch = TaskBatch(batch.x_support, y, batch.x_query, batch.y_query, batch.info)
    with pytest.raises(ValueError, match=message):
        m.loss(params, batch)


def test_functional_call_reaches_the_core() -> None:
    """The network's comparator is called through functional_call with the given parameters."""
    m = method("episode-lstm", 2, 1)
    params = init_params(m.objective.model)
    steps = torch.randn(1, 3, 66)
    own = {k.removeprefix("comparator."): v for k, v in params.items() if "comparator" in k}
    zeroed = {k: torch.zeros_like(v) for k, v in own.items()}
    out = functional_call(m.objective.model.comparator, zeroed, (steps,))
    assert out.abs().sum() == 0


def test_instance_accuracy_by_hand() -> None:
    """Santoro et al.'s measure: the n-th presentation of a class, scored per instance."""
    labels = torch.tensor([[0, 1, 0, 0, 1, 2]])
    assert instance_numbers(labels).tolist() == [[1, 1, 2, 3, 2, 1]]
    guesses = torch.tensor([[1, 1, 0, 2, 1, 2]])  # right at steps 1, 2, 4 and 5
    logits = torch.nn.functional.one_hot(guesses, 3).float()
    acc = instance_accuracy(logits, labels, 3)
    # 1st instances: steps 0, 1, 5 (2 of 3 right); 2nd: steps 2, 4 (both); 3rd: step 3 (wrong)
    torch.testing.assert_close(acc, torch.tensor([[2 / 3, 1.0, 0.0]]))


def test_presentation_order_does_not_group_a_class() -> None:
    """Images of one class look alike; their ranks must not: neighbours in the order share a
    class about as often as in a random order, (K − 1) / (N·K − 1)."""
    g = torch.Generator().manual_seed(5)
    n, k, tasks = 5, 5, 200
    templates = torch.rand(tasks, n, 1, 1, 28, 28, generator=g)
    noise = torch.randint(-2, 3, (tasks, n, k, 1, 28, 28), generator=g) / 255
    x = (templates + noise).clamp(0, 1).flatten(1, 2)
    labels = torch.arange(n).repeat_interleave(k)
    read = labels[presentation_order(x)]
    same = (read[:, 1:] == read[:, :-1]).float().mean().item()
    assert abs(same - (k - 1) / (n * k - 1)) < 0.04


@pytest.mark.parametrize("name", ["episode-lstm", "mann", "snail"])
def test_each_trains_and_is_scored_through_the_cli(
    name: str, real_env: None, tmp_path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A smoke run of each method on the book's 5-way 1-shot tasks from the command line (and
    Santoro et al.'s instance accuracy for the ones shown labels late)."""
    from learntolearn.cli import main

    monkeypatch.setenv("LEARNTOLEARN_RESULTS", str(tmp_path / "results"))
    monkeypatch.delenv("LEARNTOLEARN_NO_TRAIN", raising=False)
    experiment = f"omniglot/{name}-5w1s"
    assert main(["train", experiment, "--profile", "smoke", "--quiet"]) == 0
    args = ["analyse", "instances", experiment, "--profile", "smoke", "--quiet"]
    assert main(args) == (0 if name != "snail" else 2)
