#!/usr/bin/env python
"""Move the flat core modules into sub-packages by concern, and rewrite every reference to them (issue 29).

Run from anywhere inside the checkout: ``python scripts/dev/move_core.py`` (``--check`` only says what it would do).
It is deterministic and idempotent (a second run changes nothing), and works on files it has never seen:

1. ``git mv`` each module of :data:`MOVES` (and each folder of :data:`DATA_FOLDERS`) to its new place, creating the
   sub-packages (:data:`PACKAGES`); a mapped source that is neither at its old nor at its new place, or at both,
   stops the script before anything changes;
2. rewrites, in every tracked text file, ``aopcore.<old>`` dotted names (imports, ``import_module``/``mock.patch``
   strings, entry points, ``python -m``), ``from aopcore import <old>`` statements (split when they mix moved and
   staying names), ``aopcore/<old>.py`` paths and ``"aopcore" / "<old>.py"`` path expressions; relative imports in
   the core are made absolute first, so a moved file's imports still resolve;
3. applies :data:`FIXUPS` (paths a module computes from its own ``__file__``, package-data keys): each is an exact
   text replacement that must find its old or its new text, or the script fails;
4. writes the old -> new table into ``aopcore/_moved.py``, whose finder keeps every old module path importing (the
   same module object, with a DeprecationWarning) for a release, and makes sure ``aopcore/__init__.py`` imports it;
5. sorts the imports and formats the Python files (``ruff``; files already tidy stay as they are).

Left alone: ``CHANGELOG.md`` (history names the paths of its time), ``aopcore/_moved.py``, this script, JSON files
(recorded results), and any file holding the line ``# move-core: keep old paths`` (the alias tests).
"""

from __future__ import annotations

import argparse
import ast
import re
import shutil
import subprocess
import sys
from pathlib import Path

# ---- the mapping: old module (under aopcore.) -> new module -----------------------------------------------------
MOVES: dict[str, str] = {
    # engine: the loop of an experiment and of a curriculum session, their stages, and the front doors that build them
    "experiment": "engine.experiment",
    "stagegraph": "engine.stagegraph",
    "stagerun": "engine.stagerun",
    "stage_work": "engine.stage_work",
    "training": "engine.training",
    "twins": "engine.twins",
    "contexts": "engine.contexts",
    "validation": "engine.validation",
    "judging": "engine.judging",
    "prompt_audit": "engine.prompt_audit",
    "ranks": "engine.ranks",
    "session": "engine.session",
    "session_build": "engine.session_build",
    "multiseed": "engine.multiseed",
    "build": "engine.build",
    "config": "engine.config",
    "settings": "engine.settings",
    "collaborators": "engine.collaborators",
    "experiment_base": "engine.experiment_base",
    "run_prepare": "engine.run_prepare",
    "session_eval": "engine.session_eval",
    "session_state": "engine.session_state",
    # storage: what persists: the run directory (layout, atomic store, hashes, lock, fingerprint) and the LLM cache
    "rundir": "storage.rundir",
    "store": "storage.store",
    "integrity": "storage.integrity",
    "runlock": "storage.runlock",
    "fingerprint": "storage.fingerprint",
    "llmcache": "storage.llmcache",
    # analysis: numbers and reports read from run directories
    "stats": "analysis.stats",
    "verdicts": "analysis.verdicts",
    "tables": "analysis.tables",
    "report": "analysis.report",
    "aggregate": "analysis.aggregate",
    "aggregate_compute": "analysis.aggregate_compute",
    "aggregate_report": "analysis.aggregate_report",
    # data: questions from any source (the folder already holds the built-in question sets)
    "datasources": "data.sources",
    "rows": "data.rows",
    "builtin_data": "data.builtin",
    # devtools: for plugin authors and bug reports
    "scaffold": "devtools.scaffold",
    "apidoc": "devtools.apidoc",
    "docgen": "devtools.docgen",
    "envreport": "devtools.envreport",
    "examples": "devtools.examples",
}
# folders that are package data, not modules (not importable, so no alias): old -> new, under aopcore/
DATA_FOLDERS: dict[str, str] = {"scaffold_templates": "devtools/scaffold_templates"}
# new sub-packages and the docstring of their __init__.py (nothing re-exported: a package imports nothing itself)
PACKAGES: dict[str, str] = {
    "engine": "The engine: an experiment's and a curriculum session's stages, their commit protocol, and the front "
    "doors that build them (config files, several seeds).",
    "storage": "What persists: the run directory (its layout, atomic writes, integrity hashes, lock, fingerprint) "
    "and the LLM response cache.",
    "analysis": "Numbers read from run directories: statistics, verdicts, tables, the report and the multi-seed "
    "aggregate.",
    "devtools": "For plugin authors and bug reports: the plugin scaffold and its templates, the generated API and "
    "configuration references, the shipped examples, ``aopcore env``.",
}
# exact replacements, keyed by a file's path AFTER the move: (old text, new text); old or new must be there
FIXUPS: dict[str, list[tuple[str, str]]] = {
    "aopcore/data/builtin.py": [
        ('BUILTIN_DIR = Path(__file__).parent / "data"', "BUILTIN_DIR = Path(__file__).parent"),
    ],
    "aopcore/devtools/examples.py": [
        (
            "    here = Path(__file__).resolve().parent\n",
            "    here = Path(__file__).resolve().parent.parent  # the aopcore package (this module is in devtools/)\n",
        ),
    ],
    "aopcore/devtools/scaffold.py": [
        (
            'resources.files("aopcore") / "scaffold_templates"',
            'resources.files("aopcore.devtools") / "scaffold_templates"',
        ),
    ],
    "pyproject.toml": [
        ('\naopcore = ["scaffold_templates/*/*.tmpl"]', '\n"aopcore.devtools" = ["scaffold_templates/*/*.tmpl"]'),
    ],
}
# ------------------------------------------------------------------------------------------------------------------

