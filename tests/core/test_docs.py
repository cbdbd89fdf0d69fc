"""The documentation that is generated from code must match the code."""

from helpers import ROOT, run_cli


def test_configuration_reference_is_current():
    result = run_cli("config-reference", "--distribution", "aopcore")
    assert result.returncode == 0
    assert (ROOT / "docs" / "configuration.md").read_text() == result.stdout, (
        "run: aopcore config-reference --distribution aopcore > docs/configuration.md"
    )


def test_examples_validate(tmp_path):
    assert run_cli("validate", str(ROOT / "examples" / "quickstart.toml")).returncode == 0
    # offline, with an empty cache: every hub model and data set is a finding naming its key and what to do
    offline = {"HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf-home")}
    paper = run_cli(
        "validate", str(ROOT / "examples" / "paper.toml"), env={"GEMINI_API_KEY": "set-for-validation", **offline}
    )
    assert paper.returncode == 2 and "Traceback" not in paper.stderr
    keys = [line.split(": ")[2] for line in paper.stderr.strip().splitlines()]
    assert keys == [
        "data.heldout",
        "data.test_prompts",
        "trainer.model",
        "trainer.sft.dataset",
        "reward.model",
        "embedder.model",
    ], paper.stderr
    assert "'openai-community/gpt2-medium' is not in the Hugging Face cache and HF_HUB_OFFLINE is set" in paper.stderr
    missing = run_cli("validate", str(ROOT / "examples" / "paper.toml"), env={"GEMINI_API_KEY": "", **offline})
    assert missing.returncode == 2 and "GEMINI_API_KEY is not set" in missing.stderr


def test_set_overrides_are_validated_like_the_file():
    result = run_cli(
        "validate",
        str(ROOT / "examples" / "quickstart.toml"),
        "--set",
        "experiment.iterations=0",
        "--set",
        "arms.aop.draws=x",
    )
    assert result.returncode == 2
    assert "experiment.iterations: Input should be greater than or equal to 1" in result.stderr
    assert "arms.aop.draws: Input should be a valid integer" in result.stderr
