"""Omniglot: 1623 handwritten characters from 50 alphabets, 20 drawings each (Lake et al., 2015).

Lake, Salakhutdinov and Tenenbaum, "Human-level concept learning through probabilistic program
induction", Science 350 (2015). Few-shot classification uses the class split of Vinyals et al.,
"Matching Networks for One Shot Learning", NeurIPS 2016: 1028 / 172 / 423 characters for
train / val / test, each character turned into four classes by rotating it by 0, 90, 180 and
270 degrees, as published with Prototypical Networks (Snell et al., 2017). MAML (Finn et al.,
2017, Sec. 5.2) uses the rotations but not this split: it meta-trains on 1200 characters drawn
at random from all 1623 and tests on the rest, so its test characters are not these.

Data flow: the two official zips are verified (checksum, CRC of every member, safe member names,
image counts, every split character present), decoded straight from the archive members (nothing
is extracted to disk) to 28x28 grayscale, and cached as one uint8 tensor in
``cache_dir()/omniglot/omniglot28-v1.pt``. :class:`OmniglotTasks` keeps the rotated classes of one
split on the training device and samples whole meta-batches with a few tensor operations.

Polarity: images keep the official polarity, white background (255, or 1.0 after scaling) and
black ink. (MAML's data generator inverts them; a network with normalisation layers does not care.)
Resizing: each 1-bit PNG is converted to 8-bit grayscale *before* the LANCZOS resize to 28x28, so
the strokes are anti-aliased; MAML's script resized the 1-bit images, which Pillow silently does
with nearest neighbour.
"""

from __future__ import annotations

import contextlib
import io
import re
import warnings
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import Tensor
from tqdm import tqdm

from learntolearn.data.episodes import ClassImageTasks
from learntolearn.data.verified import (
    REMEDY,
    DataError,
    MissingDataError,
    check_digest,
    is_unsafe,
    locate,
    open_archive,
)
from learntolearn.io import load_tensors, save_tensors
from learntolearn.paths import cache_dir
from learntolearn.tasks import TaskBatch

__all__ = [
    "SIZES",
    "DataError",
    "MissingDataError",
    "Omniglot",
    "OmniglotTasks",
    "background_split",
    "decode_image",
    "fixed_tasks",
    "load_omniglot",
    "split_classes",
    "vinyals_split",
]

# Official archive name -> (MD5 of the official download, as in torchvision; number of images).
# Re-packed copies (the shared one is: stored, sorted) are verified by a SHA256SUMS beside them
# instead, and by the member checks of ``_index`` and the decoding of every image.
_ARCHIVES: dict[str, tuple[str, int]] = {
    "images_background": ("68d2efa1b9178cc56df9314c21c6e718", 19280),
    "images_evaluation": ("6b91aef0f799c5bb55b94e3f2daec811", 13180),
}
# Split name -> number of (character, rotation) classes.
_SPLIT_CLASSES: dict[str, int] = {"train": 4112, "val": 688, "test": 1692, "trainval": 4800}
_ZIP_URL = "https://github.com/brendenlake/omniglot/raw/master/python/{name}.zip"
_SPLIT_URL = (
    "https://raw.githubusercontent.com/jakesnell/prototypical-networks/master/"
    "data/omniglot/splits/vinyals/{name}.txt"
)
DRAWINGS = 20  # drawings per character
_SOURCE_SIZE = (105, 105)
_SIZE = 28
SIZES = (28, 105)  # the book's (Vinyals et al.'s) size, and the drawings' own (Koch et al.)
_MAX_MEMBER_BYTES = 1 << 20  # an Omniglot PNG is about 300 bytes; refuse anything huge
_CACHE_FORMAT = "omniglot28-v1"
_SPLIT_LINE = re.compile(r"([^/\s]+/character\d+)/rot(000|090|180|270)")
# What decoding one member can raise: a bad CRC or stream, or a broken or unexpected PNG.
_DECODE_ERRORS = (zipfile.BadZipFile, zlib.error, EOFError, OSError, SyntaxError, ValueError)


