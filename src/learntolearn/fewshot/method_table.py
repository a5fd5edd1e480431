"""The method table: for each ``config.method``, the config fields it owns and how each is
checked, the task families it applies to, how to build it from a config, its outer loop and its
observers.

Adding a method is one algorithm file under :mod:`learntolearn.methods` and one entry here (and
its experiments in the catalogue). The builders read the config's fields; nothing else in the
package switches on the method's name.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from torch import nn

from learntolearn.analysis.meta_gradients import compare_meta_gradients
from learntolearn.data.sinusoid import with_task_parameters
from learntolearn.experiments.spec import is_int, is_number, is_positive
from learntolearn.experiments.training import Observer
from learntolearn.fewshot.training import OuterLoop
from learntolearn.methods.anil import ANIL
from learntolearn.methods.black_box import SequenceCore
from learntolearn.methods.episode_lstm import EpisodeLSTM, LSTMCore
from learntolearn.methods.inner_loop import SGD, Adam, UpdateRule
from learntolearn.methods.maml import MAML
from learntolearn.methods.mann import MANN, MANNCore
from learntolearn.methods.matching import Matching
from learntolearn.methods.meta_learner_lstm import MetaLearnerLSTM
from learntolearn.methods.pretraining import JointTraining
from learntolearn.methods.protocol import Method
from learntolearn.methods.prototypical import DISTANCES, Prototypical
from learntolearn.methods.relation import Relation
from learntolearn.methods.reptile import Reptile
from learntolearn.methods.siamese import Siamese
from learntolearn.methods.snail import Snail, SNAILCore
from learntolearn.models.metric_networks import MetricNet, conv4
from learntolearn.objective import Objective
from learntolearn.tasks import TaskBatch

if TYPE_CHECKING:
    from learntolearn.fewshot.config import ExperimentConfig

__all__ = ["METHODS", "FieldCheck", "MethodEntry", "method_fields"]

FieldCheck = Callable[["ExperimentConfig", object], "str | None"]
"""What is wrong with a method-owned field's (set) value in a config, or None."""


def _identity(batch: TaskBatch) -> TaskBatch:
    return batch


def _adam(c: ExperimentConfig) -> OuterLoop:
    return OuterLoop("adam", c.meta_lr)


def _no_observers(c: ExperimentConfig, method: Method, fixed: TaskBatch) -> list[Observer]:
    return []


def _no_problem(c: ExperimentConfig) -> str | None:
    return None


def _integer(low: int) -> FieldCheck:
    def check(c: ExperimentConfig, v: object) -> str | None:
        return None if is_int(v) and v >= low else f"must be an integer >= {low}, got {v!r}"  # type: ignore[operator]

    return check


def _positive(c: ExperimentConfig, v: object) -> str | None:
    return None if is_positive(v) else f"must be a positive number, got {v!r}"


def _one_of(*allowed: object) -> FieldCheck:
    choices = " or ".join(map(repr, allowed))
    return lambda c, v: None if v in allowed else f"must be {choices}, got {v!r}"


def _boolean(c: ExperimentConfig, v: object) -> str | None:
    return None if isinstance(v, bool) else f"must be true or false, got {v!r}"


def _non_negative(c: ExperimentConfig, v: object) -> str | None:
    return None if is_number(v) and v >= 0 else f"must be a number >= 0, got {v!r}"  # type: ignore[operator]


def _head(c: ExperimentConfig, v: object) -> str | None:
    if v != "head":
        return f"must be 'head' (ANIL) or unset, got {v!r}"
    return None if c.n_way is not None else "'head' applies to classifiers only"


def _no_check(c: ExperimentConfig, v: object) -> str | None:
    return None  # checked with the fields every method shares


# The method-owned fields, each with its check; an entry picks those it needs or allows.
INNER_LR = ("inner_lr", _positive)
INNER_STEPS = ("inner_steps", _integer(1))
FIRST_ORDER = ("first_order", _boolean)
INNER_PARAMS = ("inner_params", _head)
INNER_BATCH = ("inner_batch", _integer(1))
INNER_OPTIMIZER = ("inner_optimizer", _one_of("sgd", "adam"))
META_LR_FINAL = ("meta_lr_final", _non_negative)
TRAIN_WAY = ("train_way", _integer(2))
READ_STEPS = ("read_steps", _integer(1))
HALVE_EVERY = ("meta_lr_halve_every", _integer(1))
DISTANCE = ("distance", _one_of(*DISTANCES))
AUGMENT = ("augment", _one_of("affine"))
ATTENTION_SCALE = ("attention_scale", _positive)
TRAIN_BN_MODE = ("train_bn_mode", _one_of("non-transductive"))
MONITOR_EVERY = ("monitor_every", _no_check)


