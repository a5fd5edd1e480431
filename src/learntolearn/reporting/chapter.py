"""What every chapter notebook does around its experiments: load (or train) them, say which were
not run at this profile and why, and show the runs with their protocol and cost.

``chapter = Chapter.load("03_first_order", profile, device=device, seed=seed)`` gives the
chapter's configs and results by experiment name; :meth:`Chapter.not_run` and
:meth:`Chapter.runs_table` are the two cells every chapter shows.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from learntolearn.catalogue import chapter_experiments, experiment, not_run, run
from learntolearn.fewshot.config import ExperimentConfig
from learntolearn.fewshot.store import Result
from learntolearn.reporting.tables import Table

__all__ = ["Chapter"]

Column = Callable[[ExperimentConfig, Result], object]


@dataclass(frozen=True)
class Chapter:
    name: str
    profile: str
    configs: dict[str, Any]  # every kind: few-shot runs, learned optimizers, the search
    results: dict[str, Any]

    @classmethod
    def load(
        cls,
        name: str,
        profile: str,
        *,
        device: str = "auto",
        seed: int = 0,
        profile_of: Callable[[str], str] | None = None,
    ) -> Chapter:
        """The chapter's experiments at ``profile`` (``profile_of(name)`` picks another for some,
        e.g. sinusoids at the paper profile), loaded from the store or trained."""
        pick = profile_of or (lambda _: profile)
        configs = {
            n: experiment(n, pick(n)).with_(seed=seed) for n in chapter_experiments(name, profile)
        }
        results = {n: run(c, device=device, progress=False) for n, c in configs.items()}  # type: ignore[arg-type]
        return cls(name, profile, configs, results)

    def not_run(self) -> str:
        """One line per experiment of the chapter this profile leaves out, with the reason."""
        lines = [
            f"not run at this profile: {n} ({why})"
            for n, why in not_run(self.name, self.profile).items()
        ]
        return "\n".join(lines) or "every setting was run"

    def runs_table(
        self,
        columns: Mapping[str, Column],
        caption: str,
        where: Callable[[ExperimentConfig], bool] = lambda c: True,
        name: str = "",
    ) -> Table:
        """A row per few-shot run (those ``where`` accepts): ``columns`` (header → value of a
        config and its result), then the device and the training wall time every runs table
        ends with."""
        rows = [
            [
                n,
                *(f(c, self.results[n]) for f in columns.values()),
                self.results[n].provenance["device"],
                f"{self.results[n].provenance['wall_time_s'] / 60:.1f} min",
            ]
            for n, c in self.configs.items()
            if isinstance(c, ExperimentConfig) and where(c)
        ]
        headers = ["experiment", *columns, "device", "wall time of the run (shared machine)"]
        return Table(headers, rows, caption, name)
