"""Time per MAML meta-iteration: ``learntolearn`` against ``higher``, ``learn2learn`` and a
supervised floor.

What is measured, for one meta-iteration on one meta-batch of N-way K-shot Omniglot tasks
(MAML, Finn, Abbeel & Levine, ICML 2017, Sec. 5.2, Algorithm 2), with the paper's 4-block
convolutional network (``ConvNet(n_way, pool=False)``) and its hyperparameters:

    forward (inner SGD steps on every task's support set, query loss)
    + meta-backward (through the inner steps: second order, or first order = FOMAML)
    + one Adam step on θ

Methods (all on the same network initialisation, the same task batches, the same settings):

- ``ours MAML-2 batched`` (this library): :class:`learntolearn.methods.maml.MAML`, second order,
  all tasks at once (``ConvNet.forward_tasks``: grouped convolutions, the library's default
  path); ``ours MAML-1 batched``: the same,
  ``first_order=True``.
- ``ours MAML-2 loop``: the library's unbatched reference path (a Python loop over tasks).
- ``higher MAML-2``: the canonical loop of ``higher`` (Grefenstette et al., 2019,
  github.com/facebookresearch/higher, examples/maml-omniglot.py): per task
  ``innerloop_ctx(model, SGD, copy_initial_weights=False)``, ``diffopt.step(support_loss)``,
  ``query_loss.backward()`` accumulated over the tasks, then the outer Adam step. The query loss
  is divided by the number of tasks so that the meta-objective is the library's (a mean).
- ``higher MAML-1``: the same loop with ``track_higher_grads=False``. higher then detaches the
  fast weights after every inner step, so ``query_loss.backward()`` never reaches θ (its
  ``.grad`` stays ``None``: higher issues #63 and #129); the first-order meta-gradient
  ∇_θ' L_query(θ') is taken with ``torch.autograd.grad`` w.r.t. ``fmodel.parameters()`` and
  added to θ's ``.grad``, as suggested in #63.
- ``l2l MAML-2``: the canonical loop of ``learn2learn`` 0.2.0 (Arnold et al., 2020,
  github.com/learnables/learn2learn, examples/vision/maml_omniglot.py):
  ``maml = l2l.algorithms.MAML(model, lr=α)``, per task ``learner = maml.clone()``,
  ``learner.adapt(support_loss)`` for every inner step, ``(query_loss / num_tasks).backward()``
  accumulated over the tasks, then the outer Adam step; ``l2l MAML-1``: the same with
  ``first_order=True`` (the clone's ``.backward()`` reaches θ through ``clone()``, so the plain
  loop gives FOMAML's gradient).
- ``supervised step``: forward + backward + Adam of the same network on every image of the
  whole meta-batch as one batch, no inner loop: the floor any meta-learner pays.

Before timing, the meta-gradients of the library (batched and loop), of higher and of learn2learn
are compared in float64 on the first benchmark batch (its first ``--check-tasks`` tasks, 4 by
default: float64 convolutions are slow on CPU), second and first order; the run stops if they
differ.

Timing: ``--warmup`` rounds are discarded, then ``--iters`` rounds; in every round each method
runs one meta-iteration on that round's batch, in an order rotated from round to round
(interleaved trials: a load spike on a shared machine hits every method alike). Reported: the
median and interquartile range of ms/iteration, and ratios as the median over rounds of the
per-round ratio (paired, so robust to drifting load). On CUDA every iteration is bracketed by
``torch.cuda.synchronize()`` and the peak memory allocated during an iteration (above what was
allocated before it) is reported. On every device, after the timed rounds, one more untimed
iteration per method measures the peak of the bytes autograd holds for backward (the distinct
storages of the tensors saved by the graph, tracked with
``torch.autograd.graph.saved_tensors_hooks``): a device-independent proxy for activation memory,
the only memory figure on the CPU (``--no-memory`` skips it). Task sampling is not timed.
On the CPU every method runs under the library's CPU settings
(``experiments.device.cpu_numerics``: one intra-op thread, denormals flushed); ``--threads``
overrides the thread count for all of them.

Run: ``python benchmarks/maml_step.py --setting 5w1s --device auto`` (``--help`` for more).
Progress goes to stderr; stdout carries the gradient check and the table (Markdown).
"""

