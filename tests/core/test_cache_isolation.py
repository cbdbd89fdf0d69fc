"""The test suite's own isolation (tests/conftest.py): each test has a fresh AOPCORE_CACHE, models stay shared."""

import os
from pathlib import Path

import pytest

from aopcore.storage.llmcache import ResponseCache, default_cache_path


def _user_cache() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache"))) / "aopcore"


@pytest.mark.parametrize("round_", [1, 2])
def test_each_test_starts_with_an_empty_response_cache_of_its_own(round_: int, isolated_aopcore_cache: Path):
    """Run twice: the second round would find the first round's file if the cache were shared."""
    assert Path(os.environ["AOPCORE_CACHE"]) == isolated_aopcore_cache != _user_cache()
    assert default_cache_path().parent == isolated_aopcore_cache and not default_cache_path().exists()
    ResponseCache()  # opens (creates) the default file, as a provider without cache_path does
    assert default_cache_path().exists()


def test_converted_models_stay_shared(isolated_aopcore_cache: Path, shared_model_cache: Path):
    assert (isolated_aopcore_cache / "models").resolve() == shared_model_cache.resolve()


@pytest.mark.user_cache
def test_a_test_can_opt_out(isolated_aopcore_cache):
    assert isolated_aopcore_cache is None