KEEP_MARK = "# move-core: keep old paths"
SKIPPED = {"CHANGELOG.md", "aopcore/_moved.py", "scripts/dev/move_core.py"}
TEXT_SUFFIXES = {".py", ".md", ".toml", ".cfg", ".ini", ".in", ".txt", ".sh", ".tmpl", ".yaml", ".yml", ".rst"}
OWN_FILE = re.compile(r"(?<![\w.'\"])__file__\b")  # a module's own path, not aopcore.__file__ or a string
INIT_HOOK = "from aopcore._moved import package_getattr as __getattr__  # noqa: F401 - old module paths still import"


class MoveError(SystemExit):
    def __init__(self, message: str) -> None:
        super().__init__(f"move_core: {message}")


def git(root: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=root, check=True, capture_output=True, text=True).stdout


def module_file(root: Path, dotted: str) -> Path:
    return root / "aopcore" / (dotted.replace(".", "/") + ".py")


# ---- 1. files --------------------------------------------------------------------------------------------------------
def plan_moves(root: Path) -> list[tuple[Path, Path]]:
    """(old, new) for every entry not moved yet; fails when a source is missing, or at both places."""
    pending, problems = [], []
    entries = [(module_file(root, o), module_file(root, n)) for o, n in MOVES.items()]
    entries += [(root / "aopcore" / o, root / "aopcore" / n) for o, n in DATA_FOLDERS.items()]
    for old, new in entries:
        if old.exists() and new.exists():
            problems.append(f"{old.relative_to(root)} and {new.relative_to(root)} both exist: merge them by hand")
        elif old.exists():
            pending.append((old, new))
        elif not new.exists():
            problems.append(f"{old.relative_to(root)} is missing (mapped to {new.relative_to(root)})")
    for old, new in pending:  # a module that finds files next to itself needs a fixup, or it breaks where it lands
        rel = new.relative_to(root).as_posix()
        if old.is_file() and OWN_FILE.search(old.read_text(encoding="utf-8")) and rel not in FIXUPS:
            problems.append(f"{old.relative_to(root)} reads its own __file__: check its paths, add a FIXUPS entry")
    for name in PACKAGES:
        if module_file(root, name).exists():
            problems.append(f"aopcore/{name}.py exists: it would hide the new package aopcore/{name}/")
    if problems:
        raise MoveError("nothing changed:\n  " + "\n  ".join(problems))
    return pending


