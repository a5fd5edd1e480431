"""The one entry point of every kind: the stored result of a config, or compute and store it.

:func:`obtain` is the life cycle every kind shares: look the key up in the store it is handed
(the engine never decides where a result lives), refuse to compute under
``LEARNTOLEARN_NO_TRAIN``, check that the result could be saved, take the key's lock (a second
process computing the same key is refused at once), and only then call the kind's ``compute``.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from typing import Any, TypeVar

import torch

from learntolearn.experiments import distributed, provenance
from learntolearn.experiments.device import cpu_numerics, resolve_device
from learntolearn.experiments.spec import Spec
from learntolearn.experiments.store import Store, Stored

__all__ = ["MissingResultError", "begin_computing", "obtain"]

R = TypeVar("R", bound=Stored)


class MissingResultError(RuntimeError):
    """Computing was needed but is not allowed here (``LEARNTOLEARN_NO_TRAIN`` is set)."""


def begin_computing(
    device: str | torch.device, missing: str
) -> tuple[torch.device, dict[str, Any]]:
    """Before computing anything that is not stored: refuse under ``LEARNTOLEARN_NO_TRAIN``
    (with the message ``missing``), set up the device, and record the code's git state."""
    if os.environ.get("LEARNTOLEARN_NO_TRAIN"):
        raise MissingResultError(missing)
    dev = distributed.init_from_env(resolve_device(device))
    cpu_numerics(dev)
    return dev, provenance.git_state()


def obtain(
    spec: Spec,
    store: Store[R],
    compute: Callable[[torch.device, dict[str, Any]], R | None],
    *,
    device: str | torch.device,
    command: str,
) -> R:
    """The result of ``spec`` in ``store``, or ``compute(device, code state)`` it.

    ``command`` is what a user runs to compute it (named when computing is not allowed). In a
    distributed run rank 0 alone holds the lock; ``compute`` returns None on the other ranks,
    and every rank returns the result rank 0 stored.
    """
    distributed.barrier()  # every rank sees what rank 0 stored last (a no-op in one process)
    found = store.get(spec)
    if found is not None:
        return found
    dev, code = begin_computing(
        device,
        f"no stored result for {spec.key} in {store.root}, and LEARNTOLEARN_NO_TRAIN is set; "
        f"run `python -m learntolearn {command}` (or `make reproduce`) and commit the new "
        "folder under results/",
    )
    store.check_writable()
    rank, _ = distributed.world()
    with store.training_lock(spec) if rank == 0 else contextlib.nullcontext():
        stored_meanwhile = store.get(spec)  # by the process that held the lock before us
        result = stored_meanwhile if stored_meanwhile is not None else compute(dev, code)
    distributed.barrier()  # rank 0 has stored it
    return result if result is not None else store.get(spec)  # type: ignore[return-value]
