"""An unreachable Hugging Face hub: preflight answers at once, one line per hub id; a cached data set still loads."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time

import pytest

from helpers import run_cli


def _refused_port() -> int:
    with socket.socket() as s:  # bound, then closed: nobody listens there
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("hub", ["refuses", "hangs"])
def test_unreachable_hub_gives_one_line_per_hub_id_without_retries(hub, tmp_path, monkeypatch):
    from test_preflight import BASE, _write_workspace, ppo

    _write_workspace(tmp_path)
    text = ppo(model='"real-org/real-model"')(BASE, tmp_path)
    text = text.replace('heldout = "heldout.jsonl"', 'heldout = "hf:real-org/real-data::test"')
    text = text.replace('plugin = "ppo"\n', 'plugin = "ppo"\nsft = {dataset = "hf:real-org/dolly"}\n', 1)
    config = tmp_path / "c.toml"
    config.write_text(text)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    env = {"HF_HOME": str(tmp_path / "empty-cache"), "HF_HUB_OFFLINE": ""}
    with socket.socket() as hanging:
        if hub == "hangs":  # accepts connections (the kernel's backlog) and never answers
            hanging.bind(("127.0.0.1", 0))
            hanging.listen(16)
            env["HF_ENDPOINT"] = f"http://127.0.0.1:{hanging.getsockname()[1]}"
        else:
            env["HF_ENDPOINT"] = f"http://127.0.0.1:{_refused_port()}"
        start = time.monotonic()
        result = run_cli("validate", str(config), env=env, timeout=120)
        took = time.monotonic() - start
    assert result.returncode == 2, result.stderr
    assert "Retrying" not in result.stderr and "Traceback" not in result.stderr, result.stderr
    for hub_id, key in (
        ("real-org/real-model", "trainer.model"),
        ("real-org/real-data", "data.heldout"),
        ("real-org/dolly", "trainer.sft.dataset"),
    ):
        lines = [ln for ln in result.stderr.splitlines() if hub_id in ln]
        assert len(lines) == 1, result.stderr
        assert lines[0].startswith(f"error: {config}:") and f"{key}: " in lines[0] and "cannot be reached" in lines[0]
    # huggingface_hub alone retries each data set for 23 s (refused) or waits 10 s per try (hanging)
    assert took < 20, f"{took:.1f}s"


def test_a_cached_hub_data_set_still_loads_when_the_hub_is_unreachable(tmp_path):
    """The quick probe must not cost the cache: a data set cached earlier loads offline, without retries."""
    cache = tmp_path / "datasets"
    rows = tmp_path / "rows.jsonl"
    rows.write_text(
        "".join(json.dumps({"id": f"q{i}", "text": f"question {i}?", "category": "alpha"}) + "\n" for i in range(5))
    )
    # a hub data set's cache as `datasets` leaves it: <org>___<name>/<config>/<version>/<hash>/<name>-<split>.arrow
    subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from datasets import load_dataset; "
            "load_dataset('json', data_files={'test': sys.argv[1]}, cache_dir=sys.argv[2])",
            str(rows),
            str(cache),
        ],
        check=True,
        capture_output=True,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
        timeout=120,
    )
    [built] = [d for d in (cache / "json").glob("default-*/0.0.0/*") if d.is_dir()]
    target = cache / "real-org___real-data" / "default" / "0.0.0" / built.name
    target.parent.mkdir(parents=True)
    built.rename(target)
    (target / "json-test.arrow").rename(target / "real-data-test.arrow")
    env = {
        **os.environ,
        "HF_DATASETS_CACHE": str(cache),
        "HF_HOME": str(tmp_path / "hf"),
        "HF_HUB_OFFLINE": "",
        "HF_ENDPOINT": f"http://127.0.0.1:{_refused_port()}",
    }
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            "from pathlib import Path; from aopcore_hf.dataset_io import load_hub; "
            "print(' '.join(q.id for q in load_hub('real-org/real-data::test', Path('.'))))",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["q0", "q1", "q2", "q3", "q4"] and "Retrying" not in result.stderr, result.stderr
