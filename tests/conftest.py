"""Fixtures shared by the test modules: the real Omniglot copy, decoded once per session."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from learntolearn.data import omniglot as om

SHARED_DATA = Path(__file__).parents[2] / "shared" / "data"


@pytest.fixture(scope="session")
def real_env_vars(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    for folder in (os.environ.get("LEARNTOLEARN_DATA", ""), str(SHARED_DATA)):
        if folder and (Path(folder) / "omniglot" / "images_background.zip").is_file():
            cache = str(tmp_path_factory.mktemp("omniglot-cache"))
            return {"LEARNTOLEARN_DATA": folder, "LEARNTOLEARN_CACHE": cache}
    pytest.skip(f"no Omniglot copy in $LEARNTOLEARN_DATA or {SHARED_DATA}")


@pytest.fixture(scope="session")
def real(real_env_vars: dict[str, str]) -> om.Omniglot:
    """The real data set, decoded once per session into a temporary cache."""
    with pytest.MonkeyPatch.context() as m:
        for key, value in real_env_vars.items():
            m.setenv(key, value)
        return om.load_omniglot(download=False)


@pytest.fixture
def real_env(real_env_vars: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in real_env_vars.items():
        monkeypatch.setenv(key, value)


@pytest.fixture
def isolated_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A fresh results store and cache for the test, training allowed, no search store: what
    a module that trains and stores runs uses for every test (``pytestmark``)."""
    monkeypatch.setenv("LEARNTOLEARN_RESULTS", str(tmp_path / "results"))
    monkeypatch.setenv("LEARNTOLEARN_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("LEARNTOLEARN_SEARCH", raising=False)
    monkeypatch.delenv("LEARNTOLEARN_NO_TRAIN", raising=False)
