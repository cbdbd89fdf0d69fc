"""Cluster-friendly run files (the umask decides who may read them) and one-call console progress for embedders."""

import io
import logging
import os
import stat
from pathlib import Path

import pytest

import aopcore
from aopcore import Budget, Experiment, Question

import toy_components as toy

HELDOUT = [Question(f"h{i}", f"held-out question {i}", c) for i, c in enumerate(["a", "b"] * 2)]


def run(tmp_path: Path, **kw):
    return Experiment(
        name="f",
        output_dir=tmp_path,
        trainer=toy.ToyTrainer(toy.ToyTrainerOptions()),
        reward=toy.LengthReward(),
        arms={"static": toy.StaticCurriculum(toy.StaticOptions())},
        heldout=HELDOUT,
        test_prompts=HELDOUT,
        judge=toy.LengthJudge(toy.MarginJudgeOptions()),
        budget=Budget(1, 4, 1),
        **kw,
    ).run()


@pytest.mark.parametrize(("umask", "file_mode", "dir_mode"), [(0o022, 0o644, 0o755), (0o007, 0o660, 0o770)])
def test_run_files_follow_the_umask(tmp_path: Path, umask: int, file_mode: int, dir_mode: int):
    old = os.umask(umask)
    try:
        root = run(tmp_path).run_dir
    finally:
        os.umask(old)
    modes = {p.relative_to(root): stat.S_IMODE(p.stat().st_mode) for p in [root, *root.rglob("*")]}
    files = {p: m for p, m in modes.items() if (root / p).is_file()}
    dirs = {p: m for p, m in modes.items() if (root / p).is_dir()}
    assert Path("stages/sft__policy.json") in files and Path("arms/static/iter-01/policy") in dirs
    assert {p: oct(m) for p, m in files.items() if m != file_mode} == {}
    assert {p: oct(m) for p, m in dirs.items() if m != dir_mode} == {}


def test_enable_console_progress_is_one_call(tmp_path: Path):
    stream = io.StringIO()
    aopcore.enable_console_progress(stream=stream)
    aopcore.enable_console_progress(stream=stream)  # again: still one handler, no doubled lines
    logger = logging.getLogger("aopcore")
    try:
        run(tmp_path)
    finally:
        logger.handlers[:] = [h for h in logger.handlers if h.get_name() != "aopcore-console"]
        logger.propagate = True
    lines = stream.getvalue().splitlines()
    assert sum("start sft/policy" in line for line in lines) == 1
    assert any("done  arms/static/iter-01/train" in line for line in lines)