from __future__ import annotations

import argparse
import copy
import gc
import importlib.metadata
import json
import statistics
import sys
import time
from collections.abc import Callable, Hashable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from tqdm import tqdm

from learntolearn.experiments.device import cpu_numerics, resolve_device
from learntolearn.experiments.provenance import device_name, git_state
from learntolearn.fewshot.training import meta_backward
from learntolearn.methods.maml import MAML
from learntolearn.models.networks import ConvNet
from learntolearn.objective import Objective, cross_entropy, init_params
from learntolearn.tasks import TaskBatch

try:
    import higher
except ImportError:  # reported in main(), with the command that installs it
    higher = None

L2L_IMPORT_ERROR = ""
try:
    import learn2learn as l2l
except ImportError as err:  # reported in main(), with the commands that install it
    l2l = None
    L2L_IMPORT_ERROR = f"{type(err).__name__}: {err}"

HIGHER_MISSING = (
    "The peer implementation `higher` is not installed. It is needed only by this benchmark;\n"
    "install it (pure Python, no dependencies to pull) into the project's environment with\n\n"
    "    .venv/bin/pip install higher==0.2.1 --no-deps\n\n"
    "or rerun with --skip-higher to time the library and the supervised floor only."
)

L2L_MISSING = (
    "The peer implementation `learn2learn` 0.2.0 is not importable here ({error}).\n"
    "It is needed only by this benchmark and is kept out of the project's environment: it pulls\n"
    "gym, scipy and requests at import, and its shipped C files do not build on Python >= 3.11\n"
    "(they include a header Python 3.11 removed), so they are regenerated from its .pyx sources.\n"
    "In a separate environment that also has torch, torchvision, higher and this project:\n\n"
    "    pip download learn2learn==0.2.0 --no-deps --no-binary :all:\n"
    "    tar xzf learn2learn-0.2.0.tar.gz && cd learn2learn-0.2.0\n"
    "    pip install cython wheel\n"
    "    rm -rf .eggs learn2learn/data/*.c\n"
    "    cython -3 -X embedsignature=True learn2learn/data/*.pyx\n"
    "    pip install --no-deps --no-build-isolation .\n"
    "    pip install requests                  # and, what else `import learn2learn` needs:\n"
    "    pip install scipy gym==0.26.2 --no-deps\n\n"
    "(benchmarks/README.md has the full sequence), or rerun with --skip-l2l."
)

IMAGE_SHAPE = (1, 28, 28)


@dataclass(frozen=True)
class Setting:
    """One N-way K-shot Omniglot configuration of MAML (Finn et al., 2017, Sec. 5.2)."""

    n_way: int
    k_shot: int
    k_query: int
    meta_batch: int
    inner_steps: int
    inner_lr: float
    meta_lr: float = 1e-3  # Adam's step size for the outer update (MAML reference code)


SETTINGS: dict[str, Setting] = {
    "5w1s": Setting(n_way=5, k_shot=1, k_query=15, meta_batch=32, inner_steps=1, inner_lr=0.4),
    "20w1s": Setting(n_way=20, k_shot=1, k_query=15, meta_batch=16, inner_steps=5, inner_lr=0.1),
}

Step = Callable[[TaskBatch], None]


@dataclass
class Method:
    """A meta-iteration to time and what was measured for it."""

    name: str
    step: Step
    times: list[float] = field(default_factory=list)  # seconds, timed rounds only
    peak_bytes: int = 0  # CUDA: peak allocated during an iteration
    saved_bytes: int | None = None  # any device: peak bytes saved for backward (one iteration)


# --------------------------------------------------------------------------------------------
# The meta-iterations


