"""Run-directory integrity: hashes of what each stage wrote, checked before anything is reused.

A stage record (``stages/<id>.json``) is the commit point: it is written last, after the stage's outputs
were renamed into place, and it holds ``outputs``: the sha256 and size of every file the stage wrote
(paths relative to the run directory). A file truncated, flipped or deleted later (a full disk, a bad copy,
a hand edit, bit rot) no longer matches its record. ``aopcore run`` checks every finished stage before it
reuses it and recomputes a damaged stage and every stage that depends on it (logging which and why);
``aopcore verify RUN_DIR`` reports the same without changing anything; ``aopcore report`` and
``human-eval`` name the first damaged file instead of failing on it.

Records written before output hashes existed have no ``outputs``: they are reused unchecked (counted as
"not verifiable"). Files a stage record lists under ``removes`` (checkpoints ``keep_checkpoints = "last"``
prunes on purpose) are not damage when absent.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

CHUNK = 1 << 20


def file_digest(path: Path) -> str:
    """sha256 of a file, read in 1 MiB chunks (policy weights may be many GB)."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(CHUNK):
            h.update(chunk)
    return h.hexdigest()


def output_hashes(root: Path, paths: Iterable[str | Path]) -> dict[str, dict[str, Any]]:
    """``{relative path: {"sha256": ..., "bytes": ...}}`` for every file under ``paths`` (files or folders).

    Paths that do not exist are left out (a stage lists what it may write). Hidden files (``.*``, e.g. the
    temporaries of interrupted writes) are not outputs.
    """
    root = Path(root)
    out: dict[str, dict[str, Any]] = {}
    for rel in paths:
        path = root / rel
        files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path] if path.is_file() else []
        for f in files:
            name = f.relative_to(root).as_posix()
            if any(part.startswith(".") for part in Path(name).parts):
                continue
            out[name] = {"sha256": file_digest(f), "bytes": f.stat().st_size}
    return dict(sorted(out.items()))


@dataclass(frozen=True)
class Damage:
    """One damaged output: the stage whose record lists it, the file, and what is wrong with it."""

    stage: str
    path: str  # relative to the run directory
    problem: str

    def line(self, root: Path | None = None) -> str:
        where = Path(root) / self.path if root is not None else Path(self.path)
        return f"{where}: {self.problem} (output of stage {self.stage})"


@dataclass
class Verification:
    """What :func:`verify_run` found: damaged outputs, and how many stages and files were checked."""

    root: Path
    damage: list[Damage] = field(default_factory=list)
    stages: int = 0
    files: int = 0
    unverifiable: list[str] = field(default_factory=list)  # records without output hashes (older runs)

    @property
    def ok(self) -> bool:
        return not self.damage

    def damaged_stages(self) -> list[str]:
        return list(dict.fromkeys(d.stage for d in self.damage))


def check_file(root: Path, rel: str, want: Mapping[str, Any]) -> str | None:
    """What is wrong with one recorded output, or None when it matches its record."""
    path = Path(root) / rel
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        return "missing"
    except OSError as exc:
        return f"unreadable ({exc.strerror or exc})"
    if size != want.get("bytes", size):
        what = "truncated" if size < want["bytes"] else "grown"
        return f"{what} ({size} of {want['bytes']} bytes)"
    try:
        digest = file_digest(path)
    except OSError as exc:
        return f"unreadable ({exc.strerror or exc})"
    if digest != want.get("sha256"):
        return "changed (sha256 differs from the stage record)"
    return None


def read_record(path: Path) -> dict[str, Any] | None:
    """A stage record, or None when it is not valid JSON (itself damaged)."""
    try:
        record = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) else None


def removed_paths(records: Iterable[Mapping[str, Any]]) -> list[str]:
    """Paths finished stages removed on purpose (pruned checkpoints)."""
    return [p.rstrip("/") + "/" for r in records for p in r.get("removes", [])]


def check_record(root: Path, stage_id: str, record: Mapping[str, Any], removed: Iterable[str] = ()) -> list[Damage]:
    """Damage of one finished stage's outputs (empty when every recorded file matches)."""
    removed = tuple(removed)
    out = []
    for rel, want in (record.get("outputs") or {}).items():
        problem = check_file(root, rel, want)
        if problem == "missing" and any(rel.startswith(p) for p in removed):
            continue
        if problem:
            out.append(Damage(stage_id, rel, problem))
    return out


def stage_files(root: Path) -> dict[str, Path]:
    """Every stage record of a run directory by stage id (the id is taken from the file name)."""
    folder = Path(root) / "stages"
    if not folder.is_dir():
        return {}
    return {p.stem.replace("__", "/"): p for p in sorted(folder.glob("*.json"))}


def verify_run(root: Path, stage_ids: Iterable[str] | None = None) -> Verification:
    """Check the outputs of every finished stage (or of ``stage_ids`` only) against their records; read-only."""
    root = Path(root)
    files = stage_files(root)
    records = {sid: read_record(path) for sid, path in files.items()}
    removed = removed_paths(r for r in records.values() if r)
    result = Verification(root)
    wanted = None if stage_ids is None else set(stage_ids)
    for name, record in records.items():
        sid = record.get("stage", name) if record else name  # the id as recorded (arm names may hold "__")
        if wanted is not None and sid not in wanted:
            continue
        result.stages += 1
        if record is None:
            result.damage.append(
                Damage(sid, files[name].relative_to(root).as_posix(), "stage record is not valid JSON")
            )
            continue
        if "outputs" not in record:
            result.unverifiable.append(sid)
            continue
        result.files += sum(not any(f.startswith(p) for p in removed) for f in record["outputs"])
        result.damage += check_record(root, sid, record, removed)
    return result


def dependents(stages: Iterable[Any], damaged: Iterable[str]) -> list[str]:
    """The damaged stages and every stage that depends on them, directly or not, in the graph's order.

    ``stages`` are objects with ``id`` and ``deps`` (``Experiment.stages()``), in a topological order.
    """
    hit = set(damaged)
    out = []
    for stage in stages:
        if stage.id in hit or any(d in hit for d in stage.deps):
            hit.add(stage.id)
            out.append(stage.id)
    return out


def _recorded_ids(root: Path) -> list[str]:
    out = []
    for name, path in stage_files(root).items():
        record = read_record(path)
        out.append(record.get("stage", name) if record else name)
    return out


def run_roots(path: Path) -> list[Path]:
    """The run directories under ``path``: itself, or for a multi-seed run its shared SFT and every seed."""
    from aopcore.storage.rundir import RunLayout

    layout = RunLayout.of(path)
    if layout.manifest.exists():
        return [p for p in [layout.shared_sft, *layout.seed_folders()] if (p / "stages").is_dir()]
    return [layout.root]


def first_damage(path: Path, stages: Callable[[str], bool] | None = None) -> Damage | None:
    """The first damaged output of a run directory (or of any seed of a multi-seed one), or None.

    ``stages`` limits the check to the stages a command reads (e.g. only test answers)."""
    for root in run_roots(path):
        ids = None if stages is None else [s for s in _recorded_ids(root) if stages(s)]
        result = verify_run(root, ids)
        if result.damage:
            d = result.damage[0]
            return Damage(d.stage, os.path.relpath(root / d.path, path), d.problem)
    return None


def damaged_message(path: Path, damage: Damage) -> str:
    """One line for commands that read a run directory (report, human-eval): the file, and what to do."""
    return (
        f"{Path(path) / damage.path}: {damage.problem}, a damaged output of stage {damage.stage}; "
        f"rerun `aopcore run` with this run's config to recompute it (`aopcore verify {path}` lists all damage)"
    )