@dataclass(frozen=True, eq=False)
class Omniglot:
    """All of Omniglot (Lake et al., 2015) at 28x28 (or 105x105, see :func:`load_omniglot`).

    ``images`` is uint8 ``[1623, 20, 28, 28]`` (white background); ``images[i]`` holds the 20
    drawings of ``characters[i]``, named ``"Alphabet/characterNN"`` and sorted.
    """

    images: Tensor
    characters: list[str]


def _index(zf: zipfile.ZipFile, path: Path, root: str, count: int) -> dict[str, list[str]]:
    """Character -> its 20 member names, after checking every member name and the counts."""
    pattern = re.compile(rf"{re.escape(root)}/([^/]+/character\d+)/\d+_\d+\.png")
    members: dict[str, list[str]] = {}
    for info in zf.infolist():
        if is_unsafe(info):
            raise DataError(
                f"refusing {path}: member {info.filename!r} is an absolute path, leaves the "
                f"archive (..) or is a symbolic link. {REMEDY}"
            )
        if info.file_size > _MAX_MEMBER_BYTES:
            raise DataError(f"refusing {path}: member {info.filename!r} is {info.file_size} bytes")
        match = pattern.fullmatch(info.filename)
        if match is not None:
            members.setdefault(match[1], []).append(info.filename)
    found = sum(len(v) for v in members.values())
    if found != count:
        raise DataError(f"{path} holds {found} images under {root}/, expected {count}. {REMEDY}")
    for character, names in members.items():
        if len(names) != DRAWINGS:
            raise DataError(f"{path}: {character} has {len(names)} drawings, expected {DRAWINGS}")
    return members


def decode_image(data: bytes, size: int = _SIZE) -> np.ndarray:
    """One PNG -> uint8 [size, size]: 8-bit grayscale first, then LANCZOS (anti-aliased);
    at 105 the drawing as it is (Koch et al. 2015 read it unresized)."""
    with Image.open(io.BytesIO(data)) as im:
        if im.size != _SOURCE_SIZE:
            raise ValueError(f"image is {im.size}, expected {_SOURCE_SIZE}")
        gray = im.convert("L")
        if (size, size) == _SOURCE_SIZE:
            return np.asarray(gray)
        return np.asarray(gray.resize((size, size), Image.Resampling.LANCZOS))


def _build(archives: dict[str, Path], download: bool, size: int = _SIZE) -> Omniglot:
    """Verify both archives in full and decode every image, without extracting anything."""
    with contextlib.ExitStack() as stack:
        where: dict[str, tuple[zipfile.ZipFile, Path, list[str]]] = {}
        for root, path in archives.items():
            zf = stack.enter_context(open_archive(path))
            for character, names in _index(zf, path, root, _ARCHIVES[root][1]).items():
                if character in where:
                    raise DataError(f"{character} is in both {where[character][1]} and {path}")
                where[character] = (zf, path, sorted(names))
        for split in _SPLIT_CLASSES:
            missing = {c for c, _ in vinyals_split(split, download=download)} - where.keys()
            if missing:
                raise DataError(
                    f"the Vinyals {split} split names {len(missing)} characters missing from the "
                    f"archives, e.g. {sorted(missing)[0]}. {REMEDY}"
                )
        characters = sorted(where)
        images = np.empty((len(characters), DRAWINGS, size, size), dtype=np.uint8)
        bar = tqdm(total=images.shape[0] * DRAWINGS, desc="omniglot: decoding", unit="img")
        with bar:
            for i, character in enumerate(characters):
                zf, path, names = where[character]
                for j, name in enumerate(names):
                    try:
                        images[i, j] = decode_image(zf.read(name), size)  # read checks the CRC
                    except (*_DECODE_ERRORS, Image.DecompressionBombError) as err:
                        raise DataError(
                            f"{path}: member {name} is damaged ({type(err).__name__}: {err}). "
                            f"{REMEDY}"
                        ) from err
                bar.update(DRAWINGS)
    return Omniglot(torch.from_numpy(images), characters)


