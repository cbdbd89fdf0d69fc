"""Options the framework understands: path types resolved against the config file, preflight(ctx) with the
experiment's budget and categories, bounds on every numeric option, lazy components, the reference docs."""

from __future__ import annotations

import json
import typing
from pathlib import Path

import pytest
from pydantic import BaseModel

from aopcore.cli import main
from aopcore.devtools.docgen import bounds
from aopcore.engine.config import DataSection, EvaluationSection, ExperimentSection
from aopcore.errors import InputError
from aopcore.options import PreflightContext
from aopcore.registry import load_registry

from helpers import TOY, run_cli

PLUGIN = '''
"""A third-party curriculum whose options use the framework's path type and preflight context."""
import os
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from aopcore import Prompt, Provenance, hookimpl
from aopcore.options import InputFile, PreflightContext
from aopcore.records import load_questions
from toy_components import ToyTrainer

SEEN = []  # the contexts preflight received


class FileOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    pool: InputFile = Field(description="Questions to train on, in order (JSONL).")
    probe: int = Field(2, ge=1, description="Prompts probed per iteration.")

    def preflight(self, ctx: PreflightContext) -> list[str]:
        SEEN.append(ctx)
        if self.probe > ctx.records_per_iteration:
            return [f"probe: {self.probe} is larger than the iteration budget {ctx.records_per_iteration}"]
        return []


class FileCurriculum:
    """Trains on the pool's questions in order."""

    Options = FileOptions

    def __init__(self, options):
        self.pool = load_questions(options.pool)

    def prompts(self, ctx):
        start = (ctx.iteration - 1) * ctx.budget
        return [Prompt(q.id, q.text, q.category, Provenance("from-file", ctx.iteration, "pool"))
                for q in self.pool[start:start + ctx.budget]]


class OldOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    marker: str = "marker.txt"

    def preflight(self, base_dir: Path) -> list[str]:  # the older signature keeps working
        return [] if (base_dir / self.marker).exists() else [f"marker: {self.marker} is not next to the config"]


class OldCurriculum:
    Options = OldOptions

    def __init__(self, options):
        pass

    def prompts(self, ctx):
        return [Prompt(f"old-{ctx.iteration}-{i}", "Any tips?", ctx.categories[0], Provenance("old", ctx.iteration, "pool"))
                for i in range(ctx.budget)]


class CountingTrainer(ToyTrainer):
    """The toy trainer, counting how often it is built (a real trainer loads its model here)."""

    def __init__(self, options):
        super().__init__(options)
        with open(os.environ["AOPCORE_TEST_BUILDS"], "a") as fh:
            fh.write("built\\n")


@hookimpl
def register_curricula(register):
    register("from-file", FileCurriculum)
    register("old-style", OldCurriculum)


@hookimpl
def register_trainers(register):
    register("counting-toy", CountingTrainer)
'''

CONFIG = f'''
[experiment]
name = "opts"
output_dir = "runs"
iterations = 2
records_per_iteration = 3
passes = 1
plugins = ["toy_components", "opts_test_plugin"]
plugin_paths = ["{TOY}", "PLUGIN_DIR"]

[data]
heldout_per_category = 1
categories = ["askbaking", "askphysics"]
test_size = 3

[trainer]
plugin = "counting-toy"

[reward]
plugin = "toy-length"

[judge]
plugin = "toy-length"

[arms.mine]
curriculum = "from-file"
pool = "data/pool.jsonl"

[arms.old]
curriculum = "old-style"
'''


@pytest.fixture(scope="module")
def plugin_dir(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("plugin")
    (d / "opts_test_plugin.py").write_text(PLUGIN)
    return d


@pytest.fixture
def project(tmp_path: Path, plugin_dir: Path) -> Path:
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "pool.jsonl").write_text(
        "".join(
            json.dumps({"id": f"p{i}", "text": f"How do I bake thing {i}?", "category": "askbaking"}) + "\n"
            for i in range(6)
        )
    )
    (tmp_path / "marker.txt").write_text("")
    config = tmp_path / "config.toml"
    config.write_text(CONFIG.replace("PLUGIN_DIR", str(plugin_dir)))
    return config


def _line(config: Path, start: str) -> int:
    return next(i for i, line in enumerate(config.read_text().splitlines(), 1) if line.startswith(start))


