"""A newcomer's input papercuts: an unreachable hub, JSONL line numbers, --set, CLI exits, SIGTERM."""
from __future__ import annotations

import gzip
import json
import os
import signal
import socket
import subprocess
import sys
import time
import zlib
from pathlib import Path

import pytest

from aopcore.config import parse_config
from aopcore.data import jsonl_rows
from aopcore.errors import InputError
from helpers import AOPCORE, run_cli


# ---- 1: preflight answers at once when the hub cannot be reached ------------------------------------------

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
    for hub_id, key in (("real-org/real-model", "trainer.model"), ("real-org/real-data", "data.heldout"),
                        ("real-org/dolly", "trainer.sft.dataset")):
        lines = [ln for ln in result.stderr.splitlines() if hub_id in ln]
        assert len(lines) == 1, result.stderr
        assert lines[0].startswith(f"error: {config}:") and f"{key}: " in lines[0] and "cannot be reached" in lines[0]
    # huggingface_hub alone retries each data set for 23 s (refused) or waits 10 s per try (hanging)
    assert took < 20, f"{took:.1f}s"


def test_a_cached_hub_data_set_still_loads_when_the_hub_is_unreachable(tmp_path):
    """The quick probe must not cost the cache: a data set cached earlier loads offline, without retries."""
    cache = tmp_path / "datasets"
    rows = tmp_path / "rows.jsonl"
    rows.write_text("".join(json.dumps({"id": f"q{i}", "text": f"question {i}?", "category": "alpha"}) + "\n" for i in range(5)))
    # a hub data set's cache as `datasets` leaves it: <org>___<name>/<config>/<version>/<hash>/<name>-<split>.arrow
    subprocess.run([sys.executable, "-c", "import sys; from datasets import load_dataset; "
                    "load_dataset('json', data_files={'test': sys.argv[1]}, cache_dir=sys.argv[2])", str(rows), str(cache)],
                   check=True, capture_output=True, env={**os.environ, "HF_HUB_OFFLINE": "1"}, timeout=120)
    [built] = [d for d in (cache / "json").glob("default-*/0.0.0/*") if d.is_dir()]
    target = cache / "real-org___real-data" / "default" / "0.0.0" / built.name
    target.parent.mkdir(parents=True)
    built.rename(target)
    (target / "json-test.arrow").rename(target / "real-data-test.arrow")
    env = {**os.environ, "HF_DATASETS_CACHE": str(cache), "HF_HOME": str(tmp_path / "hf"), "HF_HUB_OFFLINE": "",
           "HF_ENDPOINT": f"http://127.0.0.1:{_refused_port()}"}
    result = subprocess.run([sys.executable, "-c", "from pathlib import Path; from aopcore_hf.datasets import load_hub; "
                             "print(' '.join(q.id for q in load_hub('real-org/real-data::test', Path('.'))))"],
                            capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["q0", "q1", "q2", "q3", "q4"] and "Retrying" not in result.stderr, result.stderr


# ---- 2, 12: JSONL problems name the true line, in clean words -----------------------------------------------

def _rows(path: Path) -> list[int]:
    return [lineno for lineno, _ in jsonl_rows(path)]


def test_bad_utf8_byte_is_reported_on_its_own_line(tmp_path):
    path = tmp_path / "latin5.jsonl"
    rows = [json.dumps({"text": f"row {i}"}).encode() for i in range(1, 5)] + ['{"text": "caf\xe9"}'.encode("latin-1")]
    path.write_bytes(b"\n".join(rows + [b'{"text": "after"}']) + b"\n")
    with pytest.raises(InputError, match=rf"^{path}:5: not UTF-8 text \(byte 0xe9 at column 14\)$"):
        _rows(path)


def test_truncated_gzip_names_the_line_it_cut(tmp_path):
    """A guard more than a fix: with lines now read as bytes, the cut line must still be the one after the last whole one."""
    data = b"".join(json.dumps({"text": f"row {i} " + "x" * 40}).encode() + b"\n" for i in range(4000))
    packed = gzip.compress(data)
    path = tmp_path / "cut.jsonl.gz"
    path.write_bytes(packed[: len(packed) // 2])
    whole = zlib.decompressobj(31).decompress(path.read_bytes()).count(b"\n")  # complete lines in what is left
    assert 0 < whole < 4000
    with pytest.raises(InputError, match=rf"^{path}:{whole + 1}: corrupt gzip data \(Compressed file ended"):
        _rows(path)


def test_json_error_wording_is_clean(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"text": "a"}\n\n{"text": "tab\there"}\n')
    with pytest.raises(InputError) as info:
        _rows(path)
    assert str(info.value) == f"{path}:3: not valid JSON (Invalid control character at column 14)"
    path.write_text('{"text": "a"}\n{"text": }\n')
    with pytest.raises(InputError) as info:
        _rows(path)
    assert str(info.value) == f"{path}:2: not valid JSON (Expecting value at column 10)"


# ---- 7, 8: --set replaces seed/seeds and is named in its own problems ------------------------------------------

def test_set_seeds_replaces_the_files_seed_and_back(toy_config, tmp_path):
    config = toy_config()  # seed = 7
    parsed, _, report = parse_config(config, ["experiment.seeds=[0, 1]"])
    assert not report.problems and parsed is not None
    assert parsed.experiment.seeds == [0, 1] and "seed" not in parsed.experiment.model_fields_set
    multi = tmp_path / "multi.toml"
    multi.write_text(config.read_text().replace("seed = 7", "seeds = [0, 1, 2]"))
    parsed, _, report = parse_config(multi, ["experiment.seed=3"])
    assert not report.problems and parsed is not None and parsed.experiment.seeds is None and parsed.experiment.seed == 3
    # both on the command line still clash
    parsed, _, report = parse_config(config, ["experiment.seeds=[0, 1]", "experiment.seed=3"])
    assert parsed is None and any("seed and seeds are exclusive" in p for p in report.problems)
    result = run_cli("validate", str(config), "--set", "experiment.seeds=[0,1]")
    assert result.returncode == 0 and "seeds: 0, 1" in result.stdout, result.stderr


def test_a_bad_override_is_named_not_the_file_line(toy_config):
    config = toy_config()
    _, _, report = parse_config(config, ["experiment.iterations=0", "data.nosuch=1"])
    assert "--set experiment.iterations=0: experiment.iterations: Input should be greater than or equal to 1 (got 0)" \
        in report.problems
    assert any(p.startswith("--set data.nosuch=1: data.nosuch: unknown key") for p in report.problems), report.problems
    _, _, report = parse_config(config, ["experiment.passes=2", "experiment.iterations=x"])  # a file problem stays one
    assert [p.split(": ")[0] for p in report.problems] == ["--set experiment.iterations=x"]
    result = run_cli("validate", str(config), "--set", "trainer.learning_rate=x")  # a plugin's option, checked later
    assert result.returncode == 2
    assert "error: --set trainer.learning_rate=x: trainer.learning_rate:" in result.stderr, result.stderr


# ---- 6, 11: python -m aopcore; unknown distribution and unimportable module are bad input ----------------------

def test_python_m_aopcore_and_bad_plugin_arguments_exit_2():
    env = {**os.environ}
    result = subprocess.run([sys.executable, "-m", "aopcore", "plugins", "--load", "no_such_mod"],
                            capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode == 2 and result.stdout == "", result.stderr
    assert result.stderr.strip() == ("error: --load no_such_mod: the module failed to import "
                                     "(ModuleNotFoundError: No module named 'no_such_mod')")
    result = run_cli("config-reference", "--distribution", "nosuch")
    assert result.returncode == 2 and result.stdout == ""
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("error: --distribution nosuch: no installed plugins from it (distributions: ") and "aopcore" in line


# ---- 18: SIGTERM stops like Ctrl-C: a line, exit 143, finished stages kept ---------------------------------

def test_sigterm_stops_with_a_resume_line_and_keeps_finished_work(toy_config, tmp_path):
    config = toy_config(step_delay_s="0.02")
    proc = subprocess.Popen([*AOPCORE, "run", str(config)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    run = tmp_path / "runs" / "toy"
    marker = run / "stages" / "arms__static__iter-01__prompts.json"
    deadline = time.time() + 120
    while not marker.exists():
        assert proc.poll() is None, proc.communicate()
        assert time.time() < deadline
        time.sleep(0.01)
    time.sleep(0.1)
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 143, stderr
    assert stderr.rstrip().endswith("stopped (SIGTERM); rerun the same command to resume"), stderr
    assert "Traceback" not in stderr
    assert marker.exists()
    resumed = run_cli("run", str(config))
    assert resumed.returncode == 0, resumed.stderr
    assert "skip  arms/static/iter-01/prompts" in resumed.stderr