def library_maml(model: nn.Module, s: Setting, *, first_order: bool, batched: bool) -> MAML:
    """The library's MAML on ``model`` with the setting's hyperparameters."""
    return MAML(
        Objective(model, cross_entropy),
        inner_lr=s.inner_lr,
        inner_steps=s.inner_steps,
        first_order=first_order,
        batched=batched,
    )


def library_step(
    model: nn.Module, s: Setting, *, first_order: bool, batched: bool, chunk: int | None = None
) -> Step:
    """``learntolearn``: meta-loss, backward, Adam, exactly as ``training.train`` does it
    (``chunk``: backpropagated that many tasks at a time, ``train``'s ``task_chunk``)."""
    params = init_params(model)
    maml = library_maml(model, s, first_order=first_order, batched=batched)
    opt = torch.optim.Adam(params.values(), lr=s.meta_lr)

    def step(batch: TaskBatch) -> None:
        opt.zero_grad(set_to_none=True)
        meta_backward(maml, params, batch, batch.num_tasks, chunk)
        opt.step()

    return step


def higher_accumulate_meta_grad(
    model: nn.Module, inner_opt: torch.optim.Optimizer, batch: TaskBatch, s: Setting, *, fo: bool
) -> None:
    """Add the meta-gradient of the mean query loss to ``model``'s ``.grad`` (higher's loop)."""
    assert higher is not None
    b = batch.num_tasks
    theta = list(model.parameters())
    for i in range(b):
        with higher.innerloop_ctx(
            model, inner_opt, copy_initial_weights=False, track_higher_grads=not fo
        ) as (fmodel, diffopt):
            for _ in range(s.inner_steps):
                diffopt.step(F.cross_entropy(fmodel(batch.x_support[i]), batch.y_support[i]))
            query_loss = F.cross_entropy(fmodel(batch.x_query[i]), batch.y_query[i]) / b
            if not fo:
                query_loss.backward()
                continue
            # track_higher_grads=False detaches θ' from θ: map ∇_θ' L onto θ by hand (#63).
            grads = torch.autograd.grad(query_loss, list(fmodel.parameters()))
            for p, g in zip(theta, grads, strict=True):
                if p.grad is None:
                    p.grad = g.clone()
                else:
                    p.grad.add_(g)


def higher_step(model: nn.Module, s: Setting, *, first_order: bool) -> Step:
    """``higher``'s canonical MAML meta-iteration on its own copy of the network."""
    model = copy.deepcopy(model)
    inner_opt = torch.optim.SGD(model.parameters(), lr=s.inner_lr)
    meta_opt = torch.optim.Adam(model.parameters(), lr=s.meta_lr)

    def step(batch: TaskBatch) -> None:
        meta_opt.zero_grad(set_to_none=True)
        higher_accumulate_meta_grad(model, inner_opt, batch, s, fo=first_order)
        meta_opt.step()

    return step


def l2l_accumulate_meta_grad(maml: nn.Module, batch: TaskBatch, s: Setting) -> None:
    """Add the meta-gradient of the mean query loss to θ's ``.grad`` (learn2learn's loop)."""
    b = batch.num_tasks
    for i in range(b):
        learner = maml.clone()
        for _ in range(s.inner_steps):
            learner.adapt(F.cross_entropy(learner(batch.x_support[i]), batch.y_support[i]))
        query_loss = F.cross_entropy(learner(batch.x_query[i]), batch.y_query[i]) / b
        query_loss.backward()


def l2l_maml(model: nn.Module, s: Setting, *, first_order: bool) -> nn.Module:
    """``learn2learn.algorithms.MAML`` around a copy of ``model``."""
    assert l2l is not None
    return l2l.algorithms.MAML(copy.deepcopy(model), lr=s.inner_lr, first_order=first_order)