def absolute_imports(root: Path) -> list[Path]:
    """Relative imports under aopcore/ written absolute, so a file keeps its meaning wherever it moves."""
    changed = []
    for path in sorted((root / "aopcore").rglob("*.py")):
        text = path.read_text(encoding="utf-8")
        if "from ." not in text:
            continue
        package = ".".join(path.relative_to(root).with_suffix("").parts)
        if path.name != "__init__.py":
            package = package.rpartition(".")[0]
        lines = text.splitlines(keepends=True)
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.ImportFrom) and node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
                i = node.lineno - 1
                lines[i] = re.sub(r"from\s+\.+[\w.]*\s+import", f"from {target} import", lines[i], count=1)
        new = "".join(lines)
        if new != text:
            path.write_text(new, encoding="utf-8")
            changed.append(path)
    return changed


def move_files(root: Path, pending: list[tuple[Path, Path]]) -> None:
    for name, doc in PACKAGES.items():
        init = root / "aopcore" / name / "__init__.py"
        if not init.exists():
            init.parent.mkdir(parents=True, exist_ok=True)
            init.write_text(f'"""{doc}"""\n', encoding="utf-8")
            git(root, "add", str(init))
    for old, new in pending:
        new.parent.mkdir(parents=True, exist_ok=True)
        git(root, "mv", str(old), str(new))


# ---- 2. references ---------------------------------------------------------------------------------------------------
def _rules() -> list[tuple[re.Pattern[str], str]]:
    rules = []
    for old, new in sorted(MOVES.items()):
        rules.append((re.compile(rf"(?<![\w.])aopcore\.{old}(?!\w)"), f"aopcore.{new}"))
        rules.append((re.compile(rf"(?<![\w.-])aopcore/{old}\.py(?!\w)"), f"aopcore/{new.replace('.', '/')}.py"))
        parts = " / ".join(f'"{p}"' for p in new.split("."))
        rules.append((re.compile(rf"([\"'])aopcore\1\s*/\s*\1{old}\.py\1"), f'"aopcore" / {parts[:-1]}.py"'))
    for old, new in sorted(DATA_FOLDERS.items()):
        rules.append((re.compile(rf"(?<![\w.-])aopcore/{old}(?![\w.])"), f"aopcore/{new}"))
        parts = " / ".join(f'"{p}"' for p in new.split("/"))
        rules.append((re.compile(rf"([\"'])aopcore\1\s*/\s*\1{old}\1"), f'"aopcore" / {parts}'))
    return rules


RULES = _rules()
FROM_AOPCORE = re.compile(
    r"^(?P<indent>[ \t]*)from aopcore import (?P<names>\([^)]*\)|[^\n#;\\]*?)(?P<comment>[ \t]*#[^\n]*)?$", re.M
)


def _split_from_import(match: re.Match[str]) -> str:
    """``from aopcore import a, old as x`` -> the staying names, then one statement per package of moved names."""
    indent, comment = match["indent"], match["comment"] or ""
    raw = match["names"].strip().strip("()")
    names = [n.strip() for n in raw.replace("\n", " ").split(",") if n.strip()]
    staying, moved = [], {}
    for item in names:
        name, _, alias = (p.strip() for p in item.partition(" as "))
        if name not in MOVES:
            staying.append(item)
            continue
        package, _, leaf = f"aopcore.{MOVES[name]}".rpartition(".")
        bound = alias or name
        moved.setdefault(package, []).append(leaf if bound == leaf else f"{leaf} as {bound}")
    if not moved:
        return match.group(0)
    lines = [f"from aopcore import {', '.join(staying)}"] if staying else []
    lines += [f"from {package} import {', '.join(items)}" for package, items in sorted(moved.items())]
    lines[0] += comment
    return "\n".join(indent + line for line in lines)


def rewrite_text(text: str) -> str:
    text = FROM_AOPCORE.sub(_split_from_import, text)
    for pattern, replacement in RULES:
        text = pattern.sub(replacement, text)
    return text


def text_files(root: Path) -> list[Path]:
    out = []
    for rel in git(root, "ls-files", "-co", "--exclude-standard").splitlines():
        path = root / rel
        if rel in SKIPPED or not path.is_file() or path.is_symlink():
            continue
        if path.suffix in TEXT_SUFFIXES or (not path.suffix and rel.startswith((".ci/", "scripts/"))):
            out.append(path)
    return out


