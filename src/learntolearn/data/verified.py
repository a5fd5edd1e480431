"""Data files found, downloaded and verified before anything reads them, for every data set.

A data set ``name`` is looked for in ``data_dir()/name`` (read only; ``LEARNTOLEARN_DATA``),
then in ``cache_dir()/name``; a missing file is downloaded from its official source into the
cache, atomically and only if its MD5 matches. Every file is checked against its official MD5
and against ``SHA256SUMS`` beside it when that lists it (a line there replaces the official
MD5 only for archives that may be re-packed, see :func:`check_digest`). Archive members are
checked for names that would leave the archive or are links before any is read.
"""

from __future__ import annotations

import hashlib
import re
import urllib.request
import zipfile
from pathlib import Path, PurePosixPath

from tqdm import tqdm

from learntolearn.io import atomic_write
from learntolearn.paths import cache_dir, data_dir

__all__ = [
    "REMEDY",
    "DataError",
    "MissingDataError",
    "check_digest",
    "download",
    "folders",
    "is_unsafe",
    "locate",
    "open_archive",
]

REMEDY = (
    "Delete the file if it is a download in the cache folder (it is fetched again), "
    "or point LEARNTOLEARN_DATA at a folder holding a good copy."
)


class DataError(RuntimeError):
    """A data file is damaged, unsafe or does not match what was expected."""


class MissingDataError(DataError, FileNotFoundError):
    """A data file is in none of the searched folders and was not (or could not be) downloaded."""


def folders(dataset: str) -> list[Path]:
    """The folders searched for ``dataset``, in order: the read-only data folder, the cache."""
    return list(dict.fromkeys([data_dir() / dataset, cache_dir() / dataset]))


def download(url: str, dest: Path, md5: str | None) -> None:
    """Fetch ``url`` to ``dest`` atomically, checking the MD5 before the file appears."""

    def write(tmp: Path) -> None:
        digest = hashlib.md5(usedforsecurity=False)
        with urllib.request.urlopen(url, timeout=60) as resp, open(tmp, "wb") as fh:
            total = int(resp.headers.get("Content-Length") or 0) or None
            with tqdm(total=total, unit="B", unit_scale=True, desc=f"download {dest.name}") as bar:
                while chunk := resp.read(1 << 16):
                    fh.write(chunk)
                    digest.update(chunk)
                    bar.update(len(chunk))
        if md5 is not None and digest.hexdigest() != md5:
            raise DataError(
                f"downloaded {url} has MD5 {digest.hexdigest()}, expected {md5}: the download is "
                "damaged or the upstream file changed; nothing was saved"
            )

    atomic_write(dest, write)


def locate(dataset: str, relpath: str, url: str, md5: str | None, allow_download: bool) -> Path:
    """Find ``<dataset>/<relpath>`` in the data folder, then the cache, else download it."""
    searched_folders = folders(dataset)
    for folder in searched_folders:
        if (folder / relpath).is_file():
            return folder / relpath
    searched = ", ".join(str(f / relpath) for f in searched_folders)
    hint = f"Set LEARNTOLEARN_DATA to a folder holding {dataset}/{relpath}"
    if not allow_download:
        raise MissingDataError(
            f"{dataset} file {relpath} not found; searched {searched}. {hint}, or allow the "
            f"download from {url} (download=True)"
        )
    dest = searched_folders[-1] / relpath
    try:
        download(url, dest, md5)
    except OSError as err:  # offline, HTTP error, full disk
        raise MissingDataError(
            f"{dataset} file {relpath} not found (searched {searched}) and downloading {url} "
            f"failed: {err}. {hint}, or put the file at {dest}"
        ) from err
    return dest


def _digests(path: Path) -> tuple[str, str]:
    """The SHA-256 and MD5 of ``path``, read once."""
    sha, md = hashlib.sha256(), hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            sha.update(chunk)
            md.update(chunk)
    return sha.hexdigest(), md.hexdigest()


def _listed(sums: Path) -> dict[str, str]:
    """File name -> SHA-256, from the ``<digest>  <name>`` lines of ``sums`` (if it exists)."""
    if not sums.is_file():
        return {}
    try:
        text = sums.read_bytes().decode("utf-8")
    except UnicodeDecodeError as err:
        raise DataError(
            f"{sums} is not a text file of '<SHA-256>  <file name>' lines ({err}): restore it "
            "from the data set's source, or delete it to check the files against their "
            "official MD5"
        ) from err
    listed: dict[str, str] = {}
    for line in text.splitlines():
        digest, _, name = line.strip().partition(" ")
        listed[name.strip().lstrip("*")] = digest.lower()
    return listed


def check_digest(path: Path, md5: str, *, allow_repacked: bool = False) -> str:
    """Verify ``path`` against the official MD5 and against ``SHA256SUMS`` beside it, if that
    lists it.

    A ``SHA256SUMS`` line cannot stand in for the official MD5: a file changed and listed anew
    is refused. Only with ``allow_repacked`` (archives that are legitimately re-packed, such as
    the shared copy of Omniglot's zips) does a matching line replace the official MD5.
    Returns the file's SHA-256, the key under which decoded caches remember their sources.
    """
    sha, md = _digests(path)
    sums = path.parent / "SHA256SUMS"
    listed = _listed(sums).get(path.name)
    if listed is not None and sha != listed:
        raise DataError(
            f"{path} has SHA-256 {sha} but {sums} lists {listed}: "
            f"the file is damaged or was replaced. {REMEDY}"
        )
    if md == md5 or (allow_repacked and listed is not None):
        return sha
    if listed is None and allow_repacked:
        reason = "and no SHA256SUMS beside it lists the file, so it cannot be verified"
    elif listed is None:
        reason = "so it is damaged or not the official file"
    else:
        reason = (
            f"though {sums} lists its SHA-256: the file was changed and SHA256SUMS written "
            "anew, which cannot replace the official checksum"
        )
    raise DataError(f"{path} has MD5 {md}, not the official {md5}, {reason}. {REMEDY}")


def open_archive(path: Path) -> zipfile.ZipFile:
    """``zipfile.ZipFile(path)``; a truncated or damaged archive gets an error naming it."""
    try:
        return zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as err:
        message = f"cannot open {path} ({err}): it is truncated or damaged. {REMEDY}"
        raise DataError(message) from err


def is_unsafe(info: zipfile.ZipInfo) -> bool:
    """An archive member that is a link, an absolute path, or leaves the archive (``..``)."""
    name = info.filename
    is_link = (info.external_attr >> 16) & 0o170000 == 0o120000
    absolute = name.startswith("/") or re.match(r"[A-Za-z]:", name) is not None
    return is_link or absolute or "\\" in name or ".." in PurePosixPath(name).parts
