"""A policy saved to a full disk: safetensors' own error becomes the OSError naming the folder (the CLI's one line)."""

from __future__ import annotations

import errno
from pathlib import Path

import pytest

pytest.importorskip("torch")
from helpers.tiny_models import save_tiny_gpt2  # noqa: E402
from helpers.tmpfs import mounted_tmpfs  # noqa: E402


@pytest.fixture
def tiny_disk(tmp_path: Path):
    disk = tmp_path / "disk"
    with mounted_tmpfs(disk, "64k", why_skip="cannot mount a tmpfs here (not root)"):
        yield disk


def test_saving_a_policy_to_a_full_disk_raises_the_os_error_naming_the_folder(tmp_path: Path, tiny_disk: Path):
    from aopcore_hf.models import choose_device, load_causal_lm
    from aopcore_hf.policy_io import save_policy

    model, tokenizer = load_causal_lm(str(save_tiny_gpt2(tmp_path / "gpt2")), choose_device("cpu"))
    out = tiny_disk / "policy"
    with pytest.raises(OSError) as raised:
        save_policy(model, tokenizer, out)
    assert raised.value.errno == errno.ENOSPC
    assert raised.value.filename == str(out)