@dataclass(frozen=True)
class MethodEntry:
    """How one method enters the experiments.

    ``needs``/``allows``: the config fields it requires / may use, each with its check (every
    other method-owned field must stay unset). ``build(config, objective)``: the method
    object. ``outer``: its outer loop. ``observers(config, method, fixed_batch)``:
    measurements along training (on a fixed batch of training tasks). ``prepare``: what the
    method's inputs add to a task batch (``extra_inputs`` features). ``label``: the name a
    reader knows it by. ``models``: the networks (``config.model``) it works with (None: any).
    ``check(config)``: what else is wrong with a config for it, or None. ``networks``: the
    networks the method brings itself, by ``config.model`` (besides the task family's).
    """

    families: tuple[str, ...]
    build: Callable[[ExperimentConfig, Objective], Method]
    needs: Mapping[str, FieldCheck] = field(default_factory=dict)
    allows: Mapping[str, FieldCheck] = field(default_factory=dict)
    outer: Callable[[ExperimentConfig], OuterLoop] = _adam
    observers: Callable[[ExperimentConfig, Method, TaskBatch], list[Observer]] = _no_observers
    prepare: Callable[[TaskBatch], TaskBatch] = _identity
    extra_inputs: int = 0
    label: Callable[[ExperimentConfig], str] = field(default=lambda c: c.method)
    models: tuple[str | None, ...] | None = None
    check: Callable[[ExperimentConfig], str | None] = _no_problem
    networks: Mapping[str, Callable[[ExperimentConfig], nn.Module]] = field(default_factory=dict)


def inner_rule(c: ExperimentConfig, lr: float) -> UpdateRule:
    """The inner optimiser a config names, with step size ``lr``."""
    return Adam(lr) if c.inner_optimizer == "adam" else SGD(lr)


def _maml(c: ExperimentConfig, objective: Objective) -> Method:
    assert c.inner_lr is not None and c.inner_steps is not None
    cls = ANIL if c.inner_params == "head" else MAML
    return cls(objective, c.inner_lr, c.inner_steps, bool(c.first_order))


def _gradient_monitor(c: ExperimentConfig, method: Method, fixed: TaskBatch) -> list[Observer]:
    """MAML: the exact vs first-order meta-gradient every ``monitor_every`` iterations."""
    if not c.monitor_every:
        return []
    assert isinstance(method, MAML)
    measure = lambda p: compare_meta_gradients(method, p, fixed)  # noqa: E731
    return [Observer("monitor", c.monitor_every, measure)]


def _reptile(c: ExperimentConfig, objective: Objective) -> Method:
    assert c.inner_lr is not None and c.inner_steps is not None and c.inner_batch is not None
    return Reptile(objective, inner_rule(c, c.inner_lr), c.inner_steps, c.inner_batch)


def _maml_label(c: ExperimentConfig) -> str:
    return "anil" if c.inner_params == "head" else "fomaml" if c.first_order else "maml"


def _halving(c: ExperimentConfig) -> OuterLoop:
    return OuterLoop("adam", c.meta_lr, halve_every=c.meta_lr_halve_every)


def _matching(c: ExperimentConfig, objective: Objective) -> Method:
    assert c.distance is not None
    return Matching(objective, c.distance, c.read_steps or 0, c.attention_scale or 1.0)


def _matching_check(c: ExperimentConfig) -> str | None:
    if (c.read_steps is not None) != (c.model == "fce"):
        return "full context embeddings take model 'fce' and read_steps together"
    return None


def _meta_lstm_check(c: ExperimentConfig) -> str | None:
    if not c.eval_steps == c.inner_steps == c.test_steps:
        return "the Meta-Learner LSTM learned T steps: set eval_steps = test_steps = inner_steps"
    return None


_GRADIENT_BASED = (None, "conv", "conv-pool", "fc")


def _sequence_network(
    core: Callable[[int, int, int], SequenceCore],
) -> Callable[[ExperimentConfig], nn.Module]:
    """A black-box method's network: the conv4-64 embedding and a sequence model over its 64
    features and the one-hot label, built for the training episode's N·K + 1 steps."""

    def build(c: ExperimentConfig) -> nn.Module:
        assert c.n_way is not None
        embedding = conv4()
        n = c.n_way
        return MetricNet(embedding, core(embedding.features + n, n, n * c.k_shot + 1))

    return build


def _black_box(
    model: str, method: Callable[[Objective], Method], core: Callable[[int, int, int], SequenceCore]
) -> MethodEntry:
    """A black-box method's entry: Omniglot, its own network (``model``), no method fields."""
    return MethodEntry(
        families=("omniglot",),
        build=lambda c, o: method(o),
        models=(model,),
        networks={model: _sequence_network(core)},
        check=_sequence_check,
    )


