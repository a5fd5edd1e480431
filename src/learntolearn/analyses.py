"""Analyses of trained results, stored beside their metrics: ``analyse(config, name)``.

An analysis reads a stored result's parameters and writes its numbers to
``metrics["analyses"][name]`` with its own provenance record; like :func:`~.runner.run`, it
loads what is stored and computes only what is missing.

* ``update_directions``: the update directions of pretraining, first-order MAML, Reptile and
  MAML against AvgGrad and AvgGradInner (Nichol et al. 2018, Sec. 5), at the initialisation and
  at the trained parameters, on training tasks, for a range of inner step sizes.
* ``feature_reuse``: linear CKA of every layer before vs after the inner loop, NIL accuracy and
  the accuracy with the head alone adapted (Raghu et al. 2020), on the fixed test tasks.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import torch

from . import provenance
from .config import ExperimentConfig
from .evaluation import accuracy, finetune_curves, mean_ci95, query_score, summarize_curve
from .feature_reuse import layer_similarity, nil_accuracy
from .functional import Params, expand_params
from .inner_loop import adapt
from .omniglot import fixed_tasks, load_omniglot
from .runner import (
    EVAL_CHUNK,
    Setup,
    begin_computing,
    build,
    head_names,
    normalisation_modes,
    run,
    update_rule,
)
from .store import ResultStore
from .tasks import TaskBatch
from .update_directions import TAYLOR, fit_coefficients, update_directions

__all__ = ["ANALYSES", "LAYERS", "analyse"]

LAYERS = ("conv 1", "conv 2", "conv 3", "conv 4", "features", "logits")


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
    assert config.n_way is not None and config.test_steps is not None
    device = next(iter(params.values())).device
    k, lr = config.eval_shots[0], config.eval_lrs[0]
    objectives = normalisation_modes(setup.objective)
    similarity: list[list[torch.Tensor]] = [[] for _ in LAYERS]
    nil: dict[str, list[torch.Tensor]] = {m: [] for m in objectives}
    head_only: dict[str, list[torch.Tensor]] = {m: [] for m in objectives}
    scores = {m: query_score(o, accuracy) for m, o in objectives.items()}
    chunks = fixed_tasks(
        load_omniglot(),
        n_way=config.n_way,
        k_shot=k,
        k_query=config.eval_query,
        num_tasks=config.eval_tasks,
        seed=config.eval_seed,
    )
    for chunk in chunks:
        for i in range(0, chunk.num_tasks, EVAL_CHUNK):
            b = chunk[i : i + EVAL_CHUNK].to(device)
            adapted = adapt(
                expand_params(params, b.num_tasks),
                lambda p, _, b=b: setup.objective.batched(p, b.x_support, b.y_support),
                steps=config.test_steps,
                rule=update_rule(config, lr),
                only=setup.adapted,
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
            if setup.adapted is None:  # for ANIL this is its evaluation already
                curves = finetune_curves(
                    setup.objective,
                    params,
                    b,
                    steps=config.test_steps,
                    lr=lr,
                    scores=scores,
                    rule=update_rule(config, lr),
                    only=head_names(params),
                )
                for m in objectives:
                    head_only[m].append(curves[m])
    out: dict[str, Any] = {
        "shots": k,
        "steps": config.test_steps,
        "layers": list(LAYERS),
        "cka": {n: list(mean_ci95(torch.cat(s))) for n, s in zip(LAYERS, similarity, strict=True)},
        "nil": {m: list(mean_ci95(torch.cat(v))) for m, v in nil.items()},
    }
    if setup.adapted is None:
        out["head_only"] = {
            m: summarize_curve(torch.cat(v, 1), "accuracy") for m, v in head_only.items()
        }
    return out


ANALYSES: dict[str, Callable[[ExperimentConfig, Setup, Params], dict[str, Any]]] = {
    "update_directions": _update_directions,
    "feature_reuse": _feature_reuse,
}


def analyse(
    config: ExperimentConfig,
    name: str,
    *,
    device: str | torch.device = "auto",
    store: ResultStore | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """The stored analysis ``name`` of ``config``'s result; computed (training first if the
    result itself is missing) and stored when absent."""
    if name not in ANALYSES:
        raise ValueError(f"unknown analysis {name!r}; known: {sorted(ANALYSES)}")
    store = store or ResultStore()
    result = run(config, device=device, store=store, progress=progress)
    found = result.metrics.get("analyses", {}).get(name)
    if found is not None:
        return found
    dev, code = begin_computing(
        device,
        f"{config.key} has no stored {name!r} analysis and LEARNTOLEARN_NO_TRAIN is set; run "
        f"`python -m learntolearn analyse {name} {config.name} --profile {config.profile}` "
        "and commit the updated folder under results/",
    )
    start = time.perf_counter()
    values = ANALYSES[name](config, build(config, dev), result.params(dev))
    record = provenance.collect(dev, time.perf_counter() - start, code)
    return store.add_analysis(config, name, values, record).metrics["analyses"][name]
