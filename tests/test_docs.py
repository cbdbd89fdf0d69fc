"""The documentation that is generated from code must match the code."""
from conftest import ROOT, run_cli


def test_configuration_reference_is_current():
    result = run_cli("config-reference")
    assert result.returncode == 0
    assert (ROOT / "docs" / "configuration.md").read_text() == result.stdout, "run: aopcore config-reference > docs/configuration.md"


def test_examples_validate():
    assert run_cli("validate", str(ROOT / "examples" / "quickstart.toml")).returncode == 0
    paper = run_cli("validate", str(ROOT / "examples" / "paper.toml"), env={"GEMINI_API_KEY": "set-for-validation"})
    assert paper.returncode == 0, paper.stderr
    missing = run_cli("validate", str(ROOT / "examples" / "paper.toml"), env={"GEMINI_API_KEY": ""})
    assert missing.returncode == 2 and "GEMINI_API_KEY is not set" in missing.stderr


def test_set_overrides_are_validated_like_the_file():
    result = run_cli("validate", str(ROOT / "examples" / "quickstart.toml"), "--set", "experiment.iterations=0", "--set", "arms.aop.draws=x")
    assert result.returncode == 2
    assert "experiment.iterations: Input should be greater than or equal to 1" in result.stderr
    assert "arms.aop.draws: Input should be a valid integer" in result.stderr
