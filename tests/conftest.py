"""Fixtures only; shared helper functions live in ``tests/helpers`` (import ``helpers``)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

_TESTS = Path(__file__).resolve().parent
for _path in (_TESTS / "toy", _TESTS):  # ends as [tests, tests/toy, ...]: helpers, then the toy plugin modules
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

from helpers import TOY  # noqa: E402


@pytest.fixture
def toy_config(tmp_path: Path):
    """Write a toy config into tmp_path; keyword overrides replace whole lines by key."""

    def make(text: str | None = None, **replace: str) -> Path:
        body = (TOY / "toy.toml").read_text() if text is None else text
        body = body.replace('plugin_paths = ["."]', f'plugin_paths = ["{TOY}"]')
        for key, value in replace.items():
            lines = body.splitlines()
            lines = [f"{key} = {value}" if ln.split("=")[0].strip() == key else ln for ln in lines]
            body = "\n".join(lines) + "\n"
        path = tmp_path / "config.toml"
        path.write_text(body)
        return path

    return make


@pytest.fixture(scope="session")
def shared_model_cache() -> Path:
    """The converted-model cache (``$AOPCORE_CACHE/models``) that all tests share: converting SmolLM2 from its
    GGUF costs about 15 s, so it happens once per machine, where a run outside the tests would keep it too."""
    root = os.environ.get("AOPCORE_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "aopcore"
    )
    models = Path(root) / "models"
    models.mkdir(parents=True, exist_ok=True)
    return models


@pytest.fixture(autouse=True)
def isolated_aopcore_cache(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    monkeypatch: pytest.MonkeyPatch,
    shared_model_cache: Path,
) -> Path | None:
    """Each test gets its own ``AOPCORE_CACHE`` (so the LLM response cache, ``llm-cache.sqlite``, starts empty and a
    test can never pass on answers another test or a developer's earlier run left behind), with ``models/`` linked to
    the shared model cache. Subprocesses inherit it through the environment. ``@pytest.mark.user_cache`` opts out."""
    if request.node.get_closest_marker("user_cache"):
        return None
    cache = tmp_path_factory.mktemp("aopcore-cache")
    (cache / "models").symlink_to(shared_model_cache, target_is_directory=True)
    monkeypatch.setenv("AOPCORE_CACHE", str(cache))
    return cache


@pytest.fixture(autouse=True)
def collectable_objects():
    """``aopcore run`` freezes what is alive before its first stage (``aopcore.memory.freeze_survivors``): right
    for its own process, but a test that calls the CLI in this one would leave every object of the tests before it
    out of the cyclic collector for good. Each test ends with them collectable again."""
    import gc

    yield
    gc.unfreeze()