def l2l_step(model: nn.Module, s: Setting, *, first_order: bool) -> Step:
    """``learn2learn``'s canonical MAML meta-iteration on its own copy of the network."""
    maml = l2l_maml(model, s, first_order=first_order)
    meta_opt = torch.optim.Adam(maml.parameters(), lr=s.meta_lr)

    def step(batch: TaskBatch) -> None:
        meta_opt.zero_grad(set_to_none=True)
        l2l_accumulate_meta_grad(maml, batch, s)
        meta_opt.step()

    return step


def supervised_step(model: nn.Module, s: Setting) -> Step:
    """Forward, backward and Adam on every image of the meta-batch (support and query sets) as
    one batch: the plain step the meta-iterations are measured against."""
    model = copy.deepcopy(model)
    opt = torch.optim.Adam(model.parameters(), lr=s.meta_lr)

    def step(batch: TaskBatch) -> None:
        x = torch.cat([batch.x_support, batch.x_query], 1).flatten(0, 1)
        y = torch.cat([batch.y_support, batch.y_query], 1).flatten()
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return step


# --------------------------------------------------------------------------------------------
# Gradient agreement


def library_meta_grad(
    model: nn.Module, batch: TaskBatch, s: Setting, *, first_order: bool, batched: bool
) -> list[Tensor]:
    params = init_params(model)
    maml = library_maml(model, s, first_order=first_order, batched=batched)
    return list(torch.autograd.grad(maml.loss(params, batch), list(params.values())))


def higher_meta_grad(model: nn.Module, batch: TaskBatch, s: Setting, *, fo: bool) -> list[Tensor]:
    model = copy.deepcopy(model)
    higher_accumulate_meta_grad(
        model, torch.optim.SGD(model.parameters(), lr=s.inner_lr), batch, s, fo=fo
    )
    return [p.grad if p.grad is not None else torch.zeros_like(p) for p in model.parameters()]


def l2l_meta_grad(model: nn.Module, batch: TaskBatch, s: Setting, *, fo: bool) -> list[Tensor]:
    maml = l2l_maml(model, s, first_order=fo)
    l2l_accumulate_meta_grad(maml, batch, s)
    return [p.grad if p.grad is not None else torch.zeros_like(p) for p in maml.parameters()]


def naive_higher_fo_reaches_theta(model: nn.Module, batch: TaskBatch, s: Setting) -> bool:
    """Does the literal ``track_higher_grads=False`` + ``.backward()`` loop give θ a gradient?"""
    assert higher is not None
    model = copy.deepcopy(model)
    inner_opt = torch.optim.SGD(model.parameters(), lr=s.inner_lr)
    with higher.innerloop_ctx(
        model, inner_opt, copy_initial_weights=False, track_higher_grads=False
    ) as (fmodel, diffopt):
        for _ in range(s.inner_steps):
            diffopt.step(F.cross_entropy(fmodel(batch.x_support[0]), batch.y_support[0]))
        F.cross_entropy(fmodel(batch.x_query[0]), batch.y_query[0]).backward()
    return any(p.grad is not None for p in model.parameters())


def max_rel_diff(a: list[Tensor], b: list[Tensor]) -> float:
    """max|a − b| / max|b| over all parameters together (a normwise relative error).

    Not per tensor: the convolution biases have an exactly zero meta-gradient (each is followed
    by batch normalisation, which removes any per-channel shift), so a per-tensor ratio would
    compare rounding noise with rounding noise.
    """
    diff = max((x - y).abs().max().item() for x, y in zip(a, b, strict=True))
    scale = max(y.abs().max().item() for y in b)
    return diff / max(scale, 1e-300)


