"""Plugin discovery through real entry points: installed packages, broken plugins, the CLI listing."""

import importlib.metadata as md
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from aopcore.registry import load_registry

from helpers import ROOT, run_cli

EXAMPLE = ROOT / "examples" / "plugin-weakness-sampler"


@pytest.fixture(scope="session")
def example_plugin_installed():
    """Install the example third-party package for real (pip, entry points and all)."""
    try:
        md.version("aopcore-weakness-sampler")
    except md.PackageNotFoundError:
        subprocess.run(
            [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", str(EXAMPLE)],
            check=True,
            timeout=300,
        )
    return md.version("aopcore-weakness-sampler")


def test_builtins_register_through_entry_points():
    registry = load_registry()
    eps = {ep.name for ep in md.entry_points(group="aopcore") if ep.dist and ep.dist.name == "aopcore"}
    assert {"hf", "curricula", "eval"} <= eps
    for impl in registry.all():
        if impl.distribution == "aopcore":
            assert impl.plugin in eps


def test_third_party_package_is_discovered_with_distribution_and_version(example_plugin_installed):
    result = run_cli("plugins")
    assert result.returncode == 0, result.stderr
    line = next(x for x in result.stdout.splitlines() if "weakness-sampler" in x)
    assert f"aopcore-weakness-sampler {example_plugin_installed}" in line
    assert "curriculum:" in result.stdout


def test_loop_runs_with_third_party_curriculum(example_plugin_installed, toy_config, tmp_path: Path):
    config = toy_config()
    text = config.read_text().replace(
        'curriculum = "toy-weakest"', 'curriculum = "weakness-sampler"\ntemperature = 0.2'
    )
    config.write_text(text)
    result = run_cli("run", str(config))
    assert result.returncode == 0, result.stderr
    prompts = (tmp_path / "runs" / "toy" / "arms" / "weakest" / "iter-02" / "prompts.jsonl").read_text()
    assert '"curriculum": "weakness-sampler"' in prompts
    bad = config.read_text().replace("temperature = 0.2", "temperature = -1")
    config.write_text(bad)
    result = run_cli("validate", str(config))
    assert result.returncode == 2 and "arms.weakest.temperature: Input should be greater than 0" in result.stderr


def test_broken_plugin_is_reported_and_others_still_load(tmp_path: Path):
    site = tmp_path / "site"
    (site / "broken_plugin_dist-1.0.dist-info").mkdir(parents=True)
    (site / "broken_plugin_dist-1.0.dist-info" / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: broken-plugin-dist\nVersion: 1.0\n"
    )
    (site / "broken_plugin_dist-1.0.dist-info" / "entry_points.txt").write_text(
        "[aopcore]\nbroken = broken_plugin_mod\n"
    )
    (site / "broken_plugin_mod.py").write_text("import not_a_real_module_xyz\n")
    result = run_cli("plugins", env={"PYTHONPATH": f"{site}:{Path(__file__).parents[1] / 'toy'}"})
    assert result.returncode == 0
    assert (
        "plugin 'broken' from broken-plugin-dist failed to load: ModuleNotFoundError: No module named 'not_a_real_module_xyz'"
        in result.stderr
    )
    assert "trainer:" in result.stdout or "curriculum:" in result.stdout


def test_hook_that_raises_is_isolated(tmp_path: Path):
    mod = tmp_path / "raising_plugin.py"
    mod.write_text(
        "from aopcore import hookimpl\n@hookimpl\ndef register_judges(register):\n    raise ValueError('boom')\n"
    )
    sys.path.insert(0, str(tmp_path))
    try:
        registry = load_registry(["raising_plugin", "toy_components"])
    finally:
        sys.path.remove(str(tmp_path))
    assert any(p.plugin == "raising_plugin" and "boom" in p.error for p in registry.problems)
    assert "toy-length" in registry.names("judge")


def test_duplicate_name_is_reported_not_silently_replaced(tmp_path: Path):
    mod = tmp_path / "dup_plugin.py"
    mod.write_text(
        "from aopcore import hookimpl\n"
        "class Other:\n"
        "    def __init__(self, options): pass\n"
        "@hookimpl\n"
        "def register_judges(register):\n"
        "    register('toy-length', Other)\n"
    )
    sys.path.insert(0, str(tmp_path))
    try:
        registry = load_registry(["toy_components", "dup_plugin"], entry_points=False)
    finally:
        sys.path.remove(str(tmp_path))
    assert registry.get("judge", "toy-length").plugin == "toy_components"
    assert any("already registered" in p.error for p in registry.problems)


def test_plugins_add_cli_subcommands_and_a_failing_one_is_isolated(tmp_path: Path):
    """A third-party distribution adds `aopcore hello` through `register_commands`; another's hook raises."""
    site = tmp_path / "site"
    for dist, module, body in (
        (
            "hello_dist",
            "hello_cmd",
            "from aopcore import InputError, hookimpl\n"
            "def hello(args):\n"
            "    if args.name == 'nobody':\n"
            "        raise InputError('hello: --name nobody is not a name')\n"
            "    print(f'hello, {args.name}')\n"
            "    return 0\n"
            "@hookimpl\n"
            "def register_commands(subparsers):\n"
            "    p = subparsers.add_parser('hello', help='greet')\n"
            "    p.add_argument('--name', default='world')\n"
            "    p.set_defaults(func=hello)\n",
        ),
        (
            "bad_dist",
            "bad_cmd",
            "from aopcore import hookimpl\n"
            "@hookimpl\n"
            "def register_commands(subparsers):\n"
            "    raise RuntimeError('no commands today')\n",
        ),
    ):
        info = site / f"{dist}-1.0.dist-info"
        info.mkdir(parents=True)
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist.replace('_', '-')}\nVersion: 1.0\n")
        (info / "entry_points.txt").write_text(f"[aopcore]\n{module} = {module}\n")
        (site / f"{module}.py").write_text(body)
    env = {"PYTHONPATH": str(site)}
    result = run_cli("hello", "--name", "aop", env=env)
    assert result.returncode == 0 and result.stdout == "hello, aop\n", result.stderr
    assert (
        "warning: plugin bad_cmd (bad-dist): register_commands failed: RuntimeError: no commands today" in result.stderr
    )
    bad = run_cli("hello", "--name", "nobody", env=env)
    assert bad.returncode == 2 and "error: hello: --name nobody is not a name" in bad.stderr
    assert "rm-bench" in run_cli("--help", env=env).stdout  # the built-in family's commands come the same way


