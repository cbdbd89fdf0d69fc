"""`aopcore validate` reports every problem at once: file:line: toml.path: message, exit 2, no traceback."""

from pathlib import Path

from aopcore.engine.build import resolve

from helpers import run_cli

BROKEN = """
[experiment]
name = "broken"
iterations = "four"
plugins = ["toy_components"]
plugin_paths = ["."]

[data]
heldout = "missing-heldout.jsonl"

[trainer]
plugin = "toy"
learning_rte = 0.1

[reward]
plugin = "toy-lenght"

[judge]
plugin = "toy-length"
margin = "wide"

[feedback]
plugin = "toy-echo"
api_key_env = "AOPCORE_TEST_UNSET_KEY"

[arms.static]
curriculum = "toy-static"

[arms.fancy]
curriculum = "no-such-curriculum"
"""


def test_validate_reports_every_problem_with_location(toy_config):
    config = toy_config(BROKEN)
    result = run_cli("validate", str(config), env={"AOPCORE_TEST_UNSET_KEY": ""})
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    expect = {
        "wrong type": f"{config}:4: experiment.iterations: Input should be a valid integer",
        "missing data file": f"{config}:9: data.heldout: data file not found: {config.parent / 'missing-heldout.jsonl'}",
        "unknown key": f"{config}:13: trainer.learning_rte: unknown key (did you mean 'learning_rate'?)",
        "unknown plugin": f"{config}:16: reward.plugin: unknown reward plugin 'toy-lenght'; did you mean 'toy-length'?",
        "plugin option type": f"{config}:20: judge.margin: Input should be a valid number",
        "missing secret": f"{config}:24: feedback.api_key_env: environment variable AOPCORE_TEST_UNSET_KEY is not set",
        "unknown curriculum": f"{config}:30: arms.fancy.curriculum: unknown curriculum plugin 'no-such-curriculum'",
    }
    for what, prefix in expect.items():
        assert any(line.startswith(f"error: {prefix}") for line in lines), f"{what} not reported:\n{result.stderr}"
    assert len(lines) == len(expect), result.stderr


def test_valid_config_passes_and_secret_value_is_not_needed_in_file(toy_config, monkeypatch):
    config = toy_config(
        BROKEN.replace('"four"', "2")
        .replace("learning_rte", "learning_rate")
        .replace("toy-lenght", "toy-length")
        .replace('"wide"', "0.1")
        .replace('heldout = "missing-heldout.jsonl"', "")
        .replace("no-such-curriculum", "toy-weakest")
    )
    result = run_cli("validate", str(config), env={"AOPCORE_TEST_UNSET_KEY": "sk-secret-value"})
    assert result.returncode == 0, result.stderr
    assert "OK" in result.stdout
    monkeypatch.setenv("AOPCORE_TEST_UNSET_KEY", "sk-secret-value")
    plan = resolve(config)
    assert "sk-secret-value" not in str(plan.snapshot())


def test_invalid_toml_names_line(tmp_path: Path):
    bad = tmp_path / "bad.toml"
    bad.write_text('[experiment]\nname = "x"\nseed = = 3\n')
    result = run_cli("validate", str(bad))
    assert result.returncode == 2
    assert result.stderr.startswith(f"error: {bad}:3: invalid TOML")


def test_run_refuses_bad_config_before_any_work(toy_config):
    config = toy_config(BROKEN)
    result = run_cli("run", str(config))
    assert result.returncode == 2
    assert not (config.parent / "runs").exists()


def test_missing_sections_and_empty_arms(tmp_path: Path):
    cfg = tmp_path / "c.toml"
    cfg.write_text('[experiment]\nname = "x"\n\n[arms]\n')
    result = run_cli("validate", str(cfg))
    assert result.returncode == 2
    for section in ("trainer", "reward", "judge"):
        assert f"{cfg}: {section}: required key is missing" in result.stderr
    assert f"{cfg}:4: arms: at least one arm is needed" in result.stderr


def test_cross_field_check_of_plugin_options_is_one_clean_line(tmp_path: Path):
    cfg = tmp_path / "c.toml"
    cfg.write_text(
        '[experiment]\nname = "x"\n\n[trainer]\nplugin = "ppo"\nbatch_size = 8\nmini_batch_size = 4\nnum_processes = 3\n\n'
        '[reward]\nplugin = "offline-relevance"\n\n[judge]\nplugin = "reward-margin"\n\n[arms.vanilla]\ncurriculum = "pool"\n'
    )
    result = run_cli("validate", str(cfg))
    assert result.returncode == 2
    assert f"{cfg}:4: trainer: mini_batch_size (4) must be a multiple of num_processes (3)\n" in result.stderr