def _sequence_check(c: ExperimentConfig) -> str | None:
    if max(c.eval_shots) > c.k_shot:
        return (
            f"a sequence model reads at most the training episode's {c.k_shot} shots per class: "
            f"eval_shots {c.eval_shots} must not exceed k_shot"
        )
    if c.train_way is not None:
        return "a sequence model names n_way classes: train_way does not apply"
    return None


METHODS: dict[str, MethodEntry] = {
    # MAML (Finn et al. 2017), its first-order approximation and ANIL (the head alone adapts)
    "maml": MethodEntry(
        families=("sinusoid", "omniglot", "miniimagenet"),
        build=_maml,
        needs=dict((INNER_LR, INNER_STEPS, FIRST_ORDER)),
        allows=dict((MONITOR_EVERY, INNER_PARAMS)),
        observers=_gradient_monitor,
        label=_maml_label,
        models=_GRADIENT_BASED,
    ),
    # Reptile (Nichol et al. 2018): outer SGD whose step size falls linearly to meta_lr_final
    "reptile": MethodEntry(
        families=("sinusoid", "omniglot"),
        build=_reptile,
        needs=dict((INNER_LR, INNER_STEPS, INNER_BATCH, INNER_OPTIMIZER)),
        allows=dict((META_LR_FINAL,)),
        outer=lambda c: OuterLoop("sgd", c.meta_lr, c.meta_lr_final),
        models=_GRADIENT_BASED,
    ),
    # Pretraining on all tasks, fine-tuned at test time (MAML Sec. 5.1's baseline)
    "pretrain": MethodEntry(families=("sinusoid",), build=lambda c, o: JointTraining(o)),
    # The oracle sees amplitude and phase as extra inputs (MAML Fig. 3)
    "oracle": MethodEntry(
        families=("sinusoid",),
        build=lambda c, o: JointTraining(o),
        prepare=with_task_parameters,
        extra_inputs=2,
    ),
    # Metric-based methods (chapter 6): an embedding and a comparison, no inner loop
    "protonet": MethodEntry(
        families=("omniglot", "omniglot-trainval"),
        build=lambda c, o: Prototypical(o, c.distance),  # type: ignore[arg-type]
        needs=dict((DISTANCE,)),
        allows=dict((TRAIN_WAY, HALVE_EVERY, TRAIN_BN_MODE)),
        outer=_halving,
        models=("embedding",),
    ),
    "matching": MethodEntry(
        families=("omniglot", "omniglot-trainval"),
        build=_matching,
        needs=dict((DISTANCE,)),
        allows=dict((TRAIN_WAY, READ_STEPS, ATTENTION_SCALE, HALVE_EVERY, TRAIN_BN_MODE)),
        outer=_halving,
        models=("embedding", "fce"),
        check=_matching_check,
        label=lambda c: "matching-fce" if c.read_steps else "matching",
    ),
    "relation": MethodEntry(
        families=("omniglot",),
        build=lambda c, o: Relation(o),
        allows=dict((TRAIN_WAY, HALVE_EVERY, TRAIN_BN_MODE)),
        # the authors' code clips each module's gradient norm at 0.5; here the whole network's
        outer=lambda c: OuterLoop(
            "adam", c.meta_lr, halve_every=c.meta_lr_halve_every, clip_norm=0.5
        ),
        models=("relation",),
    ),
    # The Meta-Learner LSTM (Ravi & Larochelle 2017): a learned update rule and initialisation
    "meta-lstm": MethodEntry(
        families=("omniglot", "miniimagenet"),
        build=lambda c, o: MetaLearnerLSTM(o, c.inner_steps),  # type: ignore[arg-type]
        needs=dict((INNER_STEPS,)),
        # the authors clip the meta-gradient's norm (at 0.25)
        outer=lambda c: OuterLoop("adam", c.meta_lr, clip_norm=0.25),
        models=("meta-lstm",),
        check=_meta_lstm_check,
    ),
    # Black-box methods (the black-box chapter): a sequence model reads the support set
    "episode-lstm": _black_box("episode-lstm", EpisodeLSTM, LSTMCore),
    "mann": _black_box("mann", MANN, MANNCore),
    "snail": _black_box("snail", Snail, SNAILCore),
    "siamese": MethodEntry(
        families=("omniglot", "omniglot-lake"),
        build=lambda c, o: Siamese(o),
        allows=dict((TRAIN_WAY, AUGMENT)),
        models=("siamese", "siamese-koch"),
    ),
}


def method_fields() -> tuple[str, ...]:
    """Every config field some method owns (left unset by the methods that do not use it)."""
    owned = (f for e in METHODS.values() for f in (*e.needs, *e.allows))
    return tuple(dict.fromkeys(owned))