def check_gradients(
    model: nn.Module,
    batch: TaskBatch,
    s: Setting,
    *,
    rtol: float,
    with_higher: bool,
    with_l2l: bool,
) -> bool:
    """Print whether every implementation computes the same meta-gradient (float64)."""
    model64 = copy.deepcopy(model).double()
    batch64 = batch.to(batch.device, torch.float64)
    print(
        f"Meta-gradient agreement on the first benchmark batch ({batch.num_tasks} tasks), "
        f"float64 (pass: <= {rtol:g})"
    )
    print("metric: max|g - g_ref| / max|g_ref| over all parameters\n")
    ok = True
    refs: dict[bool, list[Tensor]] = {}
    for fo in (False, True):
        order = "first order" if fo else "second order"
        refs[fo] = ref = library_meta_grad(model64, batch64, s, first_order=fo, batched=True)
        others: list[tuple[str, list[Tensor]]] = [
            ("ours loop", library_meta_grad(model64, batch64, s, first_order=fo, batched=False))
        ]
        if with_higher:
            others.append(("higher", higher_meta_grad(model64, batch64, s, fo=fo)))
        if with_l2l:
            others.append(("l2l", l2l_meta_grad(model64, batch64, s, fo=fo)))
        for name, grads in others:
            err = max_rel_diff(grads, ref)
            good = err <= rtol
            ok &= good
            verdict = "ok" if good else "MISMATCH"
            print(f"  {order:12s}  {name:8s} vs ours batched: {err:.2e}  {verdict}")
    # FOMAML must differ from MAML: guards against a check that passes vacuously.
    print(f"  (ours batched, first vs second order: {max_rel_diff(refs[True], refs[False]):.2e})")
    if with_higher:
        reaches = naive_higher_fo_reaches_theta(model64, batch64, s)
        print(
            "  note: higher with track_higher_grads=False and a plain query_loss.backward() "
            + ("does" if reaches else "does NOT")
            + " give theta\n  a gradient (higher #63, #129): the higher FO loop timed here adds "
            "the gradient w.r.t.\n  fmodel.parameters() to theta's .grad instead."
        )
    print()
    return ok


# --------------------------------------------------------------------------------------------
# Data


def synthetic_tasks(s: Setting, num: int, device: torch.device, seed: int) -> list[TaskBatch]:
    """Random images in [0, 1] with the shapes and labels of real N-way K-shot tasks."""
    gen = torch.Generator(device=device).manual_seed(seed)
    labels = torch.arange(s.n_way, device=device)

    def images(per_task: int) -> Tensor:
        shape = (s.meta_batch, per_task, *IMAGE_SHAPE)
        return torch.rand(shape, generator=gen, device=device)

    return [
        TaskBatch(
            x_support=images(s.n_way * s.k_shot),
            y_support=labels.repeat_interleave(s.k_shot).repeat(s.meta_batch, 1),
            x_query=images(s.n_way * s.k_query),
            y_query=labels.repeat_interleave(s.k_query).repeat(s.meta_batch, 1),
        )
        for _ in range(num)
    ]


def omniglot_tasks(s: Setting, num: int, device: torch.device, seed: int) -> list[TaskBatch]:
    """Meta-batches of the Vinyals et al. (2016) training split, sampled on ``device``."""
    from learntolearn.data.omniglot import DataError, OmniglotTasks, load_omniglot

    try:
        data = load_omniglot(download=False)
        tasks = OmniglotTasks(
            data, "train", n_way=s.n_way, k_shot=s.k_shot, k_query=s.k_query, device=device
        )
    except DataError as err:
        sys.exit(f"{err}\n\nNo Omniglot here: set LEARNTOLEARN_DATA, or rerun with --synthetic.")
    gen = torch.Generator(device=device).manual_seed(seed)
    return [tasks.sample(s.meta_batch, gen) for _ in range(num)]


# --------------------------------------------------------------------------------------------
# Timing


class _Saved:
    """What the graph stores in place of a saved tensor; releasing it releases the tensor."""

    __slots__ = ("key", "meter", "tensor")

    def __init__(self, tensor: Tensor, key: Hashable, meter: SavedTensorMeter) -> None:
        self.tensor, self.key, self.meter = tensor, key, meter

    def __del__(self) -> None:
        self.meter.release(self.key)