def _cli(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_relative_input_path_is_relative_to_the_config_file_from_any_folder(project, tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    result = run_cli("validate", str(project), cwd=elsewhere)
    assert result.returncode == 0, result.stderr
    project.write_text(project.read_text().replace("data/pool.jsonl", "data/pool2.jsonl"))
    result = run_cli("validate", str(project), cwd=elsewhere)
    assert result.returncode == 2
    assert result.stderr.strip() == (
        f"error: {project}:{_line(project, 'pool =')}: arms.mine.pool: file not found: {tmp_path / 'data' / 'pool2.jsonl'} "
        "(relative paths are relative to the config file)"
    )


def test_preflight_receives_the_experiment_and_old_signature_still_works(project, capsys):
    from aopcore.engine.build import resolve

    plan = resolve(project)
    import opts_test_plugin  # importable once resolve put its folder on sys.path

    ctx = opts_test_plugin.SEEN[-1]
    assert isinstance(ctx, PreflightContext)
    assert (ctx.section, ctx.iterations, ctx.records_per_iteration, ctx.total_records) == ("arms.mine", 2, 3, 6)
    assert ctx.categories == ["askbaking", "askphysics"] and ctx.arms == {"mine": "from-file", "old": "old-style"}
    assert ctx.seeds == [0] and ctx.config_file == project
    assert Path(plan.arms["mine"][1].pool).is_absolute()
    project.write_text(project.read_text().replace('pool = "data/pool.jsonl"', 'pool = "data/pool.jsonl"\nprobe = 5'))
    (project.parent / "marker.txt").unlink()
    code, _, err = _cli(capsys, "validate", str(project))
    assert code == 2
    assert f"{project}:{_line(project, 'probe')}: arms.mine.probe: 5 is larger than the iteration budget 3" in err
    assert f"{project}:{_line(project, '[arms.old]')}: arms.old.marker: marker.txt is not next to the config" in err


def test_rerun_of_a_finished_experiment_builds_no_component(project, capsys, monkeypatch):
    builds = project.parent / "builds.txt"
    monkeypatch.setenv("AOPCORE_TEST_BUILDS", str(builds))
    code, out, err = _cli(capsys, "run", str(project))
    assert code == 0, err
    assert "loaded data.heldout: 2 questions from builtin:heldout (2 categories: askbaking 1, askphysics 1)" in out
    assert builds.read_text().count("built") == 1
    code, _, err = _cli(capsys, "run", str(project))
    assert code == 0, err
    assert builds.read_text().count("built") == 1  # every stage was done: the trainer was never constructed


def test_missing_checkpoint_is_a_missing_folder_not_a_hub_id(tmp_path):
    from aopcore_hf.models import DeviceChoice, resolve_model
    from aopcore_hf.policy_io import PolicyCache

    gone = tmp_path / "runs" / "x" / "arms" / "aop" / "iter-01" / "policy"
    with pytest.raises(InputError, match=rf"^model folder not found: {gone} \(a local path, not a hub id"):
        PolicyCache().load(gone, DeviceChoice("cpu", None))
    with pytest.raises(InputError, match="model folder not found: runs/x/arms/aop/iter-01/policy"):
        resolve_model("runs/x/arms/aop/iter-01/policy")
    assert resolve_model("openai-community/gpt2") == "openai-community/gpt2"  # a hub id stays one


# numeric options whose meaning allows any real number (seeds too): reward values a verifier hands out
UNBOUNDED = {
    "VerifierRewardOptions.correct",
    "VerifierRewardOptions.wrong",
    "VerifierRewardOptions.unverifiable",
    "SequenceRewardOptions.unverifiable",
    # rewards on the reward model's own scale: any real number is a valid threshold
    "DynamicFilterOptions.success_threshold",
    "LearnabilityOptions.success_threshold",
    "MoppsOptions.success_threshold",
    "SpeedOptions.success_threshold",
    # a table of category weights: each value is checked (>= 0) by the model's validator, tested below
    "OracleOptions.weights",
    "AdaRFTOptions.difficulties",  # each value checked (0-100) by the model's validator
}


def _numeric_fields_without_bounds(model: type[BaseModel], prefix: str = "") -> list[str]:
    out = []
    for name, field in model.model_fields.items():
        args = typing.get_args(field.annotation) or (field.annotation,)
        nested = [a for a in args if isinstance(a, type) and issubclass(a, BaseModel)]
        if nested:
            out += _numeric_fields_without_bounds(nested[0], f"{prefix}{name}.")
        elif (
            any(a in (int, float) for a in args)
            and not bounds(field)
            and f"{model.__name__}.{prefix}{name}" not in UNBOUNDED
            and name != "seed"
        ):
            out.append(f"{model.__name__}.{prefix}{name}")
    return out


def test_every_numeric_option_has_bounds():
    """Rates > 0, probabilities in [0, 1], sizes >= 1: each numeric option states what its meaning allows (seeds excepted)."""
    models = {ExperimentSection, DataSection, EvaluationSection} | {impl.options for impl in load_registry().all()}
    missing = [f for m in sorted(models, key=lambda m: m.__name__) for f in _numeric_fields_without_bounds(m)]
    assert not missing, f"numeric options without bounds: {missing}"


def test_oracle_refuses_negative_category_weights():
    from aopcore_testbed.oracle import OracleOptions

    with pytest.raises(ValueError, match="weights.addition"):
        OracleOptions(weights={"addition": -1.0})
    assert OracleOptions(weights={"addition": 0.0}).weights == {"addition": 0.0}


def test_pool_curriculum_checks_its_pool_against_the_budget(tmp_path):
    from aopcore_curricula.options import PoolOptions

    ctx = PreflightContext(
        tmp_path / "c.toml",
        tmp_path,
        "arms.pool",
        iterations=4,
        records_per_iteration=100,
        categories=["askbaking", "askdocs"],
    )
    problems = PoolOptions().preflight(ctx)
    assert len(problems) == 1 and problems[0].startswith(
        "pool: holds 120 prompts in the experiment's categories; 4 iterations x 100 records_per_iteration need 400"
    )
    assert (
        PoolOptions().preflight(
            PreflightContext(
                tmp_path / "c.toml",
                tmp_path,
                "arms.pool",
                iterations=2,
                records_per_iteration=10,
                categories=["askbaking"],
            )
        )
        == []
    )


def test_third_party_options_in_config_reference_and_plugin_details(tmp_path):
    site = tmp_path / "site"
    dist = site / "aopcore_fromfile-1.4.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: aopcore-fromfile\nVersion: 1.4\n")
    (dist / "entry_points.txt").write_text("[aopcore]\nfromfile = opts_test_plugin\n")
    (site / "opts_test_plugin.py").write_text(PLUGIN)
    env = {"PYTHONPATH": f"{site}:{TOY}"}
    ref = run_cli("config-reference", env=env)
    assert ref.returncode == 0, ref.stderr
    section = ref.stdout[ref.stdout.index("### aopcore-fromfile 1.4") :]
    assert "#### `from-file` ([arms.NAME])" in section
    assert "| `pool` | file path | `required` |  | Questions to train on, in order (JSONL). |" in section
    assert "| `probe` | int | `2` | >= 1 | Prompts probed per iteration. |" in section
    only_core = run_cli("config-reference", "--distribution", "aopcore", env=env)
    assert "aopcore-fromfile" not in only_core.stdout and "### `ppo`" in only_core.stdout
    details = run_cli("plugins", "--details", "from-file", env=env)
    assert details.returncode == 0, details.stderr
    assert details.stdout.splitlines()[:3] == [
        "from-file (curriculum, config section [arms.NAME])",
        "  from: aopcore-fromfile 1.4 (plugin module fromfile)",
        "  Trains on the pool's questions in order.",
    ]
    assert "    probe (int, default 2; >= 1): Prompts probed per iteration." in details.stdout
    unknown = run_cli("plugins", "--details", "from-fil", env=env)
    assert unknown.returncode == 2 and "did you mean 'from-file'" in unknown.stderr


class _FakeHub:
    """A local HTTP server answering the hub's model-info API: one model exists, every other id is 404."""

    def __enter__(self):
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                found = self.path.startswith("/api/models/real-org/real-model")
                body = json.dumps(
                    {"id": "real-org/real-model", "sha": "0" * 40, "siblings": [{"rfilename": "config.json"}]}
                    if found
                    else {"error": "Repository not found"}
                ).encode()
                self.send_response(200 if found else 404)
                if not found:
                    self.send_header("X-Error-Code", "RepoNotFound")
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def __exit__(self, *exc):
        self.server.shutdown()


def test_hub_ids_are_checked_against_a_reachable_hub_without_loading_weights(tmp_path, monkeypatch):
    import socket

    from test_preflight import BASE, _write_workspace, ppo

    _write_workspace(tmp_path)
    config = tmp_path / "c.toml"
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    env = {"HF_HOME": str(tmp_path / "empty-cache"), "HF_HUB_OFFLINE": ""}
    with _FakeHub() as endpoint:
        env["HF_ENDPOINT"] = endpoint
        config.write_text(ppo(model='"real-org/real-model"')(BASE, tmp_path))
        # exists on the hub: fine (the fake hub serves no files, so a download attempt would have failed)
        result = run_cli("validate", str(config), env=env)
        assert result.returncode == 0, result.stderr
        config.write_text(ppo(model='"ghost-org/none"')(BASE, tmp_path))
        result = run_cli("validate", str(config), env=env)
        assert result.returncode == 2 and "trainer.model: no model 'ghost-org/none' on the hub" in result.stderr, (
            result.stderr
        )
    with socket.socket() as s:  # a port nobody listens on: the hub cannot be reached
        s.bind(("127.0.0.1", 0))
        env["HF_ENDPOINT"] = f"http://127.0.0.1:{s.getsockname()[1]}"
    config.write_text(ppo(model='"real-org/real-model"')(BASE, tmp_path))
    result = run_cli("validate", str(config), env=env)
    assert result.returncode == 2, result.stderr
    assert (
        "trainer.model: 'real-org/real-model' is not in the Hugging Face cache and the hub cannot be reached"
        in result.stderr
    )
    assert "HF_HOME" in result.stderr and "Traceback" not in result.stderr


def test_setting_up_the_quickstart_builds_no_model(tmp_path, monkeypatch):
    """Preflight, build and run preparation of the real quickstart construct no component: models load in stages only."""
    from aopcore.engine.build import LazyComponent, resolve

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    plan = resolve(Path(__file__).parents[2] / "examples" / "quickstart.toml", [f'experiment.output_dir="{tmp_path}"'])
    experiment = plan.build()
    experiment.prepare()
    assert len(experiment.stages()) > 20
    for role in ("trainer", "reward", "judge", "feedback", "embedder"):
        component = getattr(experiment, role)
        component = component if isinstance(component, LazyComponent) else component.inner  # call counters wrap some
        assert isinstance(component, LazyComponent) and not component.built, role
