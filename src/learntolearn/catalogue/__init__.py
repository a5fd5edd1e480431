"""The book's catalogue: every experiment by name (all kinds), the chapters that show them, their
profiles, what is not run and why, and the plan ``reproduce`` follows."""

from learntolearn.catalogue.chapters import CHAPTERS, chapter_experiments, not_run
from learntolearn.catalogue.entries import (
    analyse,
    experiment,
    kind_of,
    names,
    registered,
    run,
    store_for,
    stored,
)

__all__ = [
    "CHAPTERS",
    "analyse",
    "chapter_experiments",
    "experiment",
    "kind_of",
    "names",
    "not_run",
    "registered",
    "run",
    "store_for",
    "stored",
]
