"""Command-line arguments: --set overrides (seed/seeds, problems named by the override), bad plugin arguments exit 2."""

from __future__ import annotations

import os
import subprocess
import sys

from aopcore.engine.config import parse_config

from helpers import run_cli

# ---- 7, 8: --set replaces seed/seeds and is named in its own problems ------------------------------------------


def test_set_seeds_replaces_the_files_seed_and_back(toy_config, tmp_path):
    config = toy_config()  # seed = 7
    parsed, _, report = parse_config(config, ["experiment.seeds=[0, 1]"])
    assert not report.problems and parsed is not None
    assert parsed.experiment.seeds == [0, 1] and "seed" not in parsed.experiment.model_fields_set
    multi = tmp_path / "multi.toml"
    multi.write_text(config.read_text().replace("seed = 7", "seeds = [0, 1, 2]"))
    parsed, _, report = parse_config(multi, ["experiment.seed=3"])
    assert (
        not report.problems and parsed is not None and parsed.experiment.seeds is None and parsed.experiment.seed == 3
    )
    # both on the command line still clash
    parsed, _, report = parse_config(config, ["experiment.seeds=[0, 1]", "experiment.seed=3"])
    assert parsed is None and any("seed and seeds are exclusive" in p for p in report.problems)
    result = run_cli("validate", str(config), "--set", "experiment.seeds=[0,1]")
    assert result.returncode == 0 and "seeds: 0, 1" in result.stdout, result.stderr


def test_a_bad_override_is_named_not_the_file_line(toy_config):
    config = toy_config()
    _, _, report = parse_config(config, ["experiment.iterations=0", "data.nosuch=1"])
    assert (
        "--set experiment.iterations=0: experiment.iterations: Input should be greater than or equal to 1 (got 0)"
        in report.problems
    )
    assert any(p.startswith("--set data.nosuch=1: data.nosuch: unknown key") for p in report.problems), report.problems
    _, _, report = parse_config(config, ["experiment.passes=2", "experiment.iterations=x"])  # a file problem stays one
    assert [p.split(": ")[0] for p in report.problems] == ["--set experiment.iterations=x"]
    result = run_cli("validate", str(config), "--set", "trainer.learning_rate=x")  # a plugin's option, checked later
    assert result.returncode == 2
    assert "error: --set trainer.learning_rate=x: trainer.learning_rate:" in result.stderr, result.stderr


# ---- 6, 11: python -m aopcore; unknown distribution and unimportable module are bad input ----------------------


def test_python_m_aopcore_and_bad_plugin_arguments_exit_2():
    env = {**os.environ}
    result = subprocess.run(
        [sys.executable, "-m", "aopcore", "plugins", "--load", "no_such_mod"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert result.returncode == 2 and result.stdout == "", result.stderr
    assert result.stderr.strip() == (
        "error: --load no_such_mod: the module failed to import (ModuleNotFoundError: No module named 'no_such_mod')"
    )
    result = run_cli("config-reference", "--distribution", "nosuch")
    assert result.returncode == 2 and result.stdout == ""
    [line] = result.stderr.strip().splitlines()
    assert (
        line.startswith("error: --distribution nosuch: no installed plugins from it (distributions: ")
        and "aopcore" in line
    )