def _load_cache(path: Path, sources: dict[str, str], size: int = _SIZE) -> Omniglot | None:
    """The cached tensor if it is intact and was built from exactly these sources."""
    if not path.is_file():
        return None
    try:
        obj = load_tensors(path)
    except ValueError as err:
        warnings.warn(f"{err}; rebuilding it", stacklevel=3)
        return None
    if not (
        isinstance(obj, dict)
        and obj.get("format") == _cache_format(size)
        and obj.get("sources") == sources
        and isinstance(obj.get("images"), Tensor)
        and isinstance(obj.get("characters"), list)
    ):
        return None
    images, characters = obj["images"], obj["characters"]
    if images.dtype != torch.uint8 or images.shape != (len(characters), DRAWINGS, size, size):
        return None
    return Omniglot(images, characters)


def _cache_format(size: int) -> str:
    return _CACHE_FORMAT if size == _SIZE else f"omniglot{size}-v1"


def load_omniglot(*, download: bool = True, size: int = _SIZE) -> Omniglot:
    """Load all of Omniglot (Lake et al., 2015) as uint8 ``[1623, 20, 28, 28]`` (``size`` 105:
    the drawings unresized, ``[1623, 20, 105, 105]``, cached separately).

    The zips and the Vinyals et al. (2016) split files are searched in
    ``data_dir()/omniglot`` (``LEARNTOLEARN_DATA``), then ``cache_dir()/omniglot``; with
    ``download`` the missing ones are fetched into the latter. Every load checks the zips'
    checksums; the decoded cache is rebuilt (atomically) whenever they differ from the ones it
    was built from, or when it is damaged. The source files are never modified.

    Raises :class:`MissingDataError` when a file is absent and not downloaded, and
    :class:`DataError` when a file fails verification.
    """
    if size not in SIZES:
        raise ValueError(
            f"Omniglot is decoded at {' or '.join(map(str, SIZES))} pixels, not {size}"
        )
    archives: dict[str, Path] = {}
    sources: dict[str, str] = {}
    for root, (md5, _) in _ARCHIVES.items():
        path = locate("omniglot", f"{root}.zip", _ZIP_URL.format(name=root), md5, download)
        archives[root] = path
        sources[path.name] = check_digest(path, md5, allow_repacked=True)
    cache = cache_dir() / "omniglot" / f"{_cache_format(size)}.pt"
    data = _load_cache(cache, sources, size)
    if data is None:
        data = _build(archives, download, size)
        payload = {"format": _cache_format(size), "sources": sources}
        save_tensors(cache, {**payload, "images": data.images, "characters": data.characters})
    return data


def background_split(*, download: bool = True) -> list[tuple[str, int]]:
    """The 964 characters of Lake et al.'s background set (``images_background.zip``, 30
    alphabets), unrotated: the training set of Koch et al. (2015) for Lake's one-shot runs,
    which are drawn from the evaluation set (the Vinyals training split holds some of its
    alphabets, so it cannot be used there)."""
    root = "images_background"
    md5 = _ARCHIVES[root][0]
    path = locate("omniglot", f"{root}.zip", _ZIP_URL.format(name=root), md5, download)
    check_digest(path, md5, allow_repacked=True)
    with open_archive(path) as zf:
        characters = _index(zf, path, root, _ARCHIVES[root][1])
    return [(c, 0) for c in sorted(characters)]


def split_classes(name: str, *, download: bool = True) -> list[tuple[str, int]]:
    """A Vinyals split (:func:`vinyals_split`) or ``"background"`` (:func:`background_split`)."""
    return (
        background_split(download=download)
        if name == "background"
        else vinyals_split(name, download=download)
    )


