"""The package's layers: imports run one way, with no cycles; a new method is one file plus one
table entry."""

from __future__ import annotations

import ast
import json
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "learntolearn"
# Lower layers first; a module may import from its own layer or a lower one.
LAYERS: dict[str, int] = {
    "__init__": 0,
    "tasks": 0,
    "objective": 0,
    "io": 0,
    "paths": 0,
    "data": 1,
    "models": 1,
    "methods": 2,
    "analysis": 3,
    "experiments": 4,  # the engine: specs, store, runner, training loop; no kind, no book
    "fewshot": 5,  # the three kinds of experiment, over the engine
    "learned_optimizers": 5,
    "search": 5,
    "catalogue": 6,  # the book's experiments of every kind, its chapters, the plan
    "reporting": 7,
    "cli": 8,
    "__main__": 8,
}
KINDS = ("fewshot", "learned_optimizers", "search")


def module_name(path: Path) -> str:
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def layer(module: str) -> int:
    parts = module.split(".")
    return LAYERS[parts[1] if len(parts) > 1 else "__init__"]


def imports_of(path: Path) -> set[str]:
    """Modules of the package that ``path`` imports at run time (``TYPE_CHECKING`` blocks are
    annotations only and are left out)."""
    tree = ast.parse(path.read_text())
    found: set[str] = set()

    def visit(nodes: list[ast.stmt]) -> None:
        for node in nodes:
            if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
                continue
            if isinstance(node, ast.ImportFrom):
                assert node.level == 0, f"{path}: relative import; use learntolearn.…"
                if node.module and node.module.startswith("learntolearn"):
                    for alias in node.names:
                        sub = f"{node.module}.{alias.name}"
                        found.add(
                            sub
                            if (PACKAGE.parent / sub.replace(".", "/")).exists()
                            or (PACKAGE.parent / f"{sub.replace('.', '/')}.py").exists()
                            else node.module
                        )
            elif isinstance(node, ast.Import):
                found.update(a.name for a in node.names if a.name.startswith("learntolearn"))
            for child in ast.iter_child_nodes(node):
                if isinstance(child, ast.stmt):
                    visit([child])

    visit(tree.body)
    return found


def graph() -> dict[str, set[str]]:
    return {module_name(p): imports_of(p) for p in sorted(PACKAGE.rglob("*.py"))}


def test_every_module_has_a_layer():
    for module in graph():
        layer(module)  # a KeyError names a module outside the layers


def test_imports_run_from_higher_layers_to_lower_ones():
    upward = [
        f"{m} (layer {layer(m)}) imports {d} (layer {layer(d)})"
        for m, deps in graph().items()
        for d in deps
        if layer(d) > layer(m)
    ]
    assert not upward, "\n".join(upward)


def test_the_kinds_stand_apart_on_the_engine():
    """A kind of experiment imports the engine and lower layers, never another kind; the
    engine imports no kind (the layers above check that) and no book."""
    crossing = [
        f"{m} imports {d}"
        for m, deps in graph().items()
        for d in deps
        if m.split(".")[1] in KINDS
        and d.split(".")[1] in KINDS
        and m.split(".")[1] != d.split(".")[1]
    ]
    assert not crossing, "\n".join(crossing)


def test_no_import_cycles():
    g = graph()
    done: set[str] = set()

    def visit(node: str, stack: list[str]) -> None:
        if node in stack:
            cycle = [*stack[stack.index(node) :], node]
            pytest.fail("import cycle: " + " -> ".join(cycle))
        if node in done or node not in g:
            return
        for dep in g[node]:
            visit(dep, [*stack, node])
        done.add(node)

    for node in g:
        visit(node, [])


def test_the_checker_sees_a_cycle_and_an_upward_import(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("from learntolearn.fewshot.runs import run\n")
    assert imports_of(bad) == {"learntolearn.fewshot.runs"}
    guarded = tmp_path / "guarded.py"
    guarded.write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
        "    from learntolearn.fewshot.config import ExperimentConfig\n"
    )
    assert imports_of(guarded) == set()


# --- adding a method: one algorithm file and one table entry ---------------------------------


@dataclass(frozen=True)
class NearestMean:
    """A toy metric method (one file's worth): the query is the nearest support mean's target;
    trains the network on the query loss, to have something to train."""

    objective: object

    def loss(self, params, batch):
        from learntolearn.objective import over_tasks

        def query_loss(theta, xs, ys, xq, yq, loss):
            return loss(theta, xq, yq)

        return over_tasks(query_loss, self.objective, params, batch).mean()

    def predictions(self, params, batch, *, steps, lr, modes):
        centre = batch.y_support.mean(1, keepdim=True).expand_as(batch.y_query)
        return {m: centre.unsqueeze(0) for m in modes}


def test_a_toy_method_takes_one_file_and_one_table_entry(tmp_path, monkeypatch):
    from learntolearn.catalogue import run
    from learntolearn.fewshot import method_table
    from learntolearn.fewshot.config import ExperimentConfig
    from learntolearn.fewshot.store import ResultStore

    entry = method_table.MethodEntry(families=("sinusoid",), build=lambda c, o: NearestMean(o))
    monkeypatch.setitem(method_table.METHODS, "nearest-mean", entry)
    monkeypatch.setenv("LEARNTOLEARN_CACHE", str(tmp_path / "cache"))
    cfg = ExperimentConfig(
        name="toy/nearest-mean",
        method="nearest-mean",
        profile="smoke",
        iterations=2,
        meta_batch=2,
        eval_tasks=10,
        eval_steps=0,
    )
    result = run(cfg, device="cpu", store=ResultStore(tmp_path / "results"), progress=False)
    curve = result.metrics["eval"]["full"]["5"]
    assert len(curve["mean"]) == 1 and curve["mean"][0] > 0  # one step, an MSE
    json.dumps(result.metrics)  # stored as valid JSON
    assert torch.isfinite(result.params()["0.weight"]).all()