class SavedTensorMeter:
    """Peak bytes held by autograd for backward during one call: a proxy for activation memory.

    Every tensor an autograd graph saves (forward, and the backward graphs of
    ``create_graph=True``) passes through ``saved_tensors_hooks``; the meter counts the bytes of
    each distinct storage while at least one graph holds it (views and repeated saves of one
    tensor count once; parameters count when a graph saves them). Not counted: tensors that are
    not saved (gradients, optimiser state, temporaries), allocator overhead and caching.
    """

    def __init__(self) -> None:
        self.refs: dict[Hashable, tuple[int, int]] = {}  # storage -> (holders, bytes)
        self.live = 0
        self.peak = 0

    def pack(self, t: Tensor) -> _Saved:
        base = t
        while torch._C._functorch.is_batchedtensor(base):  # saved under vmap: the real storage
            base = torch._C._functorch.get_unwrapped(base)
        try:
            storage = base.untyped_storage()
            key: Hashable = (storage.device, storage.data_ptr())
            nbytes = storage.nbytes()
        except (RuntimeError, NotImplementedError):  # a tensor without a plain storage
            key, nbytes = ("id", id(base)), base.numel() * base.element_size()
        holders, _ = self.refs.get(key, (0, nbytes))
        if holders == 0:
            self.live += nbytes
            self.peak = max(self.peak, self.live)
        self.refs[key] = (holders + 1, nbytes)
        return _Saved(t, key, self)

    def release(self, key: Hashable) -> None:
        if key not in self.refs:  # held past the end of its measurement
            return
        holders, nbytes = self.refs[key]
        if holders == 1:
            del self.refs[key]
            self.live -= nbytes
        else:
            self.refs[key] = (holders - 1, nbytes)

    def measure(self, step: Step, batch: TaskBatch) -> int:
        """Peak saved bytes of one call of ``step`` (which runs, updating its parameters)."""
        gc.collect()
        self.refs.clear()
        self.live = self.peak = 0
        with torch.autograd.graph.saved_tensors_hooks(self.pack, _unpack):
            step(batch)
        gc.collect()
        return self.peak


def _unpack(saved: _Saved) -> Tensor:
    return saved.tensor


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_once(method: Method, batch: TaskBatch, device: torch.device) -> float:
    """Seconds of one meta-iteration (CUDA: synchronised; peak memory recorded)."""
    cuda = device.type == "cuda"
    if cuda:
        sync(device)
        before = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
    sync(device)
    start = time.perf_counter()
    method.step(batch)
    sync(device)
    elapsed = time.perf_counter() - start
    if cuda:
        peak = torch.cuda.max_memory_allocated(device) - before
        method.peak_bytes = max(method.peak_bytes, peak)
    return elapsed


def run_rounds(
    methods: list[Method], batches: list[TaskBatch], device: torch.device, warmup: int, iters: int
) -> None:
    """Interleaved trials: each round runs every method once, in a rotated order."""
    total = warmup + iters
    with tqdm(total=total * len(methods), desc="timing", unit="it", file=sys.stderr) as bar:
        for r in range(total):
            batch = batches[r % len(batches)]
            k = r % len(methods)
            for method in methods[k:] + methods[:k]:
                bar.set_postfix_str(method.name)
                gc.collect()
                elapsed = time_once(method, batch, device)
                if r >= warmup:
                    method.times.append(elapsed)
                bar.update()


def quartiles(xs: list[float]) -> tuple[float, float, float]:
    if len(xs) == 1:
        return xs[0], xs[0], xs[0]
    q1, q2, q3 = statistics.quantiles(xs, n=4, method="inclusive")
    return q1, q2, q3


def paired_ratio(a: Method, b: Method) -> float:
    """Median over rounds of a's time / b's time in the same round."""
    return statistics.median(x / y for x, y in zip(a.times, b.times, strict=True))


