"""A run directory written before the round-4 redesign resumes unchanged after it.

``tests/fixtures/run-dir-round3.tgz`` is the toy experiment (``toy.toml`` inside, 2 iterations, 2 arms) run by
aopcore at commit 7958a11, the last commit before the run layout, the thin experiment and the core's new
layout. The current code must read it as finished: every stage skipped as done, not one file rewritten. A
changed setting is refused in one line that names the way out, and the run directory is left as it was.
"""

from __future__ import annotations

import tarfile
from pathlib import Path

from helpers import TOY, run_cli
from helpers.runs import outputs

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "run-dir-round3.tgz"


def _unpack(tmp_path: Path) -> Path:
    with tarfile.open(FIXTURE) as archive:
        archive.extractall(tmp_path, filter="data")
    config = tmp_path / "toy.toml"
    config.write_text(
        config.read_text()
        .replace('output_dir = "runs"', f'output_dir = "{tmp_path}"')
        .replace('plugin_paths = ["."]', f'plugin_paths = ["{TOY}"]')
    )
    return config


def test_a_round3_run_directory_resumes_with_every_stage_done(tmp_path: Path):
    config = _unpack(tmp_path)
    run = tmp_path / "toy"
    before = outputs(run)
    stamps = {p: p.stat().st_mtime_ns for p in run.rglob("*") if p.is_file()}
    assert len(stamps) > 40 and any("iter-02" in str(p) for p in stamps)  # the fixture is a whole run

    result = run_cli("run", str(config), cwd=tmp_path)

    assert result.returncode == 0, result.stderr
    log = result.stdout + result.stderr
    started = [line for line in log.splitlines() if " start " in line]
    assert not started, f"stages recomputed on a finished round-3 run: {started}"
    assert log.count("(done)") >= 20  # every stage was read back as done
    assert outputs(run) == before
    assert {p: p.stat().st_mtime_ns for p in run.rglob("*") if p.is_file()} == stamps  # nothing rewritten


def test_a_changed_setting_on_a_round3_run_directory_is_refused_in_one_line(tmp_path: Path):
    config = _unpack(tmp_path)
    run = tmp_path / "toy"
    before = outputs(run)

    result = run_cli("run", str(config), "--set", "trainer.learning_rate=0.9", cwd=tmp_path)

    assert result.returncode == 2
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "learning_rate" in lines[0] and "--allow-changed-config" in lines[0], lines
    assert outputs(run) == before
