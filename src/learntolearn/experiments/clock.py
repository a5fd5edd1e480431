"""Time as every kind of run reads it: budgets on the command line, deadlines on one clock
(:func:`time.monotonic`, the same for every process of the machine), durations as people read
them."""

from __future__ import annotations

import re
import time

__all__ = ["budget_seconds", "deadline_after", "duration", "passed"]


def deadline_after(seconds: float | None) -> float | None:
    """The deadline ``seconds`` from now on the one clock (None: no deadline)."""
    return None if seconds is None else time.monotonic() + seconds


def passed(deadline: float | None) -> bool:
    """Whether ``deadline`` (from :func:`deadline_after`) has passed."""
    return deadline is not None and time.monotonic() >= deadline


def remaining(deadline: float | None) -> float:
    """Seconds left until ``deadline`` (from :func:`deadline_after`; infinite: None)."""
    return float("inf") if deadline is None else max(0.0, deadline - time.monotonic())


def duration(seconds: float) -> str:
    """``seconds`` as a person reads a duration: '40 s', '12 min', '7 h 43 min', '5 d 8 h'."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    minutes = round(seconds / 60)
    if minutes < 90:
        return f"{minutes} min"
    if minutes < 48 * 60:
        return f"{minutes // 60} h {minutes % 60} min"
    hours = round(minutes / 60)
    return f"{hours // 24} d {hours % 24} h"


_NUMBER = r"(\d+(?:\.\d+)?)"
_BUDGET = re.compile(rf"\s*(?:{_NUMBER}h)?\s*(?:{_NUMBER}m)?\s*(?:{_NUMBER}(s?))?\s*")


def budget_seconds(text: str) -> float:
    """A time budget as written on the command line: '90s', '45m', '2h', '1h30m', or seconds."""
    found = _BUDGET.fullmatch(text)
    usage = f"a time budget looks like '90s', '45m', '2h' or '1h30m', got {text!r}"
    if not text.strip() or found is None or not any(found.groups()[:3]):
        raise ValueError(usage)
    hours, minutes, seconds_, unit = found.groups()
    if seconds_ and not unit and (hours or minutes):  # '1h30': 30 what?
        raise ValueError(usage)
    h, m, sec = (float(g) if g else 0.0 for g in (hours, minutes, seconds_))
    seconds = 3600 * h + 60 * m + sec
    if seconds <= 0:
        raise ValueError(f"the time budget must be positive, got {text!r}")
    return seconds
