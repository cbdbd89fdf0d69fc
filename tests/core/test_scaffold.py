"""`aopcore new-plugin`: the generated package installs, registers, documents itself and passes its own tests."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from aopcore.devtools.scaffold import KINDS, render

from helpers import run_cli

PYTEST = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"]


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    return {**env, **extra}


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_generated_package_passes_its_own_tests(kind: str, tmp_path: Path):
    result = run_cli("new-plugin", kind, f"my-{kind}", "--dir", str(tmp_path / "pkg"))
    assert result.returncode == 0, result.stderr
    assert f"wrote {tmp_path / 'pkg'}/" in result.stdout
    files = {str(p.relative_to(tmp_path / "pkg")) for p in (tmp_path / "pkg").rglob("*") if p.is_file()}
    module = f"aopcore_my_{kind}"
    assert {
        "pyproject.toml",
        "README.md",
        f"{module}/plugin.py",
        f"{module}/options.py",
        f"tests/test_{KINDS[kind][1]}.py",
    } <= files
    tests = subprocess.run(
        [*PYTEST, str(tmp_path / "pkg")],
        cwd=tmp_path / "pkg",
        env=_env(PYTHONPATH=str(tmp_path / "pkg")),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert tests.returncode == 0, tests.stdout + tests.stderr
    assert " passed" in tests.stdout and "failed" not in tests.stdout


def test_generated_tests_catch_a_broken_implementation(tmp_path: Path):
    """The generated tests are real: break the stub (one prompt short of the budget) and they fail."""
    assert run_cli("new-plugin", "curriculum", "fragile", "--dir", str(tmp_path / "pkg")).returncode == 0
    impl = tmp_path / "pkg" / "aopcore_fragile" / "curriculum.py"
    impl.write_text(impl.read_text().replace("for n in range(ctx.budget):", "for n in range(ctx.budget - 1):"))
    tests = subprocess.run(
        [*PYTEST, str(tmp_path / "pkg")],
        cwd=tmp_path / "pkg",
        env=_env(PYTHONPATH=str(tmp_path / "pkg")),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert tests.returncode == 1
    assert "FragileCurriculum: iteration 1: returned 5 prompts, the budget is exactly 6" in tests.stdout


def _venv_with_aopcore(root: Path) -> Path:
    """A fresh virtual environment that sees this checkout's environment (aopcore and its dependencies) through a .pth."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(root)], check=True, timeout=120)
    python = root / "bin" / "python"
    site = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    ours = sysconfig.get_paths()["purelib"]
    Path(site, "aopcore-dev.pth").write_text(f"import site; site.addsitedir({ours!r})\n")
    return python


@pytest.mark.slow
def test_scaffolded_plugin_installs_into_a_fresh_environment(tmp_path: Path, toy_config):
    assert run_cli("new-plugin", "curriculum", "focus", "--dir", str(tmp_path / "aopcore-focus")).returncode == 0
    python = _venv_with_aopcore(tmp_path / "venv")
    install = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "--python",
            str(python),
            "install",
            "-q",
            "--no-deps",
            "--no-build-isolation",
            str(tmp_path / "aopcore-focus"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env=_env(),
    )
    assert install.returncode == 0, install.stderr

    def cli(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [str(python), "-m", "aopcore.cli", *args], capture_output=True, text=True, timeout=120, env=_env()
        )

    listed = cli("plugins")
    assert listed.returncode == 0, listed.stderr
    line = next(line for line in listed.stdout.splitlines() if line.strip().startswith("focus "))
    assert "aopcore-focus 0.1.0" in line
    # not visible outside the environment it was installed into
    assert "aopcore-focus" not in run_cli("plugins").stdout

    details = cli("plugins", "--details", "focus")
    assert details.returncode == 0, details.stderr
    for expected in ("aopcore-focus 0.1.0", "max_share", "temperature", "pool", "At most this share"):
        assert expected in details.stdout, details.stdout
    reference = cli("config-reference")
    assert reference.returncode == 0
    assert "aopcore-focus 0.1.0" in reference.stdout and "| `max_share` | float | `0.5` |" in reference.stdout

    # the generated tests pass against the installed package (run from outside its folder: no source on the path)
    tests = subprocess.run(
        [str(python), "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tmp_path / "aopcore-focus" / "tests")],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        env=_env(),
    )
    assert tests.returncode == 0, tests.stdout + tests.stderr

    # its preflight runs in `aopcore validate`, before anything loads, naming the key
    config = toy_config()
    text = config.read_text().replace(
        "heldout_per_category = 2", 'heldout_per_category = 2\ncategories = ["askbaking", "askdocs", "askvet"]'
    )
    config.write_text(text + '\n[arms.mine]\ncurriculum = "focus"\nmax_share = 0.05\n')  # 3 categories x 1 < 12 a round
    bad = cli("validate", str(config))
    assert bad.returncode == 2, bad.stdout + bad.stderr
    assert "arms.mine.max_share: 0.05 allows" in bad.stderr and "Traceback" not in bad.stderr
    config.write_text(config.read_text().replace("max_share = 0.05", "max_share = 0.5"))
    good = cli("validate", str(config))
    assert good.returncode == 0, good.stderr

    # and the stub works inside a real (toy) experiment, its per-prompt data kept in the run directory
    run = cli("run", str(config))
    assert run.returncode == 0, run.stderr
    rows = [
        json.loads(line)
        for line in (tmp_path / "runs" / "toy" / "arms" / "mine" / "iter-03" / "prompts.jsonl").read_text().splitlines()
    ]
    assert len(rows) == 12 and {r["category"] for r in rows} <= {"askbaking", "askdocs", "askvet"}
    assert all(r["provenance"]["curriculum"] == "focus" and r["provenance"]["extra"]["weight"] > 0 for r in rows)


def test_bad_requests_exit_2_with_one_line(tmp_path: Path):
    bad_name = run_cli("new-plugin", "curriculum", "Bad_Name", "--dir", str(tmp_path / "x"))
    assert bad_name.returncode == 2 and bad_name.stderr.startswith(
        "error: new-plugin: name 'Bad_Name' must be lower-case"
    )
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "keep.txt").write_text("mine")
    taken = run_cli("new-plugin", "reward", "ok", "--dir", str(tmp_path / "taken"))
    assert taken.returncode == 2 and "already exists and is not empty" in taken.stderr
    assert (tmp_path / "taken" / "keep.txt").read_text() == "mine" and len(list((tmp_path / "taken").iterdir())) == 1
    unknown = run_cli("new-plugin", "planner", "ok")
    assert unknown.returncode == 2 and "invalid choice: 'planner'" in unknown.stderr


def test_names_follow_python_and_packaging_conventions():
    files = render("judge", "strict-judge")
    assert 'name = "aopcore-strict-judge"' in files["pyproject.toml"]
    assert 'strict-judge = "aopcore_strict_judge.plugin"' in files["pyproject.toml"]
    assert "class StrictJudge:" in files["aopcore_strict_judge/judge.py"]  # no JudgeJudge
