"""Old core module paths keep working for a release after the move into sub-packages (aopcore/_moved.py), and the
move script (scripts/dev/move_core.py) is generic, idempotent and loud about a missing source."""

# move-core: keep old paths  (this file names the old paths on purpose; the move script leaves it alone)

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from aopcore import _moved

from helpers import ROOT

SCRIPT = ROOT / "scripts" / "dev" / "move_core.py"


def _run(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-W", "error::DeprecationWarning", "-c", code],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )


def test_every_old_path_imports_as_the_same_module_object():
    """In a clean interpreter: each old path, by import, by attribute and through ``from aopcore import``."""
    assert _moved.MOVED, "the alias table is empty: scripts/dev/move_core.py has not been applied"
    code = (
        "import importlib, json, sys, warnings\n"
        "import aopcore\n"
        "from aopcore._moved import MOVED\n"
        "bad, warned = [], 0\n"
        "for old, new in sorted(MOVED.items()):\n"
        "    with warnings.catch_warnings(record=True) as caught:\n"
        "        warnings.simplefilter('always')\n"
        "        alias = importlib.import_module(old)\n"
        "    real = importlib.import_module(new)\n"
        "    leaf = old.rpartition('.')[2]\n"
        "    if not (alias is real is sys.modules[old] is getattr(aopcore, leaf)): bad.append(old)\n"
        "    warned += any(issubclass(w.category, DeprecationWarning) and new in str(w.message) for w in caught)\n"
        "print(json.dumps({'bad': bad, 'warned': warned, 'n': len(MOVED)}))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["bad"] == []
    assert result["warned"] == result["n"]


def test_an_old_path_warns_and_patching_it_patches_the_real_module():
    old, new = sorted(_moved.MOVED.items())[0]
    leaf = old.rpartition(".")[2]
    out = _run(f"import {old}")
    assert out.returncode != 0 and f"{old} moved to {new}" in out.stderr
    code = (
        "import warnings; warnings.simplefilter('ignore')\n"
        f"from aopcore import {leaf} as alias\n"
        f"import {new} as real\n"
        "alias.MARK = 1\n"
        "print(real.MARK)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert out.returncode == 0 and out.stdout.strip() == "1", out.stderr


def test_new_paths_import_without_a_warning():
    out = _run(
        "import importlib\nfrom aopcore._moved import MOVED\nfor n in MOVED.values(): importlib.import_module(n)"
    )
    assert out.returncode == 0, out.stderr


def test_an_unknown_attribute_is_still_an_attribute_error():
    import aopcore

    with pytest.raises(AttributeError, match="no attribute 'no_such_module'"):
        aopcore.no_such_module  # noqa: B018


def test_stored_names_from_before_the_move_read_as_the_new_ones():
    old, new = sorted(_moved.MOVED.items())[0]
    stored = {"reward": {"class": f"{old}.Thing", "fn": f"partial({old}.f)"}, "data.aopcore.x": old + "s"}
    assert _moved.modernise(stored) == {
        "reward": {"class": f"{new}.Thing", "fn": f"partial({new}.f)"},
        "data.aopcore.x": old + "s",  # not a module path: another name, and a key inside a foreign config
    }


# ---- the script, on a scratch repository it has never seen ----------------------------------------------------------
def _scratch_repo(tmp_path: Path) -> Path:
    repo = tmp_path / "repo"
    (repo / "aopcore").mkdir(parents=True)
    (repo / "scripts" / "dev").mkdir(parents=True)
    (repo / "scripts" / "dev" / "move_core.py").write_text(SCRIPT.read_text())
    (repo / "aopcore" / "_moved.py").write_text((ROOT / "aopcore" / "_moved.py").read_text())
    (repo / "aopcore" / "__init__.py").write_text('"""Doc."""\n\nfrom aopcore.errors import X\n')
    return repo


def _git(repo: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True)


def test_the_script_fails_loudly_on_a_missing_source_and_changes_nothing(tmp_path: Path):
    repo = _scratch_repo(tmp_path)
    (repo / "aopcore" / "experiment.py").write_text("X = 1\n")
    _git(repo, "init", "-q")
    _git(repo, "add", "-A")
    before = {p: p.read_text() for p in repo.rglob("*.py") if ".git" not in p.parts}
    out = subprocess.run([sys.executable, "scripts/dev/move_core.py"], cwd=repo, capture_output=True, text=True)
    assert out.returncode != 0
    assert "aopcore/stagegraph.py is missing (mapped to aopcore/engine/stagegraph.py)" in out.stderr
    assert {p: p.read_text() for p in repo.rglob("*.py") if ".git" not in p.parts} == before


def test_the_script_rewrites_generic_references_and_a_second_run_changes_nothing(tmp_path: Path):
    sys.path.insert(0, str(SCRIPT.parent))
    try:
        import move_core
    finally:
        sys.path.remove(str(SCRIPT.parent))
    text = (
        "from aopcore import errors, experiment, datasources as ds  # why\n"
        "    from aopcore import (\n        rundir,\n        stats,\n    )\n"
        "import aopcore.experiment\n"
        'monkeypatch.setattr("aopcore.experiment.Experiment.run", f)\n'
        'key = "data.aopcore.config"\n'
        "see aopcore/rundir.py and aopcore/scaffold_templates/ and ROOT / 'aopcore' / 'stats.py'\n"
        "python -m aopcore.envreport; aopcore.experimental; aopcore_hf.config; aopcore.data.FieldMap\n"
    )
    once = move_core.rewrite_text(text)
    assert once == (
        "from aopcore import errors  # why\n"
        "from aopcore.data import sources as ds\n"
        "from aopcore.engine import experiment\n"
        "    from aopcore.analysis import stats\n"
        "    from aopcore.storage import rundir\n"
        "import aopcore.engine.experiment\n"
        'monkeypatch.setattr("aopcore.engine.experiment.Experiment.run", f)\n'
        'key = "data.aopcore.config"\n'
        "see aopcore/storage/rundir.py and aopcore/devtools/scaffold_templates/ and "
        'ROOT / "aopcore" / "analysis" / "stats.py"\n'
        "python -m aopcore.devtools.envreport; aopcore.experimental; aopcore_hf.config; aopcore.data.FieldMap\n"
    )
    assert move_core.rewrite_text(once) == once


def test_fixups_apply_once_even_where_the_new_text_starts_the_old(tmp_path: Path, monkeypatch):
    sys.path.insert(0, str(SCRIPT.parent))
    try:
        import move_core
    finally:
        sys.path.remove(str(SCRIPT.parent))
    (tmp_path / "a.py").write_text('DIR = Path(__file__).parent / "data"\nhere = X.parent\n')
    monkeypatch.setattr(
        move_core,
        "FIXUPS",
        {
            "a.py": [
                ('DIR = Path(__file__).parent / "data"', "DIR = Path(__file__).parent"),
                ("X.parent\n", "X.parent.parent\n"),
            ]
        },
    )
    assert move_core.apply_fixups(tmp_path) == [tmp_path / "a.py"]
    assert move_core.apply_fixups(tmp_path) == []
    assert (tmp_path / "a.py").read_text() == "DIR = Path(__file__).parent\nhere = X.parent.parent\n"
    monkeypatch.setattr(move_core, "FIXUPS", {"a.py": [("gone", "absent")]})
    with pytest.raises(SystemExit, match="neither the old nor the new text"):
        move_core.apply_fixups(tmp_path)