def rewrite_tree(root: Path) -> list[Path]:
    changed = []
    for path in text_files(root):
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue
        if KEEP_MARK in text:
            continue
        new = rewrite_text(text)
        if new != text:
            path.write_text(new, encoding="utf-8")
            changed.append(path)
    return changed


# ---- 3. fixups, 4. aliases -------------------------------------------------------------------------------------------
def apply_fixups(root: Path) -> list[Path]:
    changed, problems = [], []
    for rel, pairs in FIXUPS.items():
        path = root / rel
        if not path.exists():
            problems.append(f"{rel}: missing (a fixup names it)")
            continue
        text = original = path.read_text(encoding="utf-8")
        for old, new in pairs:
            if old in text and not (old in new and new in text):  # (the new text may contain the old, or start it)
                text = text.replace(old, new)
            elif new not in text:
                problems.append(f"{rel}: neither the old nor the new text of a fixup is there: {old.strip()!r}")
        if text != original:
            path.write_text(text, encoding="utf-8")
            changed.append(path)
    if problems:
        raise MoveError(
            "fixups failed (the files have moved; fix the table and run again):\n  " + "\n  ".join(problems)
        )
    return changed


def write_aliases(root: Path) -> list[Path]:
    path = root / "aopcore" / "_moved.py"
    text = path.read_text(encoding="utf-8")
    block = re.search(r"(# BEGIN MOVED[^\n]*\n)(.*?)(# END MOVED)", text, re.S)
    if block is None:
        raise MoveError("aopcore/_moved.py has no '# BEGIN MOVED' ... '# END MOVED' block")
    table = dict(re.findall(r'"(aopcore\.[\w.]+)": "(aopcore\.[\w.]+)"', block.group(2)))
    table.update({f"aopcore.{o}": f"aopcore.{n}" for o, n in MOVES.items()})
    body = "MOVED: dict[str, str] = {\n" + "".join(f'    "{o}": "{n}",\n' for o, n in sorted(table.items())) + "}\n"
    new = text[: block.start(2)] + body + text[block.end(2) :]
    changed = []
    if new != text:
        path.write_text(new, encoding="utf-8")
        changed.append(path)
    init = root / "aopcore" / "__init__.py"
    text = init.read_text(encoding="utf-8")
    if "from aopcore._moved import" not in text:
        doc = ast.get_docstring(ast.parse(text), clean=False)
        end = ast.parse(text).body[0].end_lineno if doc is not None else 0
        lines = text.splitlines(keepends=True)
        lines.insert(end, ("\n" if end else "") + INIT_HOOK + "\n")
        init.write_text("".join(lines), encoding="utf-8")
        changed.append(init)
    return changed


# ---- 5. tidy -----------------------------------------------------------------------------------------------------
def tidy(root: Path) -> None:
    """Imports sorted and code formatted (the rewrite splits and renames imports), over every Python file: a file
    already tidy is left as it is, and a run stopped half-way is tidied by the next one."""
    ruff = shutil.which("ruff") or str(Path(sys.executable).with_name("ruff"))
    if not Path(ruff).is_file():
        print("move_core: ruff not found; sort the imports with `ruff check --select I --fix .`", file=sys.stderr)
        return
    subprocess.run([ruff, "check", "--select", "I", "--fix", "--force-exclude", "-q", "."], cwd=root)
    subprocess.run([ruff, "format", "--force-exclude", "-q", "."], cwd=root)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="say what would move; change nothing")
    args = parser.parse_args(argv)
    root = Path(git(Path(__file__).resolve().parent, "rev-parse", "--show-toplevel").strip())
    pending = plan_moves(root)
    if args.check:
        for old, new in pending:
            print(f"{old.relative_to(root)} -> {new.relative_to(root)}")
        print(f"{len(pending)} to move")
        return 0
    changed = absolute_imports(root)
    move_files(root, pending)
    changed += rewrite_tree(root) + apply_fixups(root) + write_aliases(root)
    tidy(root)
    print(f"moved {len(pending)}, rewrote {len({*changed})} files")
    return 0


if __name__ == "__main__":
    sys.exit(main())
