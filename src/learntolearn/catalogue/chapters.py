"""The book's table of contents: which experiments (of every kind) each chapter shows, and
which a profile leaves out, with the reason the chapter prints where the numbers would stand."""

from __future__ import annotations

from learntolearn.catalogue.fewshot import (
    BLACK_BOX_METHODS,
    GRADIENT_METHODS,
    METRIC_METHODS,
    OMNIGLOT_SETTINGS,
)
from learntolearn.catalogue.learned_optimizers import OPTIMIZER_EXPERIMENTS
from learntolearn.catalogue.search import SEARCH_EXPERIMENT
from learntolearn.experiments.spec import ConfigError

__all__ = ["CHAPTERS", "NOT_RUN", "chapter_experiments", "not_run"]

_OMNIGLOT = tuple(
    f"omniglot/{m}-{n}w{k}s" for n, k in OMNIGLOT_SETTINGS for m in ("maml", "fomaml")
)
CHAPTERS: dict[str, tuple[str, ...]] = {
    "01_meta_learning": (
        "sinusoid/maml-k5",
        "sinusoid/maml-k10",
        "sinusoid/maml-k20",
        "sinusoid/pretrain",
        "sinusoid/oracle",
    ),
    "02_maml_math": (
        "omniglot/maml-5w1s",
        "omniglot/maml-20w1s",
        # why one inner step: MAML on sinusoids trained with 1, 2 and 5 inner steps
        "sinusoid/maml-k10",
        "sinusoid/maml-k10-steps2",
        "sinusoid/maml-k10-steps5",
    ),
    "03_first_order": (*_OMNIGLOT, "omniglot/maml-5w1s-q15", "omniglot/fomaml-5w1s-q15"),
    "04_reptile": (
        "sinusoid/reptile",
        "sinusoid/maml-k10",
        *(f"omniglot/reptile-{n}w{k}s" for n, k in OMNIGLOT_SETTINGS),
        "omniglot/reptile-5w1s-k1",
        *_OMNIGLOT,
    ),
    "05_anil": tuple(
        f"omniglot/{m}-{n}w{k}s" for n, k in OMNIGLOT_SETTINGS for m in ("maml", "anil")
    ),
    "06_metric": (
        *(f"omniglot/{m}-{n}w{k}s" for m in METRIC_METHODS for n, k in OMNIGLOT_SETTINGS),
        "omniglot/siamese-lake",
        "omniglot/siamese-koch-lake",
        "omniglot/protonet-5w1s-q15",
        "omniglot/protonet-5w5s-q15",
        "omniglot/protonet-5w1s-cosine",
        "omniglot/protonet-5w1s-train5way",
        "omniglot/protonet-5w1s-trainval",
        "omniglot/matching-5w1s-euclidean",
        "omniglot/matching-5w1s-fce",
        "omniglot/matching-5w1s-scale10",
        "omniglot/matching-5w1s-halve",
        "omniglot/matching-5w1s-nontransductive",
        "omniglot/matching-5w1s-one-sided",
        "omniglot/matching-5w1s-trainval",
        "omniglot/matching-5w1s-long",
        *(f"omniglot/{m}-{n}w{k}s" for m in GRADIENT_METHODS for n, k in OMNIGLOT_SETTINGS),
    ),
    "07_lstm_optimizers": (
        *(f"omniglot/{m}-5w{k}s" for k in (1, 5) for m in ("meta-lstm", "maml", "fomaml")),
        *OPTIMIZER_EXPERIMENTS,
    ),
    "08_black_box": (
        *(f"omniglot/{m}-{n}w{k}s" for m in BLACK_BOX_METHODS for n, k in OMNIGLOT_SETTINGS),
        "omniglot/episode-lstm-sequence",
        "omniglot/mann-sequence",
        "omniglot/maml-fc-5w1s",
        "omniglot/maml-fc-5w5s",
        # the comparison on the same tasks: MAML and Prototypical networks (chapters 3 and 6)
        *(f"omniglot/{m}-5w{k}s" for m in ("maml", "protonet") for k in (1, 5)),
    ),
    "09_hyperparameter_search": (SEARCH_EXPERIMENT,),
    # every classification method on every setting it has, and the sinusoid baselines
    "10_results": (
        *(
            f"omniglot/{m}-{n}w{k}s"
            for n, k in OMNIGLOT_SETTINGS
            for m in (*GRADIENT_METHODS, *METRIC_METHODS, *BLACK_BOX_METHODS)
        ),
        "omniglot/maml-fc-5w1s",
        "omniglot/maml-fc-5w5s",
        "omniglot/meta-lstm-5w1s",
        "omniglot/meta-lstm-5w5s",
        "sinusoid/maml-k5",
        "sinusoid/maml-k10",
        "sinusoid/maml-k20",
        "sinusoid/reptile",
        "sinusoid/pretrain",
        "sinusoid/oracle",
    ),
}


