"""The fault suite: what real runs meet, one case per fault (issue 20).

Every case runs the real ``aopcore`` CLI on the toy experiment (seconds per run) and asserts the one-line
``error:`` message, the exit status, that no traceback was printed, and that the rerun after the fix
finishes with the outputs of an uninterrupted run (``test_resume.outputs``: every file, wall times aside).
Faults of components come from tests/toy/fault_components.py (``AOPCORE_FAULT``); the disk-full and read-only
cases mount a small tmpfs where this process may (root), and the disk-full case also has an injected
variant that runs everywhere.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import stat
import subprocess
import time
from pathlib import Path

import pytest

from aopcore.storage.runlock import RunDirectoryBusy, driver_lock

from helpers import AOPCORE, TOY
from helpers.runs import assert_same_outputs, outputs
from helpers.tmpfs import mounted_tmpfs

CONFIG = f"""[experiment]
name = "NAME"
output_dir = "OUTPUT"
seed = 7
iterations = 3
records_per_iteration = 12
passes = 2
plugins = ["toy_components", "fault_components"]
plugin_paths = ["{TOY}"]

[data]
heldout_per_category = 2
test_size = 10

[trainer]
plugin = "toy-faulty"
learning_rate = 0.5
step_delay_s = 0.0

[reward]
plugin = "toy-faulty"

[judge]
plugin = "toy-faulty"

[arms.static]
curriculum = "toy-static"

