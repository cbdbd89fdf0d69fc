"""`aopcore` turns off huggingface_hub's telemetry (TRL's trainers request it from their constructor: a background
call to huggingface.co at every SFT stage of an offline run), unless the user chose for themselves."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

pytest.importorskip("huggingface_hub")

PROBE = """
import sys
from aopcore.cli import main
assert main(["plugins"]) == 0
from huggingface_hub import constants
print("telemetry off:", constants.HF_HUB_DISABLE_TELEMETRY)
"""


def _telemetry_off(**env: str) -> bool:
    clean = {
        k: v
        for k, v in os.environ.items()
        if k not in ("HF_HUB_DISABLE_TELEMETRY", "DISABLE_TELEMETRY", "DO_NOT_TRACK")
    }
    out = subprocess.run(
        [sys.executable, "-c", PROBE], env={**clean, **env}, capture_output=True, text=True, timeout=120, check=True
    ).stdout
    return out.strip().splitlines()[-1] == "telemetry off: True"


def test_the_cli_turns_hub_telemetry_off():
    assert _telemetry_off()


def test_a_users_own_telemetry_setting_wins():
    assert not _telemetry_off(HF_HUB_DISABLE_TELEMETRY="0")
