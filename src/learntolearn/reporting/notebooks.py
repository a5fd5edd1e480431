"""Execute a chapter notebook with papermill, keeping the stored notebook stable.

Papermill injects the ``profile``/``device`` parameters after the cell tagged ``parameters``
and runs the notebook in its own folder (``--cwd``), as nbval and myst-nb do. Timing metadata
that would change on every run is removed, so re-executing an unchanged chapter gives an
unchanged file. Progress bars are disabled in the kernel (``TQDM_DISABLE=1``).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from learntolearn.io import atomic_write

__all__ = ["execute", "strip_volatile_metadata"]

_VOLATILE_NOTEBOOK = ("start_time", "end_time", "duration", "exception", "status")


def strip_volatile_metadata(nb: dict) -> dict:
    """Drop papermill's timings and status, and Jupyter's per-cell execution timestamps."""
    pm = nb.get("metadata", {}).get("papermill", {})
    for k in _VOLATILE_NOTEBOOK:
        pm.pop(k, None)
    for k in ("input_path", "output_path"):
        pm.pop(k, None)
    for cell in nb.get("cells", []):
        cell.get("metadata", {}).pop("papermill", None)
        cell.get("metadata", {}).pop("execution", None)
    return nb


def execute(
    notebook: Path, *, profile: str | None = None, device: str = "auto", output: Path | None = None
) -> Path:
    """Run ``notebook`` top to bottom with papermill; write it to ``output`` (default: in place).

    ``profile=None`` keeps the profile the notebook's parameters cell names.
    """
    import nbformat
    import papermill

    notebook = Path(notebook).resolve()
    if not notebook.is_file():
        raise FileNotFoundError(f"no notebook at {notebook}")
    target = Path(output).resolve() if output is not None else notebook
    env_backup = {k: os.environ.get(k) for k in ("TQDM_DISABLE", "MPLBACKEND")}
    os.environ["TQDM_DISABLE"] = "1"
    os.environ.pop("MPLBACKEND", None)  # 'agg' in the kernel would drop every figure
    try:
        with tempfile.TemporaryDirectory() as tmp:
            executed = Path(tmp) / notebook.name
            papermill.execute_notebook(
                str(notebook),
                str(executed),
                parameters={"device": device, **({"profile": profile} if profile else {})},
                kernel_name="python3",
                cwd=str(notebook.parent),
                progress_bar=False,
            )
            nb = nbformat.read(executed, as_version=4)
    finally:
        for k, v in env_backup.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    strip_volatile_metadata(nb)
    atomic_write(target, lambda p: nbformat.write(nb, p))
    return target
