"""The `local` feedback LLM's `engine = "auto"`: vLLM where a vLLM environment exists, else transformers, resolved
once when the config is read and recorded, so a run directory never switches engines silently. None of these tests
needs vLLM: $AOPCORE_VLLM_PYTHON decides what is "installed" (an executable stands in for the vLLM Python; nothing
here starts an engine). tests/hf/test_vllm.py runs the resolved engine for real."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from helpers import run_cli

pytest.importorskip("torch")
from aopcore_hf.feedback import LocalFeedbackLLM, LocalJudgeOptions, LocalLLMOptions, LocalModelJudge  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
QUICKSTART = ROOT / "examples" / "quickstart.toml"
WITH_VLLM = {"AOPCORE_VLLM_PYTHON": sys.executable}
WITHOUT_VLLM = {"AOPCORE_VLLM_PYTHON": ""}  # set but empty: no vLLM, even where .venv-vllm exists


def test_auto_resolves_to_what_is_installed_and_the_judge_stays_transformers(monkeypatch):
    monkeypatch.setenv("AOPCORE_VLLM_PYTHON", sys.executable)
    assert LocalLLMOptions().engine == "vllm"
    assert LocalJudgeOptions().engine == "transformers"  # the measuring instrument does not follow the install
    assert LocalJudgeOptions(engine="auto").engine == "vllm"
    monkeypatch.setenv("AOPCORE_VLLM_PYTHON", "")
    assert LocalLLMOptions().engine == "transformers"
    monkeypatch.setenv("AOPCORE_VLLM_PYTHON", str(ROOT / "no-such-python"))
    assert LocalLLMOptions().engine == "transformers"  # a Python that cannot run is not an environment
    assert LocalLLMOptions(engine="vllm").engine == "vllm"  # an explicit choice is kept (preflight then refuses it)


def test_explicit_engines_build_their_own_class(monkeypatch):
    from aopcore.errors import InputError

    monkeypatch.setenv("AOPCORE_VLLM_PYTHON", "")
    # engine = "vllm" builds the vLLM class, which asks for its environment before it loads anything
    with pytest.raises(InputError, match="needs vLLM: run `bash scripts/setup-vllm.sh`"):
        LocalFeedbackLLM(LocalLLMOptions(engine="vllm"))
    with pytest.raises(InputError, match="needs vLLM"):
        LocalModelJudge(LocalJudgeOptions(engine="vllm"))
    # transformers: the class itself (__new__ alone, so no model loads here)
    assert type(LocalFeedbackLLM.__new__(LocalFeedbackLLM, LocalLLMOptions())) is LocalFeedbackLLM
    assert type(LocalModelJudge.__new__(LocalModelJudge, LocalJudgeOptions())) is LocalModelJudge


def test_the_resolved_engine_is_recorded_and_a_resume_that_resolves_otherwise_is_refused(monkeypatch, tmp_path: Path):
    from aopcore.engine.build import resolve
    from aopcore.errors import InputError
    from aopcore.storage.fingerprint import check_run_dir

    overrides = [f'experiment.output_dir="{tmp_path}"']
    monkeypatch.setenv("AOPCORE_VLLM_PYTHON", sys.executable)
    with_vllm = resolve(QUICKSTART, overrides)
    assert with_vllm.snapshot()["feedback"]["engine"] == "vllm"
    run_dir = tmp_path / "quickstart"
    run_dir.mkdir()
    assert check_run_dir(run_dir, with_vllm.build().fingerprint()) == []  # the first run stores its fingerprint
    monkeypatch.setenv("AOPCORE_VLLM_PYTHON", "")
    without = resolve(QUICKSTART, overrides)
    assert without.snapshot()["feedback"]["engine"] == "transformers"
    with pytest.raises(InputError, match=r"feedback\.engine: vllm -> transformers"):
        check_run_dir(run_dir, without.build().fingerprint())
    # naming the engine the run was made with is refused up front where it is missing, in one line that says why
    with pytest.raises(
        InputError, match=r"feedback\.engine: vllm needs a vLLM environment: run `bash scripts/setup-vllm.sh`"
    ):
        resolve(QUICKSTART, [*overrides, 'feedback.engine="vllm"'])
    monkeypatch.setenv("AOPCORE_VLLM_PYTHON", sys.executable)  # with vLLM back, the run resumes as it was made
    assert check_run_dir(run_dir, resolve(QUICKSTART, overrides).build().fingerprint()) == []


def test_preflight_refuses_an_explicit_vllm_engine_without_vllm(tmp_path: Path):
    result = run_cli("validate", str(QUICKSTART), "--set", 'feedback.engine="vllm"', env=WITHOUT_VLLM)
    assert result.returncode == 2, result.stderr
    line = next(x for x in result.stderr.splitlines() if "engine" in x)
    assert "feedback" in line and "setup-vllm.sh" in line and 'engine = "transformers"' in line
    assert run_cli("validate", str(QUICKSTART), env=WITHOUT_VLLM).returncode == 0  # auto never fails preflight
    assert run_cli("validate", str(QUICKSTART), env=WITH_VLLM).returncode == 0


def test_env_report_names_the_vllm_environment_auto_would_use():
    """Through the hf family's register_environment_notes: the core's report imports no plugin family."""
    found = run_cli("env", "--no-sizes", env=WITH_VLLM)
    assert found.returncode == 0, found.stderr
    notes = found.stdout.split("from plugins:\n", 1)[1]
    assert f'  vLLM environment: {sys.executable} (the local feedback LLM\'s engine = "auto" runs on vLLM)' in notes
    none = run_cli("env", "--no-sizes", "--json", env=WITHOUT_VLLM)
    import json

    assert json.loads(none.stdout)["plugin_notes"]["vLLM environment"].startswith(
        "none (a checkout's scripts/setup-vllm.sh makes one, or set AOPCORE_VLLM_PYTHON"
    )


def test_a_plugin_and_its_resolved_options_survive_pickling(monkeypatch):
    """What an executor sends to a worker: the engine stays the one resolved here (unpickling validates nothing)."""
    import pickle

    monkeypatch.setenv("AOPCORE_VLLM_PYTHON", sys.executable)
    options = LocalLLMOptions()
    monkeypatch.setenv("AOPCORE_VLLM_PYTHON", "")  # the worker's machine would resolve auto otherwise
    assert pickle.loads(pickle.dumps(options)).engine == "vllm"
    llm = LocalFeedbackLLM.__new__(LocalFeedbackLLM, LocalLLMOptions(engine="transformers"))
    llm.options, llm.cache = LocalLLMOptions(engine="transformers"), None
    again = pickle.loads(pickle.dumps(llm))
    assert type(again) is LocalFeedbackLLM and again.options.engine == "transformers"


def test_a_failing_environment_note_is_shown_as_failed_and_the_others_stay(monkeypatch):
    import aopcore.registry
    from aopcore.devtools.envreport import plugin_notes

    def broken() -> str:
        raise OSError("no such folder")

    monkeypatch.setattr(
        aopcore.registry,
        "registered_pairs",
        lambda hook: [("broken", broken), ("fine", lambda: "here"), ("silent", lambda: None)],
    )
    assert plugin_notes() == {"broken": "failed: OSError: no such folder", "fine": "here"}


@pytest.mark.parametrize("native", [True, False])
def test_feedback_dtype_auto_is_bfloat16_only_on_a_cpu_that_computes_it_and_the_judge_stays_float32(
    monkeypatch, native: bool
):
    """The feedback LLM only generates: bf16 halves its memory and CPU time where AMX/AVX512-BF16 exist; the choice is
    made when the options are validated (so config.json records it), and never for the judge."""
    import aopcore_hf.models as models
    from aopcore.storage.llmcache import cache_key

    monkeypatch.setenv("AOPCORE_VLLM_PYTHON", "")
    monkeypatch.setattr(models, "cpu_has_native_bf16", lambda: native)
    feedback = LocalLLMOptions(device="cpu")
    assert feedback.dtype == ("bfloat16" if native else "float32")
    assert LocalLLMOptions(device="cpu", dtype="float32").dtype == "float32"  # an explicit choice is kept
    assert LocalJudgeOptions(device="cpu").dtype == "auto"  # choose_device: float32 on a CPU
    assert models.choose_device("cpu", LocalJudgeOptions(device="cpu").dtype).dtype == __import__("torch").float32

    seen: list[str] = []
    monkeypatch.setattr("aopcore.storage.llmcache.cache_key", lambda *a: seen.append(a[3]) or cache_key(*a))
    llm = LocalFeedbackLLM(feedback.model_copy(update={"cache": False}))
    monkeypatch.setattr(llm, "_generate", lambda prompts, seeds: ["x" for _ in prompts])
    llm.complete(["q"])
    assert ("dtype" in seen[0]) is native  # bf16 responses never answer a float32 request from the cache