def print_table(methods: list[Method], ref: Method, floor: Method | None, cuda: bool) -> None:
    head = ["method", "ms/iter (median)", "IQR ms", "x ours MAML-2 batched", "x supervised"]
    saved = any(m.saved_bytes is not None for m in methods)
    if saved:
        head.append("saved MiB (peak)")
    if cuda:
        head.append("peak MiB / iter")
    print("| " + " | ".join(head) + " |")
    print("|" + "|".join(" --- " if i == 0 else " ---: " for i in range(len(head))) + "|")
    for m in methods:
        q1, q2, q3 = quartiles(m.times)
        row = [
            m.name,
            f"{1e3 * q2:.1f}",
            f"{1e3 * q1:.1f}-{1e3 * q3:.1f}",
            f"{paired_ratio(m, ref):.2f}",
            "-" if floor is None else f"{paired_ratio(m, floor):.1f}",
        ]
        if saved:
            row.append("-" if m.saved_bytes is None else f"{m.saved_bytes / 2**20:.0f}")
        if cuda:
            row.append(f"{m.peak_bytes / 2**20:.0f}")
        print("| " + " | ".join(row) + " |")


# --------------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description="Time one MAML meta-iteration: learntolearn vs higher vs learn2learn vs a "
        "supervised step.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--setting", choices=sorted(SETTINGS), default="5w1s")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    p.add_argument("--iters", type=int, default=20, help="timed rounds (one iteration/method)")
    p.add_argument("--warmup", type=int, default=2, help="untimed rounds first")
    p.add_argument("--synthetic", action="store_true", help="random images, no Omniglot needed")
    p.add_argument("--threads", type=int, help="torch.set_num_threads (default: torch's)")
    p.add_argument("--json", metavar="PATH", help="also write the raw per-round times here")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--batches", type=int, default=4, help="distinct meta-batches, cycled")
    p.add_argument("--meta-batch", type=int, help="override the setting's tasks per batch")
    p.add_argument("--k-query", type=int, help="override the query examples per class")
    p.add_argument("--inner-steps", type=int, help="override the setting's inner steps")
    p.add_argument("--inner-lr", type=float, help="override the setting's inner step size")
    p.add_argument("--rtol", type=float, default=1e-6, help="gradient-agreement tolerance")
    p.add_argument(
        "--check-tasks", type=int, default=4, help="tasks of the first batch checked (0: all)"
    )
    p.add_argument("--no-check", action="store_true", help="skip the gradient-agreement check")
    p.add_argument("--no-loop", action="store_true", help="skip the library's task loop")
    p.add_argument(
        "--task-chunk",
        type=int,
        default=4,
        help="tasks per backward of the chunked library method (train's --task-chunk)",
    )
    p.add_argument("--skip-higher", action="store_true", help="run without higher")
    p.add_argument("--skip-l2l", action="store_true", help="run without learn2learn")
    p.add_argument(
        "--no-memory", action="store_true", help="skip the saved-tensor memory iteration"
    )
    args = p.parse_args(argv)
    if args.iters < 1 or args.warmup < 0 or args.batches < 1:
        p.error("--iters and --batches must be >= 1, --warmup >= 0")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if higher is None and not args.skip_higher:
        print(HIGHER_MISSING, file=sys.stderr)
        return 2
    with_higher = not args.skip_higher
    if l2l is None and not args.skip_l2l:
        print(L2L_MISSING.format(error=L2L_IMPORT_ERROR), file=sys.stderr)
        return 2
    with_l2l = not args.skip_l2l
    if args.device == "cuda" and not torch.cuda.is_available():
        print("--device cuda: no CUDA device is available", file=sys.stderr)
        return 2
    device = resolve_device(args.device)
    # The library's CPU settings (one flushing thread: denormals cost 10-100x on x86), applied
    # to every method alike; --threads overrides the thread count for all of them.
    cpu_numerics(device)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    s = SETTINGS[args.setting]
    overrides = {
        "meta_batch": args.meta_batch,
        "k_query": args.k_query,
        "inner_steps": args.inner_steps,
        "inner_lr": args.inner_lr,
    }
    s = replace(s, **{k: v for k, v in overrides.items() if v is not None})

    sample = synthetic_tasks if args.synthetic else omniglot_tasks
    batches = sample(s, args.batches, device, args.seed)
    torch.manual_seed(args.seed)
    model = ConvNet(s.n_way, pool=False).to(device)

    git = git_state()
    commit = "unknown" if git["commit"] is None else git["commit"][:10]
    commit += " + uncommitted edits" if git["dirty"] else ""
    peer = importlib.metadata.version("higher") if with_higher else "not run"
    peer_l2l = importlib.metadata.version("learn2learn") if with_l2l else "not run"
    print(
        f"# MAML meta-iteration, Omniglot {s.n_way}-way {s.k_shot}-shot "
        f"({'synthetic images' if args.synthetic else 'Omniglot train split'})"
    )
    print(
        f"meta_batch={s.meta_batch} k_query={s.k_query} inner_steps={s.inner_steps} "
        f"inner_lr={s.inner_lr} meta_lr={s.meta_lr} | ConvNet(pool=False), "
        f"{sum(p.numel() for p in model.parameters())} parameters"
    )
    print(
        f"{device_name(device)}, {torch.get_num_threads()} torch threads | "
        f"torch {torch.__version__} | higher {peer} | learn2learn {peer_l2l} | "
        f"learntolearn {commit}"
    )
    print(f"rounds: {args.warmup} warm-up + {args.iters} timed, interleaved\n")
    sys.stdout.flush()

    if not args.no_check:
        first = batches[0] if args.check_tasks < 1 else batches[0][: args.check_tasks]
        ok = check_gradients(
            model, first, s, rtol=args.rtol, with_higher=with_higher, with_l2l=with_l2l
        )
        sys.stdout.flush()
        if not ok:
            print("Meta-gradients disagree: not timing implementations that compute different")
            print("things (rerun with --no-check to time them anyway).")
            return 1

    methods = [
        Method("ours MAML-2 batched", library_step(model, s, first_order=False, batched=True)),
        Method("ours MAML-1 batched", library_step(model, s, first_order=True, batched=True)),
        Method(
            f"ours MAML-2, {args.task_chunk} tasks per backward",
            library_step(model, s, first_order=False, batched=True, chunk=args.task_chunk),
        ),
    ]
    if not args.no_loop:
        loop = library_step(model, s, first_order=False, batched=False)
        methods.append(Method("ours MAML-2 loop", loop))
    if with_higher:
        methods += [
            Method("higher MAML-2", higher_step(model, s, first_order=False)),
            Method("higher MAML-1", higher_step(model, s, first_order=True)),
        ]
    if with_l2l:
        methods += [
            Method("l2l MAML-2", l2l_step(model, s, first_order=False)),
            Method("l2l MAML-1", l2l_step(model, s, first_order=True)),
        ]
    methods.append(Method("supervised step", supervised_step(model, s)))

    run_rounds(methods, batches, device, args.warmup, args.iters)
    if not args.no_memory:
        for method in tqdm(methods, desc="saved-tensor memory", file=sys.stderr):
            method.saved_bytes = SavedTensorMeter().measure(method.step, batches[0])
    print_table(methods, ref=methods[0], floor=methods[-1], cuda=device.type == "cuda")
    if args.json:
        record = {
            "setting": {"name": args.setting, **asdict(s), "synthetic": args.synthetic},
            "device": device_name(device),
            "threads": torch.get_num_threads(),
            "torch": torch.__version__,
            "higher": peer,
            "learn2learn": peer_l2l,
            "learntolearn": git,
            "seconds": {m.name: m.times for m in methods},
            "peak_bytes": {m.name: m.peak_bytes for m in methods} if device.type == "cuda" else {},
            "saved_bytes": {m.name: m.saved_bytes for m in methods if m.saved_bytes is not None},
        }
        Path(args.json).write_text(json.dumps(record, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
