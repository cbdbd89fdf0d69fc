"""Kill a real `aopcore run` (SIGKILL mid-iteration, SIGTERM); rerunning resumes to identical results."""

import json
import os
import signal
import subprocess
import time
from pathlib import Path

from helpers import AOPCORE, run_cli
from helpers.runs import outputs


def test_sigkill_mid_iteration_then_resume_matches_uninterrupted_run(toy_config, tmp_path: Path):
    config = toy_config(step_delay_s="0.02")
    # uninterrupted reference run under another name
    reference = tmp_path / "reference.toml"
    reference.write_text(config.read_text().replace('name = "toy"', 'name = "reference"'))
    subprocess.run([*AOPCORE, "run", str(reference)], check=True, capture_output=True, timeout=300)

    proc = subprocess.Popen([*AOPCORE, "run", str(config)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    run = tmp_path / "runs" / "toy"
    marker = run / "stages" / "arms__static__iter-02__prompts.json"  # iteration 2 is training now
    deadline = time.time() + 120
    while not marker.exists():
        assert proc.poll() is None, proc.stdout.read()
        assert time.time() < deadline
        time.sleep(0.01)
    time.sleep(0.1)  # let the training stage start (it takes >= 0.5 s with the step delay)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    done_before = {p.name: p.stat().st_mtime_ns for p in (run / "stages").glob("*.json")}
    assert "arms__static__iter-02__train.json" not in done_before
    assert not (run / "arms" / "static" / "iter-02" / "policy").exists()  # no half-written checkpoint in place

    resumed = subprocess.run([*AOPCORE, "run", str(config)], capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    assert "skip  arms/static/iter-02/prompts" in resumed.stderr
    assert "start arms/static/iter-02/train" in resumed.stderr
    # finished stages were not recomputed
    for name, mtime in done_before.items():
        assert (run / "stages" / name).stat().st_mtime_ns == mtime
    expected = {k: v.replace("reference", "toy") for k, v in outputs(tmp_path / "runs" / "reference").items()}
    assert len(expected) > 40
    assert outputs(run) == expected
    interrupted = json.loads((run / "stages" / "arms__static__iter-02__train.json").read_text())
    assert interrupted["attempts"] == 2 and "lost_wall_s" in interrupted  # booked to the heartbeat (10 s) precision
    assert not list(run.rglob(".*.tmp"))


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