def test_one_plugin_manager_per_process_and_local_plugins_stay_local(tmp_path: Path):
    """Entry points load once (load_plugins is idempotent); a module one call names is not seen by the next call."""
    from aopcore.registry import load_plugins, reset_plugins

    pm = load_plugins()
    assert load_plugins() is pm
    assert "toy-length" in load_registry(["toy_components"]).names("judge")
    assert load_plugins() is pm
    assert "toy-length" not in load_registry().names("judge")
    mod = tmp_path / "late_plugin.py"
    mod.write_text(
        "from aopcore import hookimpl\n"
        "class Late:\n"
        "    def __init__(self, options): pass\n"
        "@hookimpl\n"
        "def register_judges(register):\n"
        "    register('late', Late)\n"
    )
    sys.path.insert(0, str(tmp_path))
    try:
        assert load_registry(["late_plugin"], entry_points=False).get("judge", "late").plugin == "late_plugin"
    finally:
        sys.path.remove(str(tmp_path))
    reset_plugins()
    fresh = load_plugins()
    assert fresh is not pm and not fresh.has_plugin("late_plugin")
    assert "toy-length" in load_registry(["toy_components"]).names("judge")


def test_every_register_hook_names_the_type_of_its_register_function():
    import inspect

    from aopcore import hookspecs

    specs = [fn for name, fn in inspect.getmembers(hookspecs, inspect.isfunction) if name.startswith("register_")]
    assert len(specs) >= 11
    for fn in specs:
        annotation = inspect.signature(fn, eval_str=True).parameters.get("register")
        if annotation is not None:
            assert annotation.annotation is not Any, fn.__name__


def test_a_plugin_registers_a_model_alias_that_the_hf_family_resolves(tmp_path: Path):
    """register_model_aliases: an installed plugin's alias resolves, is listed by `aopcore models`, and is checked
    by preflight, with no import between the families."""
    site = tmp_path / "site"
    info = site / "alias_dist-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: alias-dist\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[aopcore]\nmyalias = alias_plugin\n")
    (site / "alias_plugin.py").write_text(
        "from aopcore import hookimpl\n"
        "def build(models_dir):\n"
        "    folder = models_dir / 'my-tiny'\n"
        "    folder.mkdir(parents=True, exist_ok=True)\n"
        "    return folder\n"
        "@hookimpl\n"
        "def register_model_aliases(register):\n"
        "    register('my-tiny', build, module='alias_plugin', source='a test plugin')\n"
        "    register('testbed-tiny', build, module='alias_plugin')  # taken by the testbed family: ignored\n"
    )
    env = {"PYTHONPATH": str(site), "AOPCORE_CACHE": str(tmp_path / "cache")}
    code = (
        "from aopcore_hf.models import model_problem, resolve_model\n"
        "print(resolve_model('my-tiny')); print(model_problem('my-tiny')); print(resolve_model('testbed-tiny-base') != '')\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=120,
        env={**__import__("os").environ, **env},
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines()[:2] == [str(tmp_path / "cache" / "models" / "my-tiny"), "None"]
    listing = run_cli("models", env=env)
    assert listing.returncode == 0, listing.stderr
    assert "my-tiny\n  from:  a test plugin\n" in listing.stdout
    assert listing.stdout.count("\ntestbed-tiny\n") == 1
