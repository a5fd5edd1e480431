"""Execute a chapter notebook with papermill, keeping the stored notebook stable.

Papermill injects the ``profile``/``device`` parameters after the cell tagged ``parameters``
and runs the notebook in its own folder (``--cwd``), as nbval and myst-nb do. Re-executing an
unchanged chapter gives a byte-identical file: timing metadata that would change on every run is
removed, and the injected-parameters cell, which papermill creates afresh with a random id on
every run, keeps the id it had in the input (else gets one derived from the notebook's name and
the parameters); every other cell keeps its id; consecutive stream outputs of one name are
merged (the kernel splits printed text differently from run to run). Progress bars are
disabled in the kernel (``TQDM_DISABLE=1``). A notebook executed at a profile whose results
are not committed (``smoke``) reads and writes the scratch store
(:func:`learntolearn.paths.results_dir`) unless ``LEARNTOLEARN_RESULTS`` is set. A file that
is not a notebook is refused before anything runs.
"""

from __future__ import annotations

import ast
import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any

from learntolearn.io import atomic_write, load_json
from learntolearn.paths import SCRATCH_PROFILES, results_dir

__all__ = [
    "execute",
    "merge_streams",
    "notebook_profile",
    "read_notebook",
    "stable_cell_ids",
    "strip_volatile_metadata",
]

_VOLATILE_NOTEBOOK = ("start_time", "end_time", "duration", "exception", "status")
_INJECTED = "injected-parameters"


def read_notebook(path: Path) -> dict:
    """The JSON of the notebook at ``path``, refused up front (a :class:`ValueError` naming the
    file) when it is not JSON or not a Jupyter notebook."""
    remedy = "pass a Jupyter notebook (.ipynb), e.g. one of book/*.ipynb"
    nb = load_json(path, remedy)
    if not (isinstance(nb, dict) and isinstance(nb.get("cells"), list) and "nbformat" in nb):
        raise ValueError(f"{path} is JSON but not a Jupyter notebook (no cells); {remedy}")
    return nb


def merge_streams(nb: dict) -> dict:
    """Merge consecutive stream outputs of the same name (stdout, stderr) of every code cell,
    in place: the kernel may split one printed line into several outputs on one run and not on
    the next, so the stored notebook would change although its output did not."""
    for cell in nb.get("cells", []):
        merged: list[Any] = []
        for out in cell.get("outputs", []):
            last = merged[-1] if merged else None
            if _is_stream(out) and _is_stream(last) and out["name"] == last["name"]:
                last["text"] = _text(last["text"]) + _text(out["text"])
            else:
                merged.append(out)
        if "outputs" in cell:
            cell["outputs"] = merged
    return nb


def _is_stream(output: Any) -> bool:
    return isinstance(output, dict) and output.get("output_type") == "stream"


def _text(text: str | list[str]) -> str:
    """A notebook's multi-line string: a list of lines (on disk) or one string (nbformat)."""
    return "".join(text) if isinstance(text, list) else text


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


def _tagged(cell: dict, tag: str) -> bool:
    return tag in cell.get("metadata", {}).get("tags", [])


def _derived_id(*parts: str) -> str:
    """An 8-hex-digit cell id, the same for the same ``parts`` on every run."""
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:8]


def stable_cell_ids(executed: dict, source: dict, name: str, parameters: dict[str, Any]) -> dict:
    """Give the cells of ``executed`` (papermill's output for ``source``) the ids they had in
    ``source``; a cell that had none (the injected-parameters cell on a first run, or every cell
    of an nbformat 4.4 notebook) gets one derived from ``name``, its position and content."""
    cells = source.get("cells", [])
    old = iter([c.get("id") for c in cells if not _tagged(c, _INJECTED)])
    injected = next((c.get("id") for c in cells if _tagged(c, _INJECTED)), None)
    params = json.dumps(parameters, sort_keys=True)
    seen: set[str] = set()
    for i, cell in enumerate(executed.get("cells", [])):
        if _tagged(cell, _INJECTED):
            cell_id = injected or _derived_id(name, _INJECTED, params)
        else:
            text = cell.get("source", "")
            text = "".join(text) if isinstance(text, list) else text
            cell_id = next(old, None) or _derived_id(name, str(i), text)
        salt = 0
        while cell_id in seen:  # ids are unique within a notebook
            salt += 1
            cell_id = _derived_id(name, str(i), str(salt))
        cell["id"] = cell_id
        seen.add(cell_id)
    return executed


def remove_parameter_cells(nb: dict) -> dict:
    """Tag the ``parameters`` cell and papermill's injected one ``remove-cell``: they are
    plumbing, and the rendered page leaves them out (the run details say the profile)."""
    for cell in nb.get("cells", []):
        if _tagged(cell, "parameters") or _tagged(cell, _INJECTED):
            tags = cell.setdefault("metadata", {}).setdefault("tags", [])
            if "remove-cell" not in tags:
                tags.append("remove-cell")
    return nb


def notebook_profile(nb: dict) -> str | None:
    """The ``profile = "..."`` that the notebook's ``parameters`` cell assigns, if any."""
    for cell in nb.get("cells", []):
        if cell.get("cell_type") != "code" or not _tagged(cell, "parameters"):
            continue
        text = cell.get("source", "")
        try:
            tree = ast.parse("".join(text) if isinstance(text, list) else text)
        except SyntaxError:
            return None
        for node in tree.body:
            if (
                isinstance(node, ast.Assign)
                and any(isinstance(t, ast.Name) and t.id == "profile" for t in node.targets)
                and isinstance(node.value, ast.Constant)
                and isinstance(node.value.value, str)
            ):
                return node.value.value
    return None


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
    source = read_notebook(notebook)
    parameters = {"device": device, **({"profile": profile} if profile else {})}
    env = {"TQDM_DISABLE": "1", "MPLBACKEND": None}  # 'agg' in the kernel would drop figures
    if (profile or notebook_profile(source)) in SCRATCH_PROFILES:
        env["LEARNTOLEARN_RESULTS"] = str(results_dir(SCRATCH_PROFILES[0]))
    env_backup = {k: os.environ.get(k) for k in env}
    for k, v in env.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v
    try:
        with tempfile.TemporaryDirectory() as tmp:
            executed = Path(tmp) / notebook.name
            papermill.execute_notebook(
                str(notebook),
                str(executed),
                parameters=parameters,
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
    merge_streams(nb)
    stable_cell_ids(nb, source, notebook.stem, parameters)
    remove_parameter_cells(nb)
    atomic_write(target, lambda p: nbformat.write(nb, p))
    return target
