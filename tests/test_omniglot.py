"""Omniglot: verification of the sources, the decoded cache, the Vinyals split and the sampler.

Real-data tests read the shared copy (``LEARNTOLEARN_DATA`` or ``../shared/data``) and build the
cache once per session in a temporary folder; the failure modes use small synthetic zips.
No test touches the network.
"""

from __future__ import annotations

import hashlib
import io
import os
import urllib.request
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from learntolearn.data import omniglot as om
from learntolearn.io import load_tensors

SHARED_DATA = Path(__file__).parents[2] / "shared" / "data"

# Synthetic Omniglot: alphabet -> characters, in the two archives; 20 drawings each.
BACKGROUND = {"Alpha": 2, "Beta": 2}
EVALUATION = {"Gamma": 2}
SPLITS = {"train": ["Alpha"], "val": ["Beta"], "test": ["Gamma"], "trainval": ["Alpha", "Beta"]}


@pytest.fixture(autouse=True)
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Only ``file://`` URLs may be opened."""
    urlopen = urllib.request.urlopen

    def local_only(url: str, *args: object, **kwargs: object) -> object:
        assert url.startswith("file:"), f"a test tried to download {url}"
        return urlopen(url, *args, **kwargs)

    monkeypatch.setattr(urllib.request, "urlopen", local_only)


# --- synthetic data ------------------------------------------------------------------------


def _png(character: int, drawing: int, size: int = 105) -> bytes:
    """A 1-bit white image with an asymmetric black bar, distinct per character and drawing."""
    pixels = np.full((size, size), 255, dtype=np.uint8)
    pixels[10 + 5 * character : 30 + 5 * character, 20 : 25 + 3 * drawing] = 0
    buf = io.BytesIO()
    Image.fromarray(pixels).convert("1").save(buf, format="PNG")
    return buf.getvalue()


def _members(root: str, alphabets: dict[str, int], offset: int = 0) -> dict[str, bytes]:
    out, c = {}, offset
    for alphabet, count in alphabets.items():
        for n in range(1, count + 1):
            for d in range(1, 21):
                out[f"{root}/{alphabet}/character{n:02d}/{c:04d}_{d:02d}.png"] = _png(c, d)
            c += 1
    return out


def _write_zip(
    path: Path, members: dict[str, bytes], extra: tuple[zipfile.ZipInfo, ...] = ()
) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
        for info in extra:
            zf.writestr(info, _png(0, 0))


def _write_sums(folder: Path) -> None:
    lines = [
        f"{hashlib.sha256(p.read_bytes()).hexdigest()}  {p.name}" for p in folder.glob("*.zip")
    ]
    (folder / "SHA256SUMS").write_text("\n".join(sorted(lines)) + "\n")


def _write_source(folder: Path, sums: bool = True) -> None:
    """Synthetic zips and split files in ``folder`` (an ``omniglot/`` folder or a 'server')."""
    _write_zip(folder / "images_background.zip", _members("images_background", BACKGROUND))
    offset = sum(BACKGROUND.values())
    evaluation = _members("images_evaluation", EVALUATION, offset)
    _write_zip(folder / "images_evaluation.zip", evaluation)
    counts = {**BACKGROUND, **EVALUATION}
    for split, alphabets in SPLITS.items():
        lines = [
            f"{a}/character{n:02d}/rot{r:03d}"
            for a in alphabets
            for n in range(1, counts[a] + 1)
            for r in (0, 90, 180, 270)
        ]
        path = folder / "splits" / "vinyals" / f"{split}.txt"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("\n".join(lines) + "\n")
    if sums:
        _write_sums(folder)


