"""The metric-based methods (chapter 6) against explicit computations and finite differences.

Each method's score and loss are recomputed here with plain loops over one task, query and
support example at a time; the gradient of every training loss is checked against central
finite differences in float64 on tiny networks (two channels), where no ReLU or max-pool
window flips within ±ε for continuous random inputs.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import pytest
import torch
from torch import nn

from learntolearn.catalogue import experiment
from learntolearn.data.augment import AffineDistortions, distort
from learntolearn.fewshot.config import ConfigError
from learntolearn.fewshot.training import OuterLoop
from learntolearn.methods.matching import Matching
from learntolearn.methods.metric import MetricLearner, embed
from learntolearn.methods.prototypical import Prototypical, prototypes
from learntolearn.methods.relation import Relation
from learntolearn.methods.siamese import Siamese
from learntolearn.models.metric_networks import (
    FullContext,
    KochEmbedding,
    MetricNet,
    RelationEncoder,
    RelationModule,
    koch_siamese,
)
from learntolearn.models.networks import ConvNet
from learntolearn.objective import Objective, cross_entropy, init_params
from learntolearn.tasks import TaskBatch

from .gradcheck import finite_difference, flatten, rel_error

N_WAY, K_SHOT, Q_QUERY, TASKS = 3, 2, 2, 2


def tiny_batch(side: int, dtype: torch.dtype = torch.float64, seed: int = 0) -> TaskBatch:
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(N_WAY)
    return TaskBatch(
        x_support=torch.rand(TASKS, N_WAY * K_SHOT, 1, side, side, generator=g, dtype=dtype),
        y_support=labels.repeat_interleave(K_SHOT).repeat(TASKS, 1),
        x_query=torch.rand(TASKS, N_WAY * Q_QUERY, 1, side, side, generator=g, dtype=dtype),
        y_query=labels.repeat_interleave(Q_QUERY).repeat(TASKS, 1),
    )


def embedding() -> nn.Module:
    return ConvNet(None, hidden=2, image_size=16, pool=True)


# name -> (method over an objective, network, image side)
METHODS: dict[str, tuple[Callable[[Objective], MetricLearner], Callable[[], nn.Module], int]] = {
    "prototypical": (Prototypical, embedding, 16),
    "prototypical-cosine": (lambda o: Prototypical(o, "cosine"), embedding, 16),
    "matching": (Matching, embedding, 16),
    "matching-euclidean": (lambda o: Matching(o, "euclidean"), embedding, 16),
    "matching-one-sided": (lambda o: Matching(o, "one-sided-cosine"), embedding, 16),
    "matching-fce": (
        lambda o: Matching(o, read_steps=2),
        lambda: MetricNet(embedding(), FullContext(2)),
        16,
    ),
    "relation": (
        Relation,
        lambda: MetricNet(RelationEncoder(hidden=2), RelationModule(channels=2, hidden=3)),
        28,
    ),
    "siamese": (Siamese, lambda: MetricNet(embedding(), nn.Linear(2, 1)), 16),
}


def build(name: str, transductive: bool = True) -> tuple[MetricLearner, dict, TaskBatch]:
    make, network, side = METHODS[name]
    torch.manual_seed(0)
    model = network().double()
    method = make(Objective(model, cross_entropy, transductive=transductive))
    return method, init_params(model), tiny_batch(side)


# Every method in the transductive mode; the support-statistics mode on one plain embedding
# and on the relation module, whose batch norm then groups one query's pairs.
GRADIENT_CASES = [
    *((name, True) for name in METHODS),
    ("prototypical", False),
    ("matching", False),
    ("relation", False),
]


@pytest.mark.parametrize(("name", "transductive"), GRADIENT_CASES)
def test_training_loss_gradient_matches_finite_differences(name, transductive):
    method, params, batch = build(name, transductive)
    loss = method.loss(params, batch)
    grad = torch.autograd.grad(loss, list(params.values()))
    analytic = torch.cat([g.flatten() for g in grad])
    numeric = finite_difference(lambda p: method.loss(p, batch), params)
    assert analytic.shape == flatten(params).shape
    assert rel_error(analytic, numeric) < 1e-6


def test_prototypes_are_support_means():
    support = torch.randn(2, 6, 4, dtype=torch.float64)
    y = torch.tensor([[0, 0, 1, 1, 2, 2], [2, 1, 0, 2, 1, 0]])
    one_hot = torch.nn.functional.one_hot(y, 3).double()
    c = prototypes(support, one_hot)
    for b in range(2):
        for k in range(3):
            torch.testing.assert_close(c[b, k], support[b][y[b] == k].mean(0))


def test_prototypical_softmax_is_the_explicit_euclidean_one():
    method, params, batch = build("prototypical")
    scores = method.scores(params, batch, "transductive")
    support, query = embed(method.objective, params, batch, "transductive")
    for b in range(TASKS):
        for q in range(query.shape[1]):
            d = [
                ((query[b, q] - support[b][batch.y_support[b] == k].mean(0)) ** 2).sum()
                for k in range(N_WAY)
            ]
            expected = torch.softmax(-torch.stack(d), 0)
            torch.testing.assert_close(torch.softmax(scores[b, q], 0), expected)
    # the loss is the mean cross-entropy of those probabilities
    logp = scores.log_softmax(-1).gather(-1, batch.y_query.unsqueeze(-1))
    torch.testing.assert_close(method.loss(params, batch), -logp.mean())


@pytest.mark.parametrize("name", ["matching", "matching-euclidean", "matching-fce"])
def test_matching_attention_sums_to_one_and_scores_are_its_class_mass(name):
    method, params, batch = build(name)
    scores = method.scores(params, batch, "transductive")
    torch.testing.assert_close(scores.exp().sum(-1), torch.ones(scores.shape[:2]).double())
    if name == "matching-fce":
        return
    support, query = embed(method.objective, params, batch, "transductive")
    for b in range(TASKS):
        for q in range(query.shape[1]):
            if method.distance == "cosine":
                c = torch.stack([torch.cosine_similarity(query[b, q], s, 0) for s in support[b]])
            else:
                c = -torch.stack([((query[b, q] - s) ** 2).sum() for s in support[b]])
            a = torch.softmax(c, 0)  # Eq. 2
            assert math.isclose(a.sum().item(), 1.0, rel_tol=1e-12)
            y_hat = a @ torch.nn.functional.one_hot(batch.y_support[b], N_WAY).double()  # Eq. 1
            torch.testing.assert_close(scores[b, q].exp(), y_hat)
    nll = -scores.gather(-1, batch.y_query.unsqueeze(-1)).mean()
    torch.testing.assert_close(method.loss(params, batch), nll)


def test_one_shot_matching_with_euclidean_distance_is_a_prototypical_network():
    method, params, _ = build("prototypical")
    one_shot = tiny_batch(16)[:1]
    one_shot = TaskBatch(
        one_shot.x_support[:, ::K_SHOT],
        one_shot.y_support[:, ::K_SHOT],
        one_shot.x_query,
        one_shot.y_query,
    )
    matching = Matching(method.objective, "euclidean")
    for mode in ("transductive", "non-transductive"):
        torch.testing.assert_close(
            matching.scores(params, one_shot, mode),
            method.scores(params, one_shot, mode).log_softmax(-1),
        )


def test_full_context_embeddings_follow_appendix_a_step_by_step():
    torch.manual_seed(0)
    fce = FullContext(4).double()
    support, query = torch.randn(2, 5, 4).double(), torch.randn(2, 3, 4).double()
    g, f = fce(support, query, steps=3)
    lstm, cell = fce.support_lstm, fce.query_lstm
    for b in range(2):
        # App. A.2: g(x_i) = forward state + backward state + g'(x_i), one example at a time
        fwd, bwd, state_f, state_b = [], [None] * 5, None, None
        for i in range(5):
            x = support[b, i : i + 1]
            h, c = lstm_step(lstm, x, state_f, reverse=False)
            state_f = (h, c)
            fwd.append(h)
        for i in reversed(range(5)):
            x = support[b, i : i + 1]
            h, c = lstm_step(lstm, x, state_b, reverse=True)
            state_b = (h, c)
            bwd[i] = h
        expected_g = torch.cat([fwd[i] + bwd[i] + support[b, i : i + 1] for i in range(5)])
        torch.testing.assert_close(g[b], expected_g)
        for q in range(3):  # App. A.1, one query at a time
            x = query[b, q : q + 1]
            h, c = torch.zeros_like(x), torch.zeros_like(x)
            for _ in range(3):
                a = torch.softmax(h @ expected_g.T, -1)  # h_0 = 0: uniform, r_0 = mean of g
                r = a @ expected_g
                h_hat, c = cell(x, (h + r, c))
                h = h_hat + x
            torch.testing.assert_close(f[b, q : q + 1], h)
    # one read step already depends on the support set
    _, f1 = fce(support, query, steps=1)
    _, f1_other = fce(support + 1, query, steps=1)
    assert not torch.allclose(f1, f1_other)


def lstm_step(lstm: nn.LSTM, x, state, *, reverse: bool):
    """One step of one direction of a single-layer ``nn.LSTM``, from its weights."""
    suffix = "_reverse" if reverse else ""
    w_ih, w_hh = getattr(lstm, f"weight_ih_l0{suffix}"), getattr(lstm, f"weight_hh_l0{suffix}")
    b = getattr(lstm, f"bias_ih_l0{suffix}") + getattr(lstm, f"bias_hh_l0{suffix}")
    h, c = state if state is not None else (torch.zeros_like(x), torch.zeros_like(x))
    i, f, g, o = (x @ w_ih.T + h @ w_hh.T + b).chunk(4, -1)
    c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
    return torch.sigmoid(o) * torch.tanh(c), c


def test_full_context_reads_the_support_set_in_both_directions():
    torch.manual_seed(0)
    fce = FullContext(4).double()
    support, query = torch.randn(2, 5, 4).double(), torch.randn(2, 3, 4).double()
    g, f = fce(support, query, steps=3)
    assert g.shape == support.shape and f.shape == query.shape
    g2, _ = fce(support.flip(1), query, steps=3)  # a bidirectional LSTM: order matters, but
    assert not torch.allclose(g2.flip(1), g)  # each g(x_i) still sees every support example
    g3, _ = fce(torch.cat([support[:, :4], support[:, 4:] + 1], 1), query, steps=3)
    assert not torch.allclose(g3[:, 0], g[:, 0])


@pytest.mark.parametrize("mode", ["transductive", "non-transductive"])
def test_relation_scores_have_one_per_query_and_class_in_the_unit_interval(mode):
    method, params, batch = build("relation")
    r = method.scores(params, batch, mode)
    assert r.shape == (TASKS, N_WAY * Q_QUERY, N_WAY)
    assert bool(((r > 0) & (r < 1)).all())
    target = torch.nn.functional.one_hot(batch.y_query, N_WAY).double()
    r = method.scores(params, batch, method.mode)
    expected = (
        sum(
            (r[b, q, k] - target[b, q, k]) ** 2
            for b in range(TASKS)
            for q in range(r.shape[1])
            for k in range(N_WAY)
        )
        / r.numel()
    )
    torch.testing.assert_close(method.loss(params, batch), expected)


def test_relation_non_transductive_scores_of_a_query_ignore_the_other_queries():
    method, params, batch = build("relation")
    r = method.scores(params, batch, "non-transductive")
    changed = TaskBatch(
        batch.x_support, batch.y_support, batch.x_query.clone(), batch.y_query, batch.info
    )
    changed.x_query[:, 1:] = torch.rand_like(changed.x_query[:, 1:])
    r2 = method.scores(params, changed, "non-transductive")
    torch.testing.assert_close(r2[:, 0], r[:, 0])
    assert not torch.allclose(method.scores(params, changed, "transductive")[:, 0], r[:, 0])


def test_siamese_score_is_symmetric_and_its_loss_is_the_pairwise_cross_entropy():
    method, params, batch = build("siamese")
    support, query = embed(method.objective, params, batch, "transductive")
    ab = method.pair_logits(params, query, support)
    ba = method.pair_logits(params, support, query)
    torch.testing.assert_close(ab, ba.transpose(1, 2))
    terms = []
    for b in range(TASKS):
        for q in range(query.shape[1]):
            for s in range(support.shape[1]):
                p = torch.sigmoid(ab[b, q, s])
                y = float(batch.y_query[b, q] == batch.y_support[b, s])
                w = N_WAY - 1  # a query's one same pair against its N - 1 different ones
                terms.append(-(w * y * torch.log(p) + (1 - y) * torch.log(1 - p)))
    torch.testing.assert_close(method.loss(params, batch), torch.stack(terms).mean())
    # classification picks the class of the most similar support image
    scores = method.scores(params, batch, "transductive")
    best = ab.argmax(-1)
    torch.testing.assert_close(scores.argmax(-1), batch.y_support.gather(1, best))


def test_predictions_are_one_pass_per_mode_and_equal_the_scores():
    method, params, batch = build("prototypical")
    out = method.predictions(
        params, batch, steps=5, lr=0.1, modes=("transductive", "non-transductive")
    )
    for mode, p in out.items():
        assert p.shape == (1, TASKS, N_WAY * Q_QUERY, N_WAY)
        torch.testing.assert_close(p[0], method.scores(params, batch, mode).detach())


def test_affine_distortions_are_seeded_and_keep_the_white_background():
    images = torch.ones(4, 1, 28, 28)
    images[:, :, 10:18, 12:16] = 0.0  # a stroke
    a = distort(images, torch.Generator().manual_seed(1))
    b = distort(images, torch.Generator().manual_seed(1))
    torch.testing.assert_close(a, b)
    assert a.shape == images.shape and float(a.min()) >= 0 and float(a.max()) <= 1 + 1e-6
    assert torch.allclose(a[..., 0, 0], torch.ones(4, 1))  # corners stay background
    assert not torch.allclose(a, images)
    ink = (1 - a).sum((1, 2, 3)) / (1 - images).sum((1, 2, 3))
    assert bool(((ink > 0.5) & (ink < 1.6)).all())  # scales of 0.8-1.2 in each direction


def test_distorted_tasks_change_every_image_and_nothing_else():
    class Fixed:
        def sample(self, num_tasks, generator):
            b = tiny_batch(28, torch.float32)
            return TaskBatch(b.x_support, b.y_support, b.x_query, b.y_query, {"classes": b.y_query})

    tasks = AffineDistortions(Fixed())
    batch = tasks.sample(2, torch.Generator().manual_seed(0))
    again = tasks.sample(2, torch.Generator().manual_seed(0))
    plain = Fixed().sample(2, None)
    torch.testing.assert_close(batch.x_query, again.x_query)  # seeded
    for x, x0 in ((batch.x_support, plain.x_support), (batch.x_query, plain.x_query)):
        changed = (x - x0).abs().flatten(2).amax(-1) > 1e-3
        assert changed.float().mean() > 0.8  # each component is drawn with probability 1/2
    assert torch.equal(batch.y_query, plain.y_query) and torch.equal(
        batch.y_support, plain.y_support
    )
    assert torch.equal(batch.info["classes"], plain.info["classes"])


def test_step_size_halves_on_schedule_and_one_schedule_at_a_time():
    outer = OuterLoop("adam", 1e-3, halve_every=2000)
    assert [outer.lr_at(t, 20_000) for t in (0, 1999, 2000, 4000, 19_999)] == [
        1e-3,
        1e-3,
        5e-4,
        2.5e-4,
        1e-3 / 2**9,
    ]
    with pytest.raises(ValueError, match="not both"):
        OuterLoop("sgd", 1.0, lr_final=0.0, halve_every=10)


@pytest.mark.usefixtures("real_env")
def test_a_model_shared_by_several_settings_is_trained_once_and_named_by_its_run(tmp_path):
    from learntolearn.catalogue import run
    from learntolearn.fewshot.store import ResultStore

    store = ResultStore(tmp_path / "results")
    first, second, third = (
        run(experiment(f"omniglot/siamese-{s}", "smoke"), device="cpu", store=store, progress=False)
        for s in ("5w1s", "20w1s", "20w5s")
    )
    assert "milestones" in first.metrics["train"]
    for twin in (second, third):  # evaluated only, the curve stays with the training run
        assert twin.provenance["trained_as"] == first.key
        assert "milestones" not in twin.metrics["train"]
        assert torch.equal(twin.params()["comparator.weight"], first.params()["comparator.weight"])


def test_train_way_makes_n_way_an_evaluation_field():
    five, twenty = (experiment(f"omniglot/protonet-{n}w1s", "cpu") for n in (5, 20))
    assert five.key != twenty.key and five.training_key == twenty.training_key
    one, five_shot = (experiment(f"omniglot/protonet-5w{k}s", "cpu") for k in (1, 5))
    assert one.training_key != five_shot.training_key  # train shot = test shot (Snell, Sec. 3.1)
    maml5, maml20 = (experiment(f"omniglot/maml-{n}w1s", "cpu") for n in (5, 20))
    assert maml5.training_key != maml20.training_key


@pytest.mark.parametrize(
    ("name", "changes", "message"),
    [
        ("protonet", {"model": "conv"}, "method 'protonet' takes model embedding"),
        (
            "protonet",
            {"distance": "manhattan"},
            "distance must be 'euclidean' or 'cosine' or 'one-sided-cosine'",
        ),
        ("protonet", {"train_way": 1}, "train_way must be an integer >= 2"),
        ("siamese", {"augment": "flip"}, "augment must be 'affine'"),
        ("protonet", {"read_steps": 3}, "read_steps do(es) not apply to 'protonet'"),
        ("maml", {"model": "embedding"}, "method 'maml' takes model None or conv"),
        ("matching", {"train_bn_mode": "support"}, "train_bn_mode must be 'non-transductive'"),
        ("maml", {"train_bn_mode": "non-transductive"}, "train_bn_mode do(es) not apply to 'maml'"),
    ],
)
def test_bad_metric_configs_are_refused_with_the_field_named(name, changes, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        experiment(f"omniglot/{name}-5w1s", "cpu").with_(**changes)


@pytest.mark.usefixtures("real_env")
def test_training_in_the_compared_mode_normalises_queries_with_the_support_statistics():
    from learntolearn.fewshot.runs import build as build_setup

    base = experiment("omniglot/matching-5w1s", "paper")
    compared = experiment("omniglot/matching-5w1s-nontransductive", "paper")
    assert compared.train_bn_mode == "non-transductive" and compared.key != base.key
    assert compared.with_(train_bn_mode=None, name=base.name) == base  # nothing else differs
    for config, transductive in ((base, True), (compared, False)):
        setup = build_setup(config, torch.device("cpu"))
        assert setup.objective.transductive is transductive
        assert setup.method.mode == ("transductive" if transductive else "non-transductive")
    # what it trains on: a query's scores ignore the other queries (here the last one changed)
    method, params, batch = build("matching", transductive=False)
    x_query = batch.x_query.clone()
    x_query[:, -1] = 1 - x_query[:, -1]
    moved = TaskBatch(batch.x_support, batch.y_support, x_query, batch.y_query)
    with torch.no_grad():
        for mode, ignores in ((method.mode, True), ("transductive", False)):
            before, after = (method.scores(params, b, mode)[:, :-1] for b in (batch, moved))
            assert torch.allclose(before, after) is ignores


def test_matching_needs_fce_model_and_read_steps_together():
    base = experiment("omniglot/matching-5w1s", "cpu")
    with pytest.raises(ConfigError, match="full context embeddings"):
        base.with_(read_steps=5)
    assert base.with_(read_steps=5, model="fce").read_steps == 5


def test_koch_network_has_the_papers_layers_and_size():
    """Koch et al. (2015, Sec. 3.1, Fig. 4): conv 64@10x10, 128@7x7, 128@4x4, 256@4x4 with
    max-pooling after the first three, then 4096 sigmoid units over 256x6x6 maps of a 105x105
    image, and the weighted L1 comparator."""
    net = koch_siamese()
    convs = net.embedding.convs
    assert [(c.out_channels, c.kernel_size[0]) for c in convs] == [
        (64, 10),
        (128, 7),
        (128, 4),
        (256, 4),
    ]
    assert net.embedding.fc.in_features == 256 * 6 * 6 and net.embedding.fc.out_features == 4096
    assert sum(p.numel() for p in net.parameters()) == 38_951_745
    h = net(torch.rand(3, 1, KochEmbedding.size, KochEmbedding.size))
    assert h.shape == (3, 4096) and bool(((h > 0) & (h < 1)).all())
    assert net.comparator.in_features == 4096 and net.comparator.out_features == 1


def test_koch_network_reads_the_drawings_at_their_own_size():
    """``model="siamese-koch"`` makes the task family read Omniglot at 105x105 (training tasks,
    test tasks, Lake's runs); every other network reads 28x28."""
    from learntolearn.fewshot.task_families import image_size

    koch = experiment("omniglot/siamese-koch-lake", "paper")
    assert koch.model == "siamese-koch" and image_size(koch) == KochEmbedding.size
    assert image_size(experiment("omniglot/siamese-lake", "paper")) == 28
    assert koch.with_(model="siamese", name="omniglot/siamese-lake") == experiment(
        "omniglot/siamese-lake", "paper"
    ).with_(iterations=koch.iterations, milestone_every=koch.milestone_every)


@pytest.mark.slow
def test_koch_siamese_trains_and_scores_lakes_runs_at_105_pixels(real_env, tmp_path, monkeypatch):
    """The smoke run of Koch et al.'s network end to end: 105x105 background drawings, its
    loss, Adam, and Lake's 400 trials read at 105x105 (the network has no batch norm, so both
    modes agree)."""
    from learntolearn.catalogue import run

    monkeypatch.setenv("LEARNTOLEARN_RESULTS", str(tmp_path / "results"))
    result = run(experiment("omniglot/siamese-koch-lake", "smoke"), progress=False)
    curves = {mode: result.curve(mode)["mean"][-1] for mode in ("transductive", "non-transductive")}
    assert curves["transductive"] == curves["non-transductive"]
    assert 0.0 <= curves["transductive"] <= 1.0
    assert result.metrics["train"]["milestones"][-1]["iteration"] == 2
