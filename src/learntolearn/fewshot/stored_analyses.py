"""Analyses of trained results, stored beside their metrics: ``analyse(config, name)``.

An analysis reads a stored result's parameters and writes its numbers to
``metrics["analyses"][name]`` with its own provenance record; like :func:`~.runner.run`, it
loads what is stored and computes only what is missing.

* ``update_directions``: the update directions of pretraining, first-order MAML, Reptile and
  MAML against AvgGrad and AvgGradInner (Nichol et al. 2018, Sec. 5), at the initialisation and
  at the trained parameters, on training tasks, for a range of inner step sizes.
* ``precision``: the float32 meta-gradient against the float64 one, how much the float64 one
  moves under tiny relative changes of θ, and the stability number α·|λ|max of the support
  Hessians (:mod:`learntolearn.analysis.precision`), at the initialisation and trained.
* ``gates``: the Meta-Learner LSTM's input and forget gates at every inner step, per learner
  parameter, on the first fixed test tasks (:mod:`learntolearn.analysis.meta_learner_gates`).
* ``instances``: a black-box learner's accuracy by instance number (the 1st, 2nd, … presentation
  of a class in the support sequence; Santoro et al. 2016, Table 1) on the fixed test tasks
  (:mod:`learntolearn.analysis.instance_accuracy`).
* ``attention``: SNAIL's attention over one episode: the weights of the first query of the
  first fixed test task on the support steps and itself, in each attention block, with the
  support steps' classes in the order read and the query's class (Mishra et al. 2018, Sec. 3.1;
  :mod:`learntolearn.analysis.snail_attention`).
* ``population_bn``: a metric-based method scored on the fixed test tasks with batch norm's
  statistics taken from a fixed reference batch of training images (the population), the mode
  of the Prototypical networks' reference code at test time
  (:mod:`learntolearn.analysis.population_batchnorm`).
* ``splits``: an Omniglot run scored like its test tasks on fixed tasks of its own training
  characters and of the validation characters: how much of its test accuracy it loses to new
  characters, and to new alphabets.
* ``feature_reuse``: linear CKA of every layer before vs after the inner loop, NIL accuracy and
  the accuracy with the head alone adapted (Raghu et al. 2020), on the fixed test tasks.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import torch

from learntolearn.analysis import precision
from learntolearn.analysis.feature_reuse import layer_similarity, nil_accuracy
from learntolearn.analysis.instance_accuracy import instance_accuracy
from learntolearn.analysis.meta_learner_gates import gate_values
from learntolearn.analysis.population_batchnorm import population_scores, reference_images
from learntolearn.analysis.snail_attention import query_attention
from learntolearn.analysis.statistics import mean_ci95, score_curve, summarize_curve
from learntolearn.analysis.update_directions import TAYLOR, fit_coefficients, update_directions
from learntolearn.experiments import provenance
from learntolearn.experiments.runner import begin_computing
from learntolearn.fewshot.config import ExperimentConfig
from learntolearn.fewshot.evaluation import at_reported_step, evaluate, test_chunks
from learntolearn.fewshot.runs import Setup, build, run
from learntolearn.fewshot.store import ResultStore
from learntolearn.fewshot.task_families import SPLIT_SEEDS, omniglot_split_tests
from learntolearn.methods.anil import HEAD
from learntolearn.methods.black_box import BlackBox
from learntolearn.methods.inner_loop import SGD, adapt
from learntolearn.methods.maml import MAML
from learntolearn.methods.meta_learner_lstm import MetaLearnerLSTM
from learntolearn.methods.metric import MetricLearner
from learntolearn.methods.snail import Snail
from learntolearn.objective import MODES, Params, expand_params
from learntolearn.tasks import TaskBatch

__all__ = ["ANALYSES", "LAYERS", "analyse"]

LAYERS = ("conv 1", "conv 2", "conv 3", "conv 4", "features", "logits")
# training images whose statistics stand for the population (population_bn), and their seed's
# offset from the evaluation seed (the validation tasks take +1)
POPULATION_IMAGES = 1_000
POPULATION_SEED = 2


def _update_directions(config: ExperimentConfig, setup: Setup, params: Params) -> dict[str, Any]:
    sinusoid = config.tasks == "sinusoid"
    # From steps too small to move any ReLU across its kink (where the second-order expansion
    # is exact) up to the step sizes used in training (0.02 and 0.01; 0.4 for MAML on Omniglot).
    lrs = (1e-6, 1e-5, 1e-4, 1e-3, 0.01, 0.1) if sinusoid else (1e-6, 1e-4, 0.01, 0.1, 0.4)
    num_tasks = (500 if sinusoid else 40) if config.profile != "smoke" else 4
    device = next(iter(params.values())).device
    gen = torch.Generator(device).manual_seed(config.seed + 104_729)
    b = setup.prepare(setup.tasks.sample(num_tasks, gen))
    # Each task twice, with A and B swapped: the expectation over tasks is symmetric in the two
    # minibatches, and averaging both orders makes it so on this finite batch too (pretraining
    # then follows AvgGrad exactly, and the other methods differ from it by O(α) terms alone).
    # In float64, so that the O(α²) Taylor remainder is not buried under rounding.
    batch = TaskBatch(
        torch.cat([b.x_support, b.x_query]),
        torch.cat([b.y_support, b.y_query]),
        torch.cat([b.x_query, b.x_support]),
        torch.cat([b.y_query, b.y_support]),
    ).to(device, torch.float64)
    out: dict[str, Any] = {"tasks": num_tasks, "lrs": list(lrs), "methods": list(TAYLOR)}
    for point, start in (("init", setup.params), ("trained", params)):
        theta = {k: v.detach().double() for k, v in start.items()}
        coef: dict[str, list[list[float]]] = {m: [] for m in TAYLOR}
        taylor: dict[str, list[float]] = {m: [] for m in TAYLOR if m != "pretraining"}
        norms: dict[str, list[float]] = {"AvgGrad": [], "AvgGradInner": []}
        for lr in lrs:
            d = update_directions(setup.objective, theta, batch, lr)
            for m in TAYLOR:
                a, b, res = fit_coefficients(d[m], d["AvgGrad"], d["AvgGradInner"]).tolist()
                coef[m].append([a, b / lr, res])  # b/α: the coefficient of α·AvgGradInner
            for m in taylor:
                taylor[m].append(((d[f"taylor:{m}"] - d[m]).norm() / d[m].norm()).item())
            for n in norms:
                norms[n].append(d[n].norm().item())
        out[point] = {"coefficients": coef, "taylor_error": taylor, "norms": norms}
    return out


def _feature_reuse(config: ExperimentConfig, setup: Setup, params: Params) -> dict[str, Any]:
    assert config.test_steps is not None  # checked by _maml_classifier
    method = setup.method
    if not isinstance(method, MAML):
        raise ValueError(f"feature_reuse analyses MAML and ANIL, not {config.method!r}")
    device = next(iter(params.values())).device
    test = setup.family.test_sets(config)[0]  # the first K of eval_shots
    objectives = {m: setup.objective.in_mode(m) for m in MODES}
    similarity: list[list[torch.Tensor]] = [[] for _ in LAYERS]
    nil: dict[str, list[torch.Tensor]] = {m: [] for m in MODES}
    head_only: dict[str, list[torch.Tensor]] = {m: [] for m in MODES}
    # the same method with its inner loop on the head alone (for ANIL, its evaluation already)
    frozen_body = replace(method, adapted=HEAD) if method.adapted is None else None
    for b in test_chunks(setup, test.tasks(), device):
        adapted = adapt(
            expand_params(params, b.num_tasks),
            lambda p, _, b=b: setup.objective.batched(p, b.x_support, b.y_support),
            steps=config.test_steps,
            rule=SGD(test.lr),
            adapted=method.adapted,
            differentiable=False,
        )
        for layer, s in zip(
            similarity,
            layer_similarity(objectives["transductive"], params, adapted, b),
            strict=True,
        ):
            layer.append(s)
        for m, o in objectives.items():
            nil[m].append(nil_accuracy(o, params, b))
        if frozen_body is not None:
            preds = frozen_body.predictions(
                params, b, steps=config.test_steps, lr=test.lr, modes=MODES
            )
            for m in MODES:
                head_only[m].append(score_curve(setup.family.score, preds[m], b.y_query))
    out: dict[str, Any] = {
        "shots": test.shots,
        "steps": config.test_steps,
        "layers": list(LAYERS),
        "cka": {n: list(mean_ci95(torch.cat(s))) for n, s in zip(LAYERS, similarity, strict=True)},
        "nil": {m: list(mean_ci95(torch.cat(v))) for m, v in nil.items()},
    }
    if frozen_body is not None:
        out["head_only"] = {
            m: summarize_curve(torch.cat(v, 1), "accuracy") for m, v in head_only.items()
        }
    return out


def _precision(config: ExperimentConfig, setup: Setup, params: Params) -> dict[str, Any]:
    method = setup.method
    assert isinstance(method, MAML)  # checked by _full_maml
    device = next(iter(params.values())).device
    gen = torch.Generator(device).manual_seed(config.seed + 15_485_863)
    # the paper's meta-batch for 20-way (16 tasks), whatever the profile trained with
    num_tasks = 16 if config.profile != "smoke" else config.meta_batch
    batch = setup.prepare(setup.tasks.sample(num_tasks, gen))
    other = setup.prepare(setup.tasks.sample(num_tasks, gen))
    curvature_tasks = min(4, num_tasks)
    out: dict[str, Any] = {"tasks": num_tasks, "curvature_tasks": curvature_tasks}
    # float32 is float32 here: TensorFloat-32 (a GPU's faster, coarser products) is off
    tf32 = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    try:
        _precision_points(out, method, setup.params, params, batch, other, curvature_tasks, gen)
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = tf32
    return out


def _precision_points(
    out: dict[str, Any],
    method: MAML,
    init: Params,
    params: Params,
    batch: TaskBatch,
    other: TaskBatch,
    curvature_tasks: int,
    gen: torch.Generator,
) -> None:
    for point, start in (("init", init), ("trained", params)):
        theta = {k: v.detach().float() for k, v in start.items()}  # what float32 training holds
        error, per_task = precision.float32_error(method, theta, batch)
        moved = {
            f"{eps:g}": precision.sensitivity(method, theta, batch, eps, gen)
            for eps in (1e-7, 1e-5)
        }
        out[point] = {
            "float32_error": error,
            "float32_error_tasks": per_task,
            "sensitivity": {eps: v[0] for eps, v in moved.items()},
            "sensitivity_tasks": {eps: v[1] for eps, v in moved.items()},
            "task_noise": precision.task_noise(method, theta, batch, other),
            "alpha_lambda": precision.curvature(method, theta, batch[:curvature_tasks], gen),
        }


def _gates(config: ExperimentConfig, setup: Setup, params: Params) -> dict[str, Any]:
    method = setup.method
    assert isinstance(method, MetaLearnerLSTM)  # checked by _meta_lstm
    device = next(iter(params.values())).device
    test = setup.family.test_sets(config)[0]
    batch = next(iter(test_chunks(setup, test.tasks(), device)))  # the first test tasks
    return {"tasks": batch.num_tasks, **gate_values(method, params, batch)}


def _instances(config: ExperimentConfig, setup: Setup, params: Params) -> dict[str, Any]:
    method = setup.method
    assert isinstance(method, BlackBox)  # checked by _label_late
    device = next(iter(params.values())).device
    test = setup.family.test_sets(config)[0]  # the first K of eval_shots
    per_task = []
    with torch.no_grad():
        for b in test_chunks(setup, test.tasks(), device):
            logits, labels = method.online(params, b)
            per_task.append(instance_accuracy(logits, labels, test.shots))
    accuracy = torch.cat(per_task)
    return {
        "shots": test.shots,
        "instances": list(range(1, test.shots + 1)),
        "accuracy": [list(mean_ci95(a)) for a in accuracy.T],
    }


def _attention(config: ExperimentConfig, setup: Setup, params: Params) -> dict[str, Any]:
    method = setup.method
    assert isinstance(method, Snail)  # checked by _snail
    device = next(iter(params.values())).device
    first = next(iter(setup.family.test_sets(config)[0].tasks()))  # the first K of eval_shots
    return {"task": 0, **query_attention(method, params, first[0].to(device))}


def _population(config: ExperimentConfig, setup: Setup, params: Params) -> dict[str, Any]:
    method = setup.method
    assert isinstance(method, MetricLearner)  # checked by _embedding_metric
    device = next(iter(params.values())).device
    seed = config.eval_seed + POPULATION_SEED
    reference = reference_images(setup.tasks, POPULATION_IMAGES, seed).to(device)
    out: dict[str, Any] = {"images": POPULATION_IMAGES, "seed": seed, "shots": {}}
    for test in setup.family.test_sets(config):
        curves = [
            score_curve(
                setup.family.score, population_scores(method, params, b, reference)[None], b.y_query
            )
            for b in test_chunks(setup, test.tasks(), device)
        ]
        out["shots"][str(test.shots)] = summarize_curve(torch.cat(curves, 1), setup.family.metric)
    return out


def _splits(config: ExperimentConfig, setup: Setup, params: Params) -> dict[str, Any]:
    at = at_reported_step(config)
    return {
        split: {"seed": at.eval_seed + SPLIT_SEEDS[split], "tasks": at.eval_tasks}
        | evaluate(at, setup, params, omniglot_split_tests(at, split))
        for split in ("train", "val")
    }


def _omniglot(c: ExperimentConfig) -> str | None:
    if c.tasks == "omniglot":
        return None
    return "analyses a run trained on the Vinyals training characters (task family omniglot)"


def _embedding_metric(c: ExperimentConfig) -> str | None:
    if c.method in ("protonet", "matching"):
        return None
    return "analyses a metric-based method that compares embeddings (Prototypical, Matching)"


def _snail(c: ExperimentConfig) -> str | None:
    return None if c.method == "snail" else "analyses SNAIL's attention blocks"


def _label_late(c: ExperimentConfig) -> str | None:
    if c.method in ("episode-lstm", "mann"):
        return None
    return "analyses a black-box learner shown each label one step late (episode LSTM, MANN)"


def _meta_lstm(c: ExperimentConfig) -> str | None:
    return None if c.method == "meta-lstm" else "analyses a Meta-Learner LSTM"


def _full_maml(c: ExperimentConfig) -> str | None:
    if c.method == "maml" and c.inner_params is None:
        return None
    return "analyses MAML's meta-gradient (every parameter adapted)"


def _maml_classifier(c: ExperimentConfig) -> str | None:
    if c.method == "maml" and c.test_steps is not None:
        return None
    return "analyses a MAML or ANIL classifier (Omniglot, miniImageNet)"


def _any(c: ExperimentConfig) -> str | None:
    return None


@dataclass(frozen=True)
class Analysis:
    """``applies(config)``: why it does not apply to a config (None: it does), checked before
    anything is trained; ``compute(config, setup, trained parameters)``: its values."""

    applies: Callable[[ExperimentConfig], str | None]
    compute: Callable[[ExperimentConfig, Setup, Params], dict[str, Any]]


ANALYSES: dict[str, Analysis] = {
    "gates": Analysis(_meta_lstm, _gates),
    "update_directions": Analysis(_any, _update_directions),
    "precision": Analysis(_full_maml, _precision),
    "feature_reuse": Analysis(_maml_classifier, _feature_reuse),
    "instances": Analysis(_label_late, _instances),
    "attention": Analysis(_snail, _attention),
    "population_bn": Analysis(_embedding_metric, _population),
    "splits": Analysis(_omniglot, _splits),
}


def analyse(
    config: ExperimentConfig,
    name: str,
    *,
    device: str | torch.device = "auto",
    store: ResultStore,
    progress: bool = True,
) -> dict[str, Any]:
    """The stored analysis ``name`` of ``config``'s result in ``store``; computed (training
    first if the result itself is missing) and stored when absent."""
    if name not in ANALYSES:
        raise ValueError(f"unknown analysis {name!r}; known: {sorted(ANALYSES)}")
    why_not = ANALYSES[name].applies(config)
    if why_not is not None:
        raise ValueError(f"{name} {why_not}, not {config.name!r} (method {config.method!r})")
    result = run(config, store, device=device, progress=progress)
    found = result.metrics.get("analyses", {}).get(name)
    if found is not None:
        return found
    store.check_writable()
    dev, code = begin_computing(
        device,
        f"{config.key} has no stored {name!r} analysis and LEARNTOLEARN_NO_TRAIN is set; run "
        f"`python -m learntolearn analyse {name} {config.name} --profile {config.profile}` "
        "and commit the updated folder under results/",
    )
    start = time.perf_counter()
    values = ANALYSES[name].compute(config, build(config, dev), result.params(dev))
    record = provenance.collect(dev, time.perf_counter() - start, code)
    return store.add_analysis(config, name, values, record).metrics["analyses"][name]