[arms.weakest]
curriculum = "toy-weakest"
"""


def config(folder: Path, name: str = "toy", output_dir: Path | str = "runs") -> Path:
    path = Path(folder) / f"{name}.toml"
    path.write_text(CONFIG.replace("NAME", name).replace("OUTPUT", str(output_dir)))
    return path


def env(fault: str | None = None, delay: float | None = None) -> dict[str, str]:
    out = {k: v for k, v in os.environ.items() if k not in ("AOPCORE_FAULT", "AOPCORE_FAULT_DELAY")}
    if delay:
        out["AOPCORE_FAULT_DELAY"] = str(delay)
    return {**out, "AOPCORE_FAULT": fault} if fault else out


def aopcore(*args: str, fault: str | None = None, timeout: float = 120, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*AOPCORE, *map(str, args)], capture_output=True, text=True, env=env(fault), timeout=timeout, **kw
    )


def start(cfg: Path, cwd: Path, delay: float = 0.05) -> subprocess.Popen:
    """``aopcore run CFG`` in the background, each training step slowed down by ``delay`` seconds."""
    return subprocess.Popen(
        [*AOPCORE, "run", str(cfg)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=cwd,
        env=env(delay=delay),
    )


def one_error(proc: subprocess.CompletedProcess, status: int) -> str:
    """The single ``error:`` line of a failed command (asserting its status and that no traceback was printed)."""
    both = proc.stdout + proc.stderr
    assert proc.returncode == status, both
    assert "Traceback" not in both, both
    lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("error:")]
    assert len(lines) == 1, proc.stderr
    return lines[0]


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> dict[str, str]:
    """The outputs of an uninterrupted run of the fault config (every fault case must end with these)."""
    folder = tmp_path_factory.mktemp("reference")
    done = aopcore("run", config(folder, "reference"), cwd=folder)
    assert done.returncode == 0, done.stderr
    return {k: v.replace("reference", "toy") for k, v in outputs(folder / "runs" / "reference").items()}


def assert_clean_run(run: Path, reference: dict[str, str]) -> None:
    got = outputs(run)
    assert len(got) > 40
    assert_same_outputs(got, reference)
    assert not list(run.rglob(".*.tmp"))
    assert not (run / "scratch").exists() and not (run / "attempts").exists()


def wait_for(path: Path, proc: subprocess.Popen, content: bool = False, timeout: float = 60) -> None:
    deadline = time.time() + timeout
    while not (path.exists() and (not content or path.stat().st_size)):
        assert proc.poll() is None, proc.communicate()
        assert time.time() < deadline, f"{path} never appeared"
        time.sleep(0.01)


# ---- two drivers ---------------------------------------------------------------------------------
def test_a_second_driver_refuses_in_one_line_naming_the_holder(tmp_path: Path, reference):
    cfg = config(tmp_path)
    first = start(cfg, tmp_path)
    holder = tmp_path / "runs" / ".toy.driver"
    wait_for(tmp_path / "runs" / "toy" / "stages" / "sft__policy.json", first)
    second = aopcore("run", cfg, cwd=tmp_path)
    line = one_error(second, 2)
    assert "runs/toy: another driver is running this run directory" in line
    assert f"pid {first.pid} on " in line and "started 20" in line and "--wait" in line
    out, err = first.communicate(timeout=120)
    assert first.returncode == 0, err  # the first driver was not disturbed (no swept temporaries)
    assert "FileNotFoundError" not in err
    assert holder.read_text() == ""  # released
    assert_clean_run(tmp_path / "runs" / "toy", reference)


def test_a_second_driver_with_wait_waits_for_the_first(tmp_path: Path, reference):
    cfg = config(tmp_path)
    first = start(cfg, tmp_path)
    wait_for(tmp_path / "runs" / ".toy.driver", first, content=True)
    second = aopcore("run", cfg, "--wait", cwd=tmp_path)
    assert second.returncode == 0, second.stderr
    assert f"waiting for the driver that runs {tmp_path}/runs/toy (pid {first.pid} on " in second.stderr
    assert first.wait(timeout=120) == 0
    assert "start " not in second.stderr  # everything was done by the time it could look
    assert_clean_run(tmp_path / "runs" / "toy", reference)


def test_the_lock_of_a_killed_driver_is_taken_over(tmp_path: Path, reference):
    cfg = config(tmp_path)
    first = start(cfg, tmp_path)
    wait_for(tmp_path / "runs" / "toy" / "stages" / "arms__static__iter-01__prompts.json", first)
    os.kill(first.pid, signal.SIGKILL)
    first.wait()
    assert json.loads((tmp_path / "runs" / ".toy.driver").read_text())["pid"] == first.pid  # the dead holder's note
    rerun = aopcore("run", cfg, cwd=tmp_path)
    assert rerun.returncode == 0, rerun.stderr
    assert (
        f"took over the run directory from a driver that ended without releasing it (pid {first.pid} on "
        in rerun.stderr
    )
    assert_clean_run(tmp_path / "runs" / "toy", reference)


def test_one_process_cannot_drive_a_run_directory_twice(tmp_path: Path):
    with driver_lock(tmp_path / "run"):
        with pytest.raises(RunDirectoryBusy, match=rf"pid {os.getpid()} on "):
            with driver_lock(tmp_path / "run"):
                pass
    with driver_lock(tmp_path / "run"):  # released: free again
        pass


# ---- operating-system errors -------------------------------------------------------------------
@pytest.fixture
def small_disk(tmp_path: Path):
    """A 160 KiB tmpfs (where mounting is allowed); yields (mount point, remount(options))."""
    disk = tmp_path / "disk"
    with mounted_tmpfs(
        disk, "160k", why_skip="cannot mount a tmpfs here (not root); the injected variant covers a full disk"
    ) as remount:
        yield disk, remount


def test_disk_full_on_a_small_tmpfs_then_resume_after_freeing_space(tmp_path: Path, small_disk, reference):
    disk, remount = small_disk
    cfg = config(tmp_path, output_dir=disk)
    full = aopcore("run", cfg, cwd=tmp_path)
    line = one_error(full, 1)
    assert (
        line.startswith(f"error: {disk}/toy/")
        and "no space left on the device; free space there or move output_dir" in line
    )
    assert "then rerun the same command (finished stages are kept)" in line
    finished = sorted(p.name for p in (disk / "toy" / "stages").glob("*.json"))
    assert finished and "report.json" not in finished
    remount("size=16m")  # the fix: more room
    rerun = aopcore("run", cfg, cwd=tmp_path)
    assert rerun.returncode == 0, rerun.stderr
    for name in finished:
        assert f"skip  {name[:-5].replace('__', '/')} " in rerun.stderr  # finished stages were kept
    assert_clean_run(disk / "toy", reference)


@pytest.mark.parametrize(
    "fault, what",
    [
        ("enospc", "no space left on the device; free space there or move output_dir to a larger disk"),
        ("emfile", "too many open files; raise the limit (`ulimit -n 4096`)"),
    ],
)
def test_os_errors_of_a_writer_are_one_line_and_the_run_resumes(tmp_path: Path, reference, fault, what):
    cfg = config(tmp_path)
    failed = aopcore("run", cfg, cwd=tmp_path, fault=fault)
    line = one_error(failed, 1)
    assert line.startswith(f"error: {tmp_path}/runs/toy/arms/static/") and line.endswith(
        f"/policy.json: {what}, then rerun the same command (finished stages are kept)"
    )
    assert (tmp_path / "runs" / "toy" / "stages" / "sft__evaluation.json").exists()
    rerun = aopcore("run", cfg, cwd=tmp_path)
    assert rerun.returncode == 0, rerun.stderr
    assert "skip  sft/evaluation" in rerun.stderr
    assert_clean_run(tmp_path / "runs" / "toy", reference)


def test_read_only_file_system_is_one_line_and_the_run_resumes_once_writable(tmp_path: Path, small_disk, reference):
    disk, remount = small_disk
    remount("size=16m")
    cfg = config(tmp_path, output_dir=disk)
    assert aopcore("run", cfg, cwd=tmp_path, fault="enospc").returncode == 1  # a run stopped part way
    remount("ro")
    line = one_error(aopcore("run", cfg, cwd=tmp_path), 1)
    assert (
        line.startswith(f"error: {disk}/")
        and "read-only file system; remount it read-write or choose an output_dir" in line
    )
    remount("rw")
    rerun = aopcore("run", cfg, cwd=tmp_path)
    assert rerun.returncode == 0, rerun.stderr
    assert_clean_run(disk / "toy", reference)


def test_no_permission_is_one_line_and_the_run_resumes_once_writable(tmp_path: Path, reference):
    """A folder of the run made read-only (as another user's would be). Root ignores modes, so as root the CLI
    runs without the capability that lets it (setpriv drops CAP_DAC_OVERRIDE)."""
    prefix: list[str] = []
    if os.geteuid() == 0:
        if not shutil.which("setpriv"):
            pytest.skip("root ignores file modes and setpriv is not installed to drop CAP_DAC_OVERRIDE")
        prefix = ["setpriv", "--inh-caps=-all", "--bounding-set=-dac_override,-dac_read_search", "--"]

    def run(*args: str, fault: str | None = None) -> subprocess.CompletedProcess:
        return subprocess.run(
            [*prefix, *AOPCORE, *args], capture_output=True, text=True, env=env(fault), cwd=tmp_path, timeout=120
        )

    cfg = config(tmp_path)
    assert run("run", str(cfg), fault="enospc").returncode == 1  # a run stopped part way
    arms = tmp_path / "runs" / "toy" / "arms"
    arms.chmod(0o555)
    try:
        line = one_error(run("run", str(cfg)), 1)
    finally:
        arms.chmod(0o755)  # the fix
    assert (
        line.startswith(f"error: {arms}/")
        and "permission denied; make it writable for this user or choose another output_dir" in line
    )
    rerun = run("run", str(cfg))
    assert rerun.returncode == 0, rerun.stderr
    assert_clean_run(tmp_path / "runs" / "toy", reference)


# ---- damaged files -------------------------------------------------------------------------------
@pytest.fixture
def finished(tmp_path: Path) -> tuple[Path, Path]:
    cfg = config(tmp_path)
    assert aopcore("run", cfg, cwd=tmp_path).returncode == 0
    return cfg, tmp_path / "runs" / "toy"


def test_a_truncated_output_is_reported_by_verify_and_report_and_recomputed_by_run(tmp_path: Path, finished, reference):
    cfg, run = finished
    prompts = run / "arms" / "static" / "iter-01" / "prompts.jsonl"
    size = prompts.stat().st_size
    with open(prompts, "r+b") as fh:
        fh.truncate(size // 2)
    verify = aopcore("verify", run)
    assert verify.returncode == 1 and "Traceback" not in verify.stdout + verify.stderr
    assert (
        f"{prompts}: truncated ({size // 2} of {size} bytes) (output of stage arms/static/iter-01/prompts)"
        in verify.stdout
    )
    assert prompts.stat().st_size == size // 2  # verify changes nothing
    line = one_error(aopcore("report", run), 1)
    assert line == (
        f"error: {prompts}: truncated ({size // 2} of {size} bytes), a damaged output of stage "
        f"arms/static/iter-01/prompts; rerun `aopcore run` with this run's config to recompute it "
        f"(`aopcore verify {run}` lists all damage)"
    )
    rerun = aopcore("run", cfg, cwd=tmp_path)
    assert rerun.returncode == 0, rerun.stderr
    assert (
        "recomputing arms/static/iter-01/prompts and the 16 finished stage(s) that depend on it: arms/static/iter-01/train"
        in rerun.stderr
    )
    assert "skip  arms/weakest/iter-01/prompts" in rerun.stderr  # what does not depend on it is reused
    assert_clean_run(run, reference)
    assert aopcore("verify", run).returncode == 0


def test_a_flipped_byte_is_found_and_recomputed_with_its_dependents(tmp_path: Path, finished, reference):
    cfg, run = finished
    policy = run / "arms" / "weakest" / "iter-02" / "policy" / "policy.json"
    data = bytearray(policy.read_bytes())
    data[10] ^= 0x01
    policy.write_bytes(bytes(data))
    answers = run / "arms" / "static" / "iter-02" / "test_answers.jsonl"
    data = bytearray(answers.read_bytes())
    data[-5] ^= 0x20
    answers.write_bytes(bytes(data))
    record = run / "stages" / "judge__static-vs-weakest__iter-03.json"
    record.write_text(record.read_text()[:40])  # a damaged commit record too
    verify = aopcore("verify", run)
    assert verify.returncode == 1
    assert (
        f"{policy}: changed (sha256 differs from the stage record) (output of stage arms/weakest/iter-02/train)"
        in verify.stdout
    )
    assert (
        f"{answers}: changed (sha256 differs from the stage record) (output of stage arms/static/iter-02/answers)"
        in verify.stdout
    )
    assert "stage record is not valid JSON (output of stage judge/static-vs-weakest/iter-03)" in verify.stdout
    assert (
        "3 damaged stage(s): arms/static/iter-02/answers, arms/weakest/iter-02/train, judge/static-vs-weakest/iter-03"
        in verify.stdout
    )
    line = one_error(
        aopcore("human-eval", "serve", run, "--pair", "static:weakest", "--iteration", "2", "--rater", "ann"), 1
    )
    assert line.startswith(
        f"error: {answers}: changed (sha256 differs from the stage record), a damaged output of stage"
    )
    assert not list(run.glob("human_eval*"))  # refused before it wrote anything
    rerun = aopcore("run", cfg, cwd=tmp_path)
    assert rerun.returncode == 0, rerun.stderr
    assert "start arms/weakest/iter-02/train" in rerun.stderr and "start arms/weakest/iter-03/prompts" in rerun.stderr
    assert "skip  arms/static/iter-02/train" in rerun.stderr
    assert_clean_run(run, reference)
    ok = aopcore("verify", run)
    assert ok.returncode == 0 and "OK, 31 finished stage(s)" in ok.stdout


def test_checkpoints_pruned_on_purpose_are_not_damage(tmp_path: Path):
    cfg = config(tmp_path)
    cfg.write_text(cfg.read_text().replace("seed = 7\n", 'seed = 7\nkeep_checkpoints = "last"\n'))
    assert aopcore("run", cfg, cwd=tmp_path).returncode == 0
    run = tmp_path / "runs" / "toy"
    assert not (run / "arms" / "static" / "iter-01" / "policy").exists()
    ok = aopcore("verify", run)
    assert ok.returncode == 0 and "OK, 31 finished stage(s), 43 file(s) match their records" in ok.stdout, ok.stdout
    (
        run / "arms" / "static" / "iter-03" / "policy" / "policy.json"
    ).unlink()  # the last one is kept: its loss is damage
    gone = aopcore("verify", run)
    assert (
        gone.returncode == 1
        and "iter-03/policy/policy.json: missing (output of stage arms/static/iter-03/train)" in gone.stdout
    )


# ---- bad values from components ------------------------------------------------------------------
@pytest.mark.parametrize(
    "fault, shown", [("nan-reward", "nan"), ("none-reward", "None"), ("string-reward", "a str ('0.5')")]
)
def test_bad_rewards_stop_the_run_at_the_call_naming_component_method_and_item(tmp_path: Path, reference, fault, shown):
    cfg = config(tmp_path)
    line = one_error(aopcore("run", cfg, cwd=tmp_path, fault=fault), 1)
    assert line.startswith(f"error: reward (toy-faulty): score() returned {shown} for item '")
    assert line.endswith("'; a reward must be a finite number")
    assert not (tmp_path / "runs" / "toy" / "sft" / "evaluation.jsonl").exists()  # nothing recorded from it
    assert not (tmp_path / "runs" / "toy" / "stages" / "sft__evaluation.json").exists()
    rerun = aopcore("run", cfg, cwd=tmp_path)
    assert rerun.returncode == 0, rerun.stderr
    assert_clean_run(tmp_path / "runs" / "toy", reference)


def test_a_bad_reward_in_training_leaves_no_checkpoint_to_resume_from(tmp_path: Path, reference):
    cfg = config(tmp_path)
    line = one_error(aopcore("run", cfg, cwd=tmp_path, fault="nan-train-reward"), 1)
    assert line.startswith("error: reward (toy-faulty): score() returned nan for item 0 (prompt '")
    run = tmp_path / "runs" / "toy"
    assert not (run / "scratch" / "arms__static__iter-01__train").exists()  # the poisoned checkpoint is gone
    rerun = aopcore("run", cfg, cwd=tmp_path)  # resuming from that checkpoint would train NaN logits
    assert rerun.returncode == 0, rerun.stderr
    assert_clean_run(run, reference)


@pytest.mark.parametrize("fault", ["judge-a", "judge-tie"])
def test_invalid_verdicts_name_the_judge_and_the_item_even_when_every_pair_ties(tmp_path: Path, reference, fault):
    cfg = config(tmp_path)
    line = one_error(aopcore("run", cfg, cwd=tmp_path, fault=fault), 1)
    word = "a" if fault == "judge-a" else "tie"
    assert line.startswith(f"error: judge (toy-faulty): judge() returned choice '{word}' for item '")
    assert ":check'" in line  # every answer pair of this toy run is identical: the judge was exercised anyway
    run = tmp_path / "runs" / "toy"
    assert not (run / "judge" / "static-vs-weakest" / "iter-01.jsonl").exists()
    rerun = aopcore("run", cfg, cwd=tmp_path)
    assert rerun.returncode == 0, rerun.stderr
    assert_clean_run(run, reference)
    raw = [json.loads(x) for x in (run / "judge" / "static-vs-weakest" / "raw-iter-01.jsonl").read_text().splitlines()]
    assert raw and raw[0]["contract_check"] is True and raw[0]["choice"] in ("A", "B", "C")  # kept for audit


def test_a_wrong_answer_count_names_the_trainer(tmp_path: Path, reference):
    cfg = config(tmp_path)
    line = one_error(aopcore("run", cfg, cwd=tmp_path, fault="short-generate"), 1)
    assert line == "error: trainer (toy-faulty): generate() returned 35 items for 36 inputs"
    rerun = aopcore("run", cfg, cwd=tmp_path)
    assert rerun.returncode == 0, rerun.stderr
    assert_clean_run(tmp_path / "runs" / "toy", reference)


# ---- audit and sharing ---------------------------------------------------------------------------
@pytest.mark.parametrize("umask, file_mode, dir_mode", [(0o022, 0o644, 0o755), (0o027, 0o640, 0o750)])
def test_everything_in_a_run_directory_follows_the_umask(tmp_path: Path, reference, umask, file_mode, dir_mode):
    cfg = config(tmp_path)
    done = aopcore("run", cfg, cwd=tmp_path, preexec_fn=lambda: os.umask(umask))
    assert done.returncode == 0, done.stderr
    run = tmp_path / "runs" / "toy"
    modes = {str(p.relative_to(run)): stat.S_IMODE(p.stat().st_mode) for p in [run, *run.rglob("*")]}
    assert modes["sft/policy/policy.json"] == file_mode  # the trainer wrote it 0600, as save_pretrained may
    assert {m for p, m in modes.items() if (run / p).is_file()} == {file_mode}
    assert {m for p, m in modes.items() if (run / p).is_dir()} == {dir_mode}
    assert_clean_run(run, reference)


def test_a_crash_shorter_than_the_heartbeat_books_its_lost_time(tmp_path: Path, reference):
    cfg = config(tmp_path)
    proc = start(cfg, tmp_path, delay=0.04)
    wait_for(tmp_path / "runs" / "toy" / "attempts" / "arms__static__iter-01__train.json", proc)
    time.sleep(0.2)  # training takes 1 s; the heartbeat beats every 2 s
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    rerun = aopcore("run", cfg, cwd=tmp_path)
    assert rerun.returncode == 0, rerun.stderr
    record = json.loads((tmp_path / "runs" / "toy" / "stages" / "arms__static__iter-01__train.json").read_text())
    assert record["attempts"] == 2 and 0.15 <= record["lost_wall_s"] <= 3.0
    assert_clean_run(tmp_path / "runs" / "toy", reference)


@pytest.mark.slow
def test_policy_folders_written_by_save_pretrained_follow_the_umask(tmp_path: Path):
    """The HF plugins' save (save_pretrained of weights and tokenizer) inside an atomic policy folder, umask 027."""
    pytest.importorskip("torch")
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from aopcore.storage.store import atomic_directory
    from aopcore_hf.policy_io import save_policy

    from helpers.tiny_models import save_tiny_gpt2

    source = save_tiny_gpt2(tmp_path / "gpt2")
    model, tokenizer = AutoModelForCausalLM.from_pretrained(source), AutoTokenizer.from_pretrained(source)
    old = os.umask(0o027)
    try:
        with atomic_directory(tmp_path / "run" / "policy") as tmp:
            save_policy(model, tokenizer, tmp)
            os.chmod(next(tmp.glob("*.safetensors")), 0o600)  # what save_pretrained leaves under some setups
    finally:
        os.umask(old)
    folder = tmp_path / "run" / "policy"
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in folder.iterdir()}
    assert "model.safetensors" in modes and set(modes.values()) == {0o640}
    assert stat.S_IMODE(folder.stat().st_mode) == 0o750
