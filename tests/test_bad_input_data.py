"""Defects found when the data and file readers were tried with bad input (issue 21), one test
each: every one is refused with a one-line error naming the file and what to do, before any
long work. All data here is generated in temporary folders."""

from __future__ import annotations

import hashlib
import io
import json
import re
import urllib.error
import urllib.request
import zipfile
from pathlib import Path

import nbformat
import numpy as np
import pytest
from PIL import Image

from learntolearn import paths
from learntolearn.data import miniimagenet as mi
from learntolearn.data import mnist
from learntolearn.data import omniglot_runs as lake
from learntolearn.data.verified import DataError, check_digest
from learntolearn.io import load_json
from learntolearn.reporting import notebooks


def one_line(info: pytest.ExceptionInfo[BaseException]) -> str:
    """The error's message, after checking it is one line."""
    message = str(info.value)
    assert "\n" not in message, message
    return message


def write_sums(folder: Path, *names: str) -> None:
    """A ``SHA256SUMS`` in ``folder`` listing ``names`` as they are now (written anew)."""
    lines = [f"{hashlib.sha256((folder / n).read_bytes()).hexdigest()}  {n}" for n in names]
    (folder / "SHA256SUMS").write_text("\n".join(lines) + "\n")


def md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


@pytest.fixture(autouse=True)
def offline(monkeypatch: pytest.MonkeyPatch) -> None:
    """Nothing here may download anything."""

    def refuse(url: object, *args: object, **kwargs: object) -> None:
        raise urllib.error.URLError("offline (test)")

    monkeypatch.setattr(urllib.request, "urlopen", refuse)


# --- Lake's one-shot runs: a generated all_runs.zip in a temporary data folder ---------------


def _png(run: int, index: int) -> bytes:
    """A 105x105 black-on-white image, distinct per run and index."""
    pixels = np.full((105, 105), 255, dtype=np.uint8)
    pixels[5 + 2 * run : 40 + 2 * run, 5 + 2 * index : 30 + 2 * index] = 0
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="PNG")
    return buf.getvalue()


def _runs_zip(path: Path, swap: bool = False) -> None:
    """All 20 runs; test item i matches training class 21 - i (``swap``: two labels of run 01
    exchanged, which every check but the checksum lets through)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w") as zf:
        for r in range(1, lake.RUNS + 1):
            run = f"run{r:02d}"
            match = {i: 21 - i for i in range(1, 21)}
            if swap and r == 1:
                match[1], match[2] = match[2], match[1]
            lines = [
                f"{run}/test/item{i:02d}.png {run}/training/class{c:02d}.png"
                for i, c in match.items()
            ]
            zf.writestr(f"{run}/class_labels.txt", "\n".join(lines) + "\n")
            for i in range(1, 21):
                zf.writestr(f"{run}/training/class{i:02d}.png", _png(r, i))
                zf.writestr(f"{run}/test/item{i:02d}.png", _png(r, 21 - i))


@pytest.fixture
def runs_zip(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A generated ``all_runs.zip`` in ``LEARNTOLEARN_DATA``, whose MD5 is taken as official."""
    path = tmp_path / "data" / "omniglot" / "one-shot-classification" / "all_runs.zip"
    _runs_zip(path)
    monkeypatch.setattr(lake, "_MD5", md5(path))
    monkeypatch.setenv("LEARNTOLEARN_DATA", str(tmp_path / "data"))
    monkeypatch.setenv("LEARNTOLEARN_CACHE", str(tmp_path / "cache"))
    return path


def test_generated_runs_are_read_and_checked_up_front(runs_zip: Path) -> None:
    assert lake.check_lake_runs(download=False) == runs_zip
    runs = lake.lake_runs(download=False)
    assert runs.x_query.shape == (20, 20, 1, 28, 28)
    assert runs.y_query[0].tolist() == list(range(19, -1, -1))