def vinyals_split(name: str, *, download: bool = True) -> list[tuple[str, int]]:
    """The classes of a split of Vinyals et al. (2016), in file order.

    ``name`` is ``"train"``, ``"val"``, ``"test"`` or ``"trainval"``. Each class is
    ``(character, quarter_turns)``: ``("Angelic/character01", 1)`` is that character rotated by
    90 degrees counter-clockwise (``rot090``; PIL's ``rotate(90)`` = ``torch.rot90(x, 1)``).
    """
    if name not in _SPLIT_CLASSES:
        raise ValueError(f"unknown Vinyals split {name!r}; valid: {', '.join(_SPLIT_CLASSES)}")
    url = _SPLIT_URL.format(name=name)
    path = locate("omniglot", f"splits/vinyals/{name}.txt", url, None, download)
    classes: list[tuple[str, int]] = []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        match = _SPLIT_LINE.fullmatch(line.strip())
        if match is None:
            raise DataError(f"{path}, line {number}: {line!r} is not Alphabet/characterNN/rotDDD")
        classes.append((match[1], int(match[2]) // 90))
    if len(classes) != _SPLIT_CLASSES[name] or len(set(classes)) != len(classes):
        raise DataError(
            f"{path} lists {len(classes)} classes ({len(set(classes))} distinct), expected "
            f"{_SPLIT_CLASSES[name]}: it is truncated or damaged. {REMEDY}"
        )
    return classes


class OmniglotTasks(ClassImageTasks):
    """N-way K-shot Omniglot tasks (Vinyals et al., 2016; MAML, Finn et al., 2017).

    A :class:`~learntolearn.tasks.TaskDistribution`. The classes of ``split`` (a Vinyals
    split, or ``"background"``; character x rotation) live in :attr:`images`, uint8
    ``[num_classes, 20, 28, 28]`` on ``device``. A task draws ``n_way`` distinct classes and,
    per class, ``k_shot + k_query`` distinct drawings; labels are ``0..n_way-1`` in class-major
    order (support position ``i`` has label ``i // k_shot``). Inputs are float32 in ``[0, 1]``,
    white background.
    """

    def __init__(
        self,
        data: Omniglot,
        split: str,
        *,
        n_way: int,
        k_shot: int,
        k_query: int,
        device: torch.device | str = "cpu",
    ) -> None:
        self.classes = split_classes(split)
        self.check_sizes(
            n_way, k_shot, k_query, len(self.classes), data.images.shape[1], f"split {split!r}"
        )
        index = {c: i for i, c in enumerate(data.characters)}
        missing = sorted({c for c, _ in self.classes} - index.keys())
        if missing:
            raise DataError(
                f"{len(missing)} characters of split {split!r} absent, e.g. {missing[0]}"
            )
        base = data.images[[index[c] for c, _ in self.classes]].to(device)
        turns = torch.tensor([t for _, t in self.classes], device=base.device)
        self.images = torch.empty_like(base)
        for k in range(4):
            sel = (turns == k).nonzero().squeeze(1)
            self.images[sel] = torch.rot90(base[sel], k, dims=(-2, -1))


def fixed_tasks(
    data: Omniglot,
    *,
    n_way: int,
    k_shot: int,
    k_query: int,
    num_tasks: int = 600,
    seed: int = 2017,
    split: str = "test",
    chunk: int = 100,
) -> Iterator[TaskBatch]:
    """The seeded meta-test tasks every method is scored on, in chunks of ``chunk`` tasks.

    They are drawn on the CPU from a generator seeded with ``seed``, so every method, device
    and rerun sees exactly the same 600 tasks per setting (MAML, Sec. 5.2: 600 test tasks).
    """
    tasks = OmniglotTasks(data, split, n_way=n_way, k_shot=k_shot, k_query=k_query)
    g = torch.Generator().manual_seed(seed)
    for start in range(0, num_tasks, chunk):
        yield tasks.sample(min(chunk, num_tasks - start), g)