# Experiments a profile leaves out, with the reason; the chapters print it where the numbers
# would stand, and `reproduce` skips them at that profile.
_SLOW = {
    "maml": "about 4 s per second-order meta-iteration and 20 min of evaluation",
    "fomaml": "about 1 s per first-order meta-iteration and 20 min of evaluation",
    "anil": "about 1.4 s per meta-iteration and 15 min of evaluation (and MAML, its "
    "reference, is not run either)",
    "reptile": "about 50 min of evaluation (50 Adam steps on 100 images for each of 600 tasks)",
}
# Koch et al.'s network: seconds a step and a 446 MiB checkpoint that stays local
_KOCH = {
    "omniglot/siamese-koch-lake": "Koch et al.'s network costs 44 times the book's Siamese "
    "network per step on one CPU thread (benchmarks/koch_siamese.py) and its checkpoint stays "
    "local: it runs at the paper profile only, in one sitting"
}
# ... and a question about the paper profile's schedule, which the short profiles never reach
_PAPER_ONLY = {
    "omniglot/matching-5w1s-halve": "it halves the step size every 2,000 episodes, a "
    "question about the paper profile's 20,000: a short run would never halve it",
    **dict.fromkeys(
        (
            "omniglot/matching-5w1s-nontransductive",
            "omniglot/matching-5w1s-one-sided",
            "omniglot/matching-5w1s-trainval",
            "omniglot/matching-5w1s-long",
        ),
        "it asks why the paper-profile run falls short of the paper; the short runs are short "
        "for another reason (the unscaled attention chapter 6 diagnoses)",
    ),
}
NOT_RUN: dict[str, dict[str, str]] = {
    "smoke": {
        **_KOCH,
        **_PAPER_ONLY,
        **{
            f"omniglot/{m}-20w5s": "20-way 5-shot adds minutes to CI and exercises no code path "
            "that 20-way 1-shot does not"
            for m in _SLOW
        },
    },
    "cpu": {
        **{
            f"omniglot/{m}-20w5s": f"20-way 5-shot costs {why} on one CPU thread: too slow for "
            "the cpu profile"
            for m, why in _SLOW.items()
        },
        "omniglot/episode-lstm-sequence": "about 20 min of one CPU thread beside MANN's run on "
        "the same protocol: the standing queue runs it at the paper profile",
        **_KOCH,
        **_PAPER_ONLY,
    },
}


# ... and what one chapter leaves out at a profile: the results chapter's smoke run reads one
# Omniglot setting (its code is the same for every setting; chapters 3 to 7 smoke-test the
# training of all of them)
CHAPTER_NOT_RUN: dict[str, dict[str, dict[str, str]]] = {
    "10_results": {
        "smoke": {
            n: "the smoke run of this chapter reads the 5-way 1-shot setting only"
            for n in CHAPTERS["10_results"]
            if n.startswith("omniglot/") and not n.endswith("-5w1s")
        }
    }
}


def not_run(chapter: str, profile: str) -> dict[str, str]:
    """The experiments of ``chapter`` that ``profile`` leaves out, with the reason."""
    if chapter not in CHAPTERS:
        raise ConfigError(f"unknown chapter {chapter!r}; known: {sorted(CHAPTERS)}")
    skipped = {**NOT_RUN.get(profile, {}), **CHAPTER_NOT_RUN.get(chapter, {}).get(profile, {})}
    return {n: why for n, why in skipped.items() if n in CHAPTERS[chapter]}


def chapter_experiments(chapter: str, profile: str) -> tuple[str, ...]:
    """The experiments ``chapter`` shows at ``profile`` (those :func:`not_run` names left out)."""
    skipped = not_run(chapter, profile)
    return tuple(n for n in CHAPTERS[chapter] if n not in skipped)