# 1. a truncated all_runs.zip that passes its checksum is a clear error, not a BadZipFile
@pytest.mark.parametrize("reader", ["lake_runs", "check_lake_runs"])
def test_truncated_runs_archive_is_a_clear_error(
    runs_zip: Path, monkeypatch: pytest.MonkeyPatch, reader: str
) -> None:
    data = runs_zip.read_bytes()
    runs_zip.write_bytes(data[: len(data) // 3])
    write_sums(runs_zip.parent, runs_zip.name)
    monkeypatch.setattr(lake, "_MD5", md5(runs_zip))  # as if the checksum matched
    with pytest.raises(DataError) as info:
        getattr(lake, reader)(download=False)
    message = one_line(info)
    assert f"cannot open {runs_zip}" in message and "truncated or damaged" in message
    assert "Delete the file" in message and "LEARNTOLEARN_DATA" in message
    assert runs_zip.read_bytes() == data[: len(data) // 3]  # nothing of the user's touched


# 2. a checksum the library knows cannot be overridden by a SHA256SUMS line
def test_swapped_run_labels_with_regenerated_sums_are_refused(runs_zip: Path) -> None:
    _runs_zip(runs_zip, swap=True)
    write_sums(runs_zip.parent, runs_zip.name)
    with pytest.raises(DataError, match=r"has MD5 .* not the official .* SHA256SUMS") as info:
        lake.lake_runs(download=False)
    assert str(runs_zip) in one_line(info)
    with pytest.raises(DataError, match="not the official"):
        lake.check_lake_runs(download=False)


def test_only_repacked_archives_accept_a_sums_line_instead_of_the_md5(tmp_path: Path) -> None:
    path = tmp_path / "a.zip"
    path.write_bytes(b"a re-packed archive")
    write_sums(tmp_path, "a.zip")
    sha = hashlib.sha256(path.read_bytes()).hexdigest()
    assert check_digest(path, "0" * 32, allow_repacked=True) == sha
    assert check_digest(path, md5(path)) == sha
    with pytest.raises(DataError, match="cannot replace the official checksum"):
        check_digest(path, "0" * 32)


# 3. a binary SHA256SUMS is named, with what to do
def test_binary_sums_file_is_named(runs_zip: Path) -> None:
    sums = runs_zip.parent / "SHA256SUMS"
    sums.write_bytes(b"\xff\xfe\x00\x81 binary \x00\xc3")
    with pytest.raises(DataError) as info:
        lake.lake_runs(download=False)
    message = one_line(info)
    assert f"{sums} is not a text file" in message and "restore it" in message
    with pytest.raises(DataError, match=re.escape(str(sums))):
        check_digest(runs_zip, md5(runs_zip))


# 4. a duplicated row of a miniImageNet split file is refused
def test_duplicated_split_row_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "val.csv"
    path.write_text("filename,label\na1.jpg,nA\na1.jpg,nA\nb1.jpg,nB\nb2.jpg,nB\n")
    with pytest.raises(DataError) as info:
        mi.read_split(path)
    message = one_line(info)
    assert f"{path}, line 3: a1.jpg is listed already on line 2" in message
    assert "remove the duplicate row" in message
    path.write_text("filename,label\na1.jpg,nA\nb1.jpg,nB\na1.jpg,nB\nb2.jpg,nA\n")
    with pytest.raises(DataError, match=r"line 4: a1\.jpg is listed already on line 2"):
        mi.read_split(path)  # the same file in two classes


# 5. MNIST files that fail the official MD5 are named before torchvision sees them
def _fake_mnist(folder: Path) -> None:
    folder.mkdir(parents=True)
    for name, _ in mnist.MNIST.resources:
        (folder / name).write_bytes(b"not MNIST " + name.encode())


def test_mnist_file_failing_its_md5_in_the_cache_is_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    raw = tmp_path / "cache" / "mnist" / "MNIST" / "raw"
    _fake_mnist(raw)
    monkeypatch.setenv("LEARNTOLEARN_DATA", str(tmp_path / "nothing"))
    monkeypatch.setenv("LEARNTOLEARN_CACHE", str(tmp_path / "cache"))
    with pytest.raises(DataError) as info:
        mnist.load_mnist(train=False, download=True)
    message = one_line(info)
    assert re.search(r"MNIST/raw/\S+-ubyte\.gz has MD5 \w+, not the official \w+", message)
    assert "Delete the file" in message
    assert sorted(p.name for p in raw.iterdir()) == sorted(n for n, _ in mnist.MNIST.resources)


def test_mnist_files_with_regenerated_sums_are_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = tmp_path / "data" / "mnist"
    _fake_mnist(data)
    write_sums(data, *(n for n, _ in mnist.MNIST.resources))
    monkeypatch.setenv("LEARNTOLEARN_DATA", str(tmp_path / "data"))
    monkeypatch.setenv("LEARNTOLEARN_CACHE", str(tmp_path / "cache"))
    with pytest.raises(DataError) as info:
        mnist.load_mnist(train=False, download=False)
    message = one_line(info)
    assert re.search(rf"{re.escape(str(data))}/\S+-ubyte\.gz has MD5 .* not the official", message)
    assert not (tmp_path / "cache" / "mnist" / "MNIST" / "raw").exists()  # nothing staged


# 6. a JSON file that is not UTF-8 text is named, with the caller's remedy
@pytest.mark.parametrize(
    "blob",
    [json.dumps({"name": "x"}).encode("utf-16"), b"\x80\x81\xfe binary"],
    ids=["utf-16", "binary"],
)
def test_json_that_is_not_utf8_is_named(tmp_path: Path, blob: bytes) -> None:
    path = tmp_path / "config.json"
    path.write_bytes(blob)
    with pytest.raises(ValueError) as info:
        load_json(path, "fix the file")
    message = one_line(info)
    assert f"{path} is not valid JSON (it is not UTF-8 text" in message
    assert message.endswith("; fix the file")
    with pytest.raises(ValueError, match="delete it to recompute it"):
        load_json(path)


# 7. executing a file that is not a notebook is refused before anything runs
@pytest.mark.parametrize(
    ("text", "why"),
    [("print('hi')\n", "is not valid JSON"), ('{"a": 1}', "is JSON but not a Jupyter notebook")],
    ids=["not-json", "not-a-notebook"],
)
def test_executing_a_file_that_is_not_a_notebook_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, text: str, why: str
) -> None:
    import papermill

    monkeypatch.setattr(papermill, "execute_notebook", lambda *a, **k: pytest.fail("executed"))
    path = tmp_path / "chapter.ipynb"
    path.write_text(text)
    with pytest.raises(ValueError) as info:
        notebooks.execute(path)
    message = one_line(info)
    assert f"{path} {why}" in message and "pass a Jupyter notebook (.ipynb)" in message
    assert path.read_text() == text


# 8. consecutive stream outputs of one name are merged, so re-executing is byte-stable
def test_consecutive_streams_of_one_name_are_merged() -> None:
    v4 = nbformat.v4
    nb = v4.new_notebook(
        cells=[
            v4.new_markdown_cell("text"),
            v4.new_code_cell(
                "print(...)",
                outputs=[
                    v4.new_output("stream", name="stdout", text="accuracy 0."),
                    v4.new_output("stream", name="stdout", text="93\n"),
                    v4.new_output("stream", name="stderr", text="warning\n"),
                    v4.new_output("stream", name="stdout", text="a\n"),
                    v4.new_output("stream", name="stdout", text=["b\n", "c\n"]),
                    v4.new_output("execute_result", data={"text/plain": "1"}, execution_count=1),
                    v4.new_output("stream", name="stdout", text="d\n"),
                ],
            ),
            v4.new_code_cell("x = 1"),
        ]
    )
    notebooks.merge_streams(nb)
    outputs = nb.cells[1].outputs
    assert [(o.output_type, o.get("name"), o.get("text")) for o in outputs] == [
        ("stream", "stdout", "accuracy 0.93\n"),
        ("stream", "stderr", "warning\n"),
        ("stream", "stdout", "a\nb\nc\n"),
        ("execute_result", None, None),
        ("stream", "stdout", "d\n"),
    ]
    assert nb.cells[2].outputs == [] and "outputs" not in nb.cells[0]
    nbformat.validate(nb)
    once = nbformat.writes(nb)
    assert nbformat.writes(notebooks.merge_streams(nbformat.reads(once, as_version=4))) == once


# 9. a location variable naming a file is refused where the folder is resolved
@pytest.mark.parametrize(
    ("var", "resolve"),
    [
        ("LEARNTOLEARN_SEARCH", paths.search_trials_dir),
        ("LEARNTOLEARN_RESULTS", paths.results_dir),
        ("LEARNTOLEARN_DATA", paths.data_dir),
        ("LEARNTOLEARN_CACHE", paths.cache_dir),
    ],
)
@pytest.mark.parametrize("inside", [False, True], ids=["file", "inside-a-file"])
def test_location_variable_naming_a_file_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, var: str, resolve, inside: bool
) -> None:
    afile = tmp_path / "afile"
    afile.write_text("")
    monkeypatch.setenv(var, str(afile / "sub" if inside else afile))
    with pytest.raises(NotADirectoryError) as info:
        resolve()
    message = one_line(info)
    assert f"{var}=" in message and f"{afile} is a file, not a folder" in message
    assert f"point {var} at a folder" in message
    monkeypatch.setenv(var, str(tmp_path / "new" / "folder"))  # a missing folder is fine
    assert resolve() == tmp_path / "new" / "folder"
