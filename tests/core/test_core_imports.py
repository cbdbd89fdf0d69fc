"""The core stands alone: nothing under aopcore/ imports a plugin family; plugins extend it through hooks."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

from helpers import ROOT, run_cli

FAMILIES = (
    "aopcore_hf",
    "aopcore_eval",
    "aopcore_curricula",
    "aopcore_providers",
    "aopcore_testbed",
    "aopcore_integrations",
)
CORE = ROOT / "aopcore"


def _imported_names(tree: ast.AST) -> list[tuple[int, str]]:
    """Every module an import statement (anywhere, also inside functions) or importlib.import_module("...") names."""
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.append((node.lineno, node.module))
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "import_module"
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            out.append((node.lineno, node.args[0].value))
    return out


def test_no_core_module_imports_a_plugin_family():
    offenders = []
    files = sorted(CORE.rglob("*.py"))
    assert len(files) > 10
    for path in files:
        for line, name in _imported_names(ast.parse(path.read_text(), str(path))):
            if name.split(".")[0] in FAMILIES:
                offenders.append(f"{path.relative_to(ROOT)}:{line} imports {name}")
    assert not offenders, "the core imports plugin families:\n" + "\n".join(offenders)


def test_the_scan_sees_imports_inside_functions():
    """The scan itself must catch the kind of lazy import the core used to have."""
    tree = ast.parse(
        "def f():\n    from aopcore_eval.html_report import write\n    import importlib\n"
        "    importlib.import_module('aopcore_hf.datasets')\n"
    )
    assert [n for _, n in _imported_names(tree)] == ["aopcore_eval.html_report", "importlib", "aopcore_hf.datasets"]


def test_importing_every_core_module_loads_no_plugin_family():
    code = (
        "import importlib, json, pkgutil, sys\n"
        "import aopcore\n"
        "names = [m.name for m in pkgutil.walk_packages(aopcore.__path__, 'aopcore.')]\n"
        "for n in names: importlib.import_module(n)\n"
        f"print(json.dumps({{'modules': names, 'families': sorted(m for m in sys.modules if m.split('.')[0] in {FAMILIES!r})}}))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert {
        "aopcore.analysis.report",
        "aopcore.judge_prompt",
        "aopcore.engine.judging",
        "aopcore.engine.experiment",
    } <= set(result["modules"])
    assert result["families"] == []


def test_report_formats_come_from_plugins_and_a_failing_writer_is_isolated(tmp_path: Path):
    """A third-party distribution adds a report format through `register_report_writers`; another's writer raises."""
    site = tmp_path / "site"
    for dist, module, body in (
        (
            "csv_dist",
            "csv_report",
            "from pathlib import Path\nfrom aopcore import hookimpl\n"
            "def write(run_dir):\n"
            "    (Path(run_dir) / 'report.csv').write_text('arm,iteration\\n')\n"
            "    return ['report.csv']\n"
            "@hookimpl\n"
            "def register_report_writers(register):\n"
            "    register('csv', write)\n",
        ),
        (
            "bad_dist",
            "bad_report",
            "from aopcore import hookimpl\n"
            "def write(run_dir):\n"
            "    raise RuntimeError('no ink')\n"
            "@hookimpl\n"
            "def register_report_writers(register):\n"
            "    register('broken', write)\n",
        ),
    ):
        info = site / f"{dist}-1.0.dist-info"
        info.mkdir(parents=True)
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist.replace('_', '-')}\nVersion: 1.0\n")
        (info / "entry_points.txt").write_text(f"[aopcore]\n{module} = {module}\n")
        (site / f"{module}.py").write_text(body)
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "config.json").write_text(json.dumps({"experiment": {"name": "run", "iterations": 1}}))
    result = run_cli("report", str(run_dir), env={"PYTHONPATH": str(site)})
    assert result.returncode == 0, result.stderr
    written = {Path(line).name for line in result.stdout.split()}
    assert {"report.md", "report.csv", "report.html"} <= written  # the evaluation family's HTML comes the same way
    assert (run_dir / "report.csv").read_text() == "arm,iteration\n"
    assert "report writer 'broken' failed: RuntimeError: no ink" in result.stderr


# Plugin families in layers: a family imports the core and families of lower layers only, never one beside or
# above it (so the tree has no import circle, and each family installs and loads without those above it).
# The core (layer 0) imports no family at all (test above). A family that needs something from one above asks
# the plugin manager through a hook instead (e.g. register_model_aliases: the hf family resolves `testbed-tiny`
# without importing the testbed).
FAMILY_LAYERS = {
    "aopcore_integrations": 1,  # adapters inside foreign trainers (TRL, veRL): the core's session API only
    "aopcore_curricula": 1,
    "aopcore_providers": 1,
    "aopcore_hf": 2,  # torch; its TRL trainers reuse the TRL adapter's feeds
    "aopcore_eval": 3,  # rm-bench reads data sets through the hf family
    "aopcore_testbed": 3,  # its policy is an hf model; its oracle is an online curriculum
}


def _family_import_violations(layers: dict[str, int], plugins: Path) -> list[str]:
    offenders = []
    for family, layer in layers.items():
        for path in sorted((plugins / family).rglob("*.py")):
            for line, name in _imported_names(ast.parse(path.read_text(), str(path))):
                top = name.split(".")[0]
                if top in layers and top != family and layers[top] >= layer:
                    offenders.append(
                        f"{path.relative_to(plugins)}:{line}: {family} (layer {layer}) imports {name} "
                        f"(layer {layers[top]})"
                    )
    return offenders


def test_families_import_only_the_core_and_families_below_them():
    assert (
        set(FAMILY_LAYERS)
        == set(FAMILIES)
        == {p.name for p in (ROOT / "plugins").iterdir() if (p / "__init__.py").exists()}
    )
    offenders = _family_import_violations(FAMILY_LAYERS, ROOT / "plugins")
    assert not offenders, "a plugin family imports one beside or above it:\n" + "\n".join(offenders)


def test_the_family_rule_catches_an_upward_import(tmp_path: Path):
    """The scan must fail on the import that made the tree's circle (hf -> testbed), also inside a function."""
    for family in FAMILY_LAYERS:
        (tmp_path / family).mkdir()
        (tmp_path / family / "__init__.py").write_text("")
    (tmp_path / "aopcore_hf" / "models.py").write_text("def f():\n    from aopcore_testbed.model import ensure_alias\n")
    (tmp_path / "aopcore_eval" / "x.py").write_text("import aopcore_testbed\nimport aopcore_hf\n")
    assert _family_import_violations(FAMILY_LAYERS, tmp_path) == [
        "aopcore_hf/models.py:2: aopcore_hf (layer 2) imports aopcore_testbed.model (layer 3)",
        "aopcore_eval/x.py:1: aopcore_eval (layer 3) imports aopcore_testbed (layer 3)",
    ]