@pytest.fixture
def synthetic(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A synthetic ``LEARNTOLEARN_DATA/omniglot`` with 6 characters; returns that folder."""
    folder = tmp_path / "data" / "omniglot"
    _write_source(folder)
    counts = {"images_background": sum(BACKGROUND.values()), "images_evaluation": 2}
    monkeypatch.setattr(om, "_ARCHIVES", {k: ("0" * 32, 20 * v) for k, v in counts.items()})
    monkeypatch.setattr(om, "_SPLIT_CLASSES", {"train": 8, "val": 8, "test": 8, "trainval": 16})
    monkeypatch.setenv("LEARNTOLEARN_DATA", str(tmp_path / "data"))
    monkeypatch.setenv("LEARNTOLEARN_CACHE", str(tmp_path / "cache"))
    return folder


def test_synthetic_load_and_cache(synthetic: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = om.load_omniglot(download=False)
    assert data.images.shape == (6, 20, 28, 28) and data.images.dtype == torch.uint8
    assert data.characters == sorted(data.characters)
    assert data.characters[0] == "Alpha/character01" and data.characters[-1] == "Gamma/character02"
    assert data.images[0, 0, 0, 0] == 255  # white background kept
    cache = Path(os.environ["LEARNTOLEARN_CACHE"]) / "omniglot" / "omniglot28-v1.pt"
    assert set(load_tensors(cache)["sources"]) == {"images_background.zip", "images_evaluation.zip"}

    def no_decoding(_: bytes) -> np.ndarray:
        raise AssertionError("the cache should have been reused")

    with monkeypatch.context() as m:
        m.setattr(om, "decode_image", no_decoding)
        assert torch.equal(om.load_omniglot(download=False).images, data.images)

    cache.write_bytes(cache.read_bytes()[:1000])  # damaged: rebuilt with a warning
    with pytest.warns(UserWarning, match="rebuilding"):
        assert torch.equal(om.load_omniglot(download=False).images, data.images)

    # A changed source (listed in SHA256SUMS) invalidates the cache.
    evaluation = _members("images_evaluation", EVALUATION, offset=10)
    _write_zip(synthetic / "images_evaluation.zip", evaluation)
    _write_sums(synthetic)
    rebuilt = om.load_omniglot(download=False)
    assert torch.equal(rebuilt.images[:4], data.images[:4])
    assert not torch.equal(rebuilt.images[4:], data.images[4:])


def test_synthetic_load_at_the_drawings_own_size(synthetic: Path) -> None:
    """At 105 pixels (Koch et al.'s network) the drawings are read unresized, into a cache of
    their own beside the 28x28 one, and the 28x28 images are LANCZOS reductions of them."""
    small = om.load_omniglot(download=False)
    big = om.load_omniglot(download=False, size=105)
    assert big.images.shape == (6, 20, 105, 105) and big.characters == small.characters
    cache = Path(os.environ["LEARNTOLEARN_CACHE"]) / "omniglot"
    assert {p.name for p in cache.glob("*.pt")} == {"omniglot28-v1.pt", "omniglot105-v1.pt"}
    from PIL import Image

    reduced = Image.fromarray(big.images[0, 0].numpy()).resize((28, 28), Image.Resampling.LANCZOS)
    assert np.array_equal(np.asarray(reduced), small.images[0, 0].numpy())
    with pytest.raises(ValueError, match="28 or 105 pixels, not 64"):
        om.load_omniglot(download=False, size=64)


@pytest.mark.parametrize("damage", ["flip", "truncate"])
@pytest.mark.parametrize("sums_updated", [True, False])
def test_corrupt_zip(synthetic: Path, damage: str, sums_updated: bool) -> None:
    path = synthetic / "images_background.zip"
    raw = bytearray(path.read_bytes())
    if damage == "flip":  # one byte inside a member's data: only its CRC can tell
        with zipfile.ZipFile(path) as zf:
            info = zf.infolist()[-1]
        raw[info.header_offset + 30 + len(info.filename) + len(info.extra) + 50] ^= 0xFF
    else:
        raw = raw[: len(raw) // 2]
    path.write_bytes(raw)
    if sums_updated:  # the checksum passes, so the zip checks themselves must catch it
        _write_sums(synthetic)
    with pytest.raises(om.DataError, match=r"images_background.zip") as info:
        om.load_omniglot(download=False)
    message = str(info.value)
    assert "LEARNTOLEARN_DATA" in message and "Delete" in message
    if not sums_updated:
        assert "SHA-256" in message
    else:
        assert ("Bad CRC-32" if damage == "flip" else "truncated or damaged") in message
    assert path.read_bytes() == raw  # nothing of the user's was touched


def test_checksum_mismatch(synthetic: Path) -> None:
    sums = synthetic / "SHA256SUMS"
    sums.write_text(sums.read_text().replace(sums.read_text()[:8], "00000000", 1))
    with pytest.raises(om.DataError, match=r"SHA-256 .* but .*SHA256SUMS lists"):
        om.load_omniglot(download=False)
    sums.unlink()  # nothing lists the files: the official MD5 is required
    with pytest.raises(om.DataError, match="not the official"):
        om.load_omniglot(download=False)


def _symlink(name: str) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name)
    info.external_attr = 0o120777 << 16
    return info


@pytest.mark.parametrize(
    "member",
    [
        zipfile.ZipInfo("../evil.png"),
        zipfile.ZipInfo("images_background/../../evil.png"),
        zipfile.ZipInfo("/etc/evil.png"),
        _symlink("images_background/Alpha/character01/link.png"),
    ],
    ids=["parent", "nested-parent", "absolute", "symlink"],
)
def test_unsafe_member_refused(synthetic: Path, member: zipfile.ZipInfo) -> None:
    members = _members("images_background", BACKGROUND)
    _write_zip(synthetic / "images_background.zip", members, extra=(member,))
    _write_sums(synthetic)
    with pytest.raises(om.DataError, match=r"refusing .*images_background.zip"):
        om.load_omniglot(download=False)


def test_counts_and_split_characters_checked(
    synthetic: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(om._ARCHIVES, "images_evaluation", ("0" * 32, 60))
    with pytest.raises(om.DataError, match=r"holds 40 images .* expected 60"):
        om.load_omniglot(download=False)
    monkeypatch.setitem(om._ARCHIVES, "images_evaluation", ("0" * 32, 40))
    test_split = synthetic / "splits" / "vinyals" / "test.txt"
    test_split.write_text(test_split.read_text().replace("Gamma/character02", "Delta/character01"))
    with pytest.raises(om.DataError, match=r"missing from the archives, e.g. Delta/character01"):
        om.load_omniglot(download=False)
    test_split.write_text("Gamma/character01/rot045\n")
    with pytest.raises(om.DataError, match="line 1"):
        om.vinyals_split("test")


def test_missing_data_without_download(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    tmp_path = tmp_path.resolve()
    monkeypatch.setenv("LEARNTOLEARN_DATA", str(tmp_path / "data"))
    monkeypatch.setenv("LEARNTOLEARN_CACHE", str(tmp_path / "cache"))
    with pytest.raises(om.MissingDataError) as info:
        om.load_omniglot(download=False)
    assert isinstance(info.value, FileNotFoundError)
    message = str(info.value)
    assert "LEARNTOLEARN_DATA" in message and "brendenlake/omniglot" in message
    assert str(tmp_path / "data" / "omniglot") in message
    assert str(tmp_path / "cache" / "omniglot") in message
    with pytest.raises(om.MissingDataError, match="prototypical-networks"):
        om.vinyals_split("train", download=False)
    assert not (tmp_path / "cache").exists()
    monkeypatch.setattr(om, "_ZIP_URL", (tmp_path / "offline").as_uri() + "/{name}.zip")
    with pytest.raises(om.MissingDataError, match="LEARNTOLEARN_DATA") as info:
        om.load_omniglot()
    assert "downloading file:" in str(info.value) and str(tmp_path / "data") in str(info.value)
    assert list((tmp_path / "cache" / "omniglot").iterdir()) == []  # no partial download


def test_download_is_verified_and_atomic(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    server = tmp_path / "server"
    _write_source(server, sums=False)
    md5 = {p.stem: hashlib.md5(p.read_bytes()).hexdigest() for p in server.glob("*.zip")}
    monkeypatch.setattr(om, "_ARCHIVES", {"images_background": (md5["images_background"], 80)})
    monkeypatch.setitem(om._ARCHIVES, "images_evaluation", ("0" * 32, 40))  # wrong MD5
    monkeypatch.setattr(om, "_SPLIT_CLASSES", {"train": 8, "val": 8, "test": 8, "trainval": 16})
    monkeypatch.setattr(om, "_ZIP_URL", server.as_uri() + "/{name}.zip")
    monkeypatch.setattr(om, "_SPLIT_URL", server.as_uri() + "/splits/vinyals/{name}.txt")
    monkeypatch.setenv("LEARNTOLEARN_DATA", str(tmp_path / "data"))
    monkeypatch.setenv("LEARNTOLEARN_CACHE", str(tmp_path / "cache"))
    folder = tmp_path / "cache" / "omniglot"
    with pytest.raises(om.DataError, match=r"images_evaluation.zip has MD5"):
        om.load_omniglot()
    assert sorted(p.name for p in folder.iterdir()) == ["images_background.zip"]  # no temp files
    monkeypatch.setitem(om._ARCHIVES, "images_evaluation", (md5["images_evaluation"], 40))
    assert om.load_omniglot().images.shape == (6, 20, 28, 28)
    assert len(om.vinyals_split("trainval", download=False)) == 16


def test_vinyals_split_bad_name() -> None:
    with pytest.raises(ValueError, match="train, val, test, trainval"):
        om.vinyals_split("training")


def test_sampler_arguments(synthetic: Path) -> None:
    data = om.load_omniglot(download=False)
    tasks = om.OmniglotTasks(data, "trainval", n_way=16, k_shot=5, k_query=15)
    assert tasks.num_classes == 16 and tasks.device == torch.device("cpu")
    bad = [
        {"n_way": 17, "k_shot": 1, "k_query": 1},
        {"n_way": 5, "k_shot": 10, "k_query": 11},
        {"n_way": 0, "k_shot": 1, "k_query": 1},
        {"n_way": 5, "k_shot": 1, "k_query": 0},
        {"n_way": 5, "k_shot": -1, "k_query": 1},
    ]
    for kwargs in bad:
        with pytest.raises(ValueError, match=r"n_way|k_shot|k_query"):
            om.OmniglotTasks(data, "trainval", **kwargs)
    with pytest.raises(ValueError, match="num_tasks"):
        tasks.sample(0, torch.Generator())


# --- real data -----------------------------------------------------------------------------


def test_real_data(real: om.Omniglot) -> None:
    assert real.images.shape == (1623, 20, 28, 28) and real.images.dtype == torch.uint8
    assert len(set(real.characters)) == 1623 and real.characters == sorted(real.characters)
    assert len({c.split("/")[0] for c in real.characters}) == 50
    assert real.images.float().mean() > 200  # white background
    assert len(real.images[:20].unique()) > 2  # anti-aliased by LANCZOS


@pytest.mark.usefixtures("real_env")
def test_real_vinyals_split(real: om.Omniglot) -> None:
    splits = {name: om.vinyals_split(name, download=False) for name in om._SPLIT_CLASSES}
    sizes = {name: len(classes) for name, classes in splits.items()}
    assert sizes == {"train": 4112, "val": 688, "test": 1692, "trainval": 4800}
    chars = {name: {c for c, _ in classes} for name, classes in splits.items()}
    assert [len(chars[s]) for s in ("train", "val", "test")] == [1028, 172, 423]
    assert chars["trainval"] == chars["train"] | chars["val"]
    assert not chars["trainval"] & chars["test"]
    assert chars["trainval"] | chars["test"] == set(real.characters)
    assert {t for _, t in splits["train"]} == {0, 1, 2, 3}


@pytest.mark.usefixtures("real_env")
def test_real_rotations(real: om.Omniglot) -> None:
    tasks = om.OmniglotTasks(real, "val", n_way=5, k_shot=1, k_query=1)
    assert tasks.images.shape == (688, 20, 28, 28) and tasks.images.dtype == torch.uint8
    index = {c: i for i, c in enumerate(real.characters)}
    for j, (character, turns) in enumerate(tasks.classes[:8]):
        base = real.images[index[character]]
        assert torch.equal(tasks.images[j], torch.rot90(base, turns, dims=(-2, -1)))
    # rot090 in the split files means PIL's rotate(90), as in Prototypical Networks.
    image = real.images[index[tasks.classes[1][0]], 0]
    pil = np.asarray(Image.fromarray(image.numpy()).rotate(90))
    assert tasks.classes[1][1] == 1 and np.array_equal(tasks.images[1, 0].numpy(), pil)


@pytest.mark.usefixtures("real_env")
@pytest.mark.parametrize(("n", "k", "q"), [(20, 1, 15), (5, 5, 15)])
def test_real_sampler(real: om.Omniglot, n: int, k: int, q: int) -> None:
    tasks = om.OmniglotTasks(real, "train", n_way=n, k_shot=k, k_query=q)
    b = 16
    batch = tasks.sample(b, torch.Generator().manual_seed(0))
    assert batch.x_support.shape == (b, n * k, 1, 28, 28)
    assert batch.x_query.shape == (b, n * q, 1, 28, 28)
    assert batch.x_support.dtype == torch.float32
    assert batch.x_query.min() >= 0 and batch.x_query.max() <= 1
    assert torch.equal(
        batch.y_support, torch.arange(n * k).div(k, rounding_mode="floor").repeat(b, 1)
    )
    assert torch.equal(
        batch.y_query, torch.arange(n * q).div(q, rounding_mode="floor").repeat(b, 1)
    )
    assert batch.y_support.dtype == torch.long
    classes = batch.info["classes"]
    assert classes.shape == (b, n) and classes.dtype == torch.long
    assert all(len(set(row.tolist())) == n for row in classes)  # distinct classes per task

    # Every image is a drawing of its labelled class; drawings in a task's class are distinct.
    x = torch.cat([batch.x_support.view(b, n, k, 28, 28), batch.x_query.view(b, n, q, 28, 28)], 2)
    x = x.mul(255).round().to(torch.uint8)
    candidates = tasks.images[classes]  # [B, N, 20, 28, 28]
    match = (x[:, :, :, None] == candidates[:, :, None]).all(-1).all(-1)  # [B, N, K+Q, 20]
    assert match.any(-1).all()
    assert (match.float().argmax(-1).sort(-1).values.diff(dim=-1) > 0).all()

    same = tasks.sample(b, torch.Generator().manual_seed(0))
    other = tasks.sample(b, torch.Generator().manual_seed(1))
    assert torch.equal(same.x_support, batch.x_support) and torch.equal(same.x_query, batch.x_query)
    assert torch.equal(same.info["classes"], classes)
    assert not torch.equal(other.info["classes"], classes)


@pytest.mark.usefixtures("real_env")
def test_trainval_family_trains_on_the_1200_characters(real: om.Omniglot) -> None:
    """``omniglot-trainval`` (Snell et al.'s training pool) samples training tasks from the
    4,800 train + validation classes, keeps the test tasks of ``omniglot`` and has no
    validation tasks (its validation characters are training characters)."""
    from learntolearn.catalogue import experiment
    from learntolearn.fewshot.runs import build
    from learntolearn.fewshot.task_families import FAMILIES

    config = experiment("omniglot/protonet-5w1s-trainval", "smoke")
    base = experiment("omniglot/protonet-5w1s", "smoke")
    assert config.tasks == "omniglot-trainval" and config.with_(tasks="omniglot") == base.with_(
        name=config.name
    )
    tasks = build(config, torch.device("cpu")).tasks
    assert len(tasks.classes) == 4800 and set(tasks.classes) == set(om.vinyals_split("trainval"))
    assert FAMILIES["omniglot-trainval"].validation_sets is None
    assert FAMILIES["omniglot-trainval"].test_sets is FAMILIES["omniglot"].test_sets
