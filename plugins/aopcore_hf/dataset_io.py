"""Data sources of the Hugging Face family: local files (``file``) and hub data sets (``hf``), read through ``datasets``.

- ``file`` (any spec without a scheme): a file or a folder of files in the formats ``datasets`` reads:
  JSON Lines (``.jsonl``, ``.jsonl.gz``), JSON, Parquet, CSV. JSON Lines are streamed line by line
  here so that a bad line is named ``file:line``; the other formats stream through ``datasets``.
- ``hf:ID[:CONFIG][:SPLIT]`` (split default ``train``), e.g. ``hf:Anthropic/hh-rlhf:harmless-base:test``
  or ``hf:stanfordnlp/SHP::test``; ``ID`` may also be a local folder in hub layout (streamed).

Rows become questions through :class:`aopcore.data.rows.RowMapper` (HH-RLHF, SHP, Dolly, plain, or a
field mapping). Also reads Dolly-format records for SFT (:func:`load_dolly`).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from aopcore import InputError, Question
from aopcore.data.rows import FieldMap, RowMapper, default_prefix, jsonl_rows
from aopcore.options import resolve_path
from aopcore_hf.models import hub_offline, hub_unreachable

DATA_DIR = Path(__file__).parent / "data"
DOLLY_FIELDS = ("instruction", "context", "response")
JSONL = (".jsonl", ".jsonl.gz", ".ndjson", ".ndjson.gz")
BUILDERS = {".json": "json", ".json.gz": "json", ".parquet": "parquet", ".csv": "csv", ".csv.gz": "csv"}
FORMATS = "JSON Lines (.jsonl, .jsonl.gz), JSON (.json), Parquet (.parquet), CSV (.csv)"
OFFLINE_HINT = (
    "with no network: set HF_HUB_OFFLINE=1 and HF_HOME to a cache that holds it, "
    "or download the files and give their local path"
)


def _format(path: Path) -> str | None:
    name = path.name.lower()
    if name.endswith(JSONL):
        return "jsonl"
    for suffix, builder in BUILDERS.items():
        if name.endswith(suffix):
            return builder
    return None


def data_files(path: Path) -> list[Path]:
    """The data files of a path: the file itself, or every supported file under a folder (sorted)."""
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.is_file() and _format(p) and not p.name.startswith("."))
        if not files:
            raise InputError(f"{path}: no data files in this folder ({FORMATS})")
        return files
    if not path.is_file():
        raise InputError(f"data file not found: {path}")
    if _format(path) is None:
        raise InputError(f"{path}: unknown data format (by the file name); use {FORMATS}")
    return [path]


def _datasets_error(exc: Exception) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text[:200]


def iter_rows(path: Path) -> Iterator[tuple[str, int, Any]]:
    """(where, row number, row) for every row of one file; JSON Lines by line, other formats through ``datasets``."""
    fmt = _format(path)
    if fmt == "jsonl":
        for lineno, row in jsonl_rows(path):
            yield f"{path}:{lineno}", lineno, row
        return
    try:
        from datasets import load_dataset
    except ImportError:
        raise InputError(f"{path}: reading {fmt} files needs the datasets package: pip install 'aopcore[hf]'") from None
    try:
        stream = load_dataset(fmt, data_files=str(path), split="train", streaming=True)
        for index, row in enumerate(stream, start=1):
            yield f"{path}: row {index}", index, row
    except InputError:
        raise
    except Exception as exc:  # pyarrow and datasets errors: one line naming the file
        raise InputError(f"{path}: cannot read as {fmt} ({_datasets_error(exc)})") from None


def load_files(arg: str, base_dir: Path, *, fields: FieldMap | None = None) -> Iterator[Question]:
    """Local files: `file:PATH` or just `PATH` (relative to the config file), a file or folder of .jsonl(.gz), .json, .parquet, .csv."""
    root = resolve_path(arg, base_dir)
    for path in data_files(root):
        hint = str(path.relative_to(root)) if path != root else str(path)
        mapper = RowMapper(fields, hint=hint if path != root else str(path), id_prefix=default_prefix(path))
        for where, index, row in iter_rows(path):
            question = mapper(row, index, where)
            if question is not None:
                yield question


def parse_hub_spec(spec: str) -> tuple[str, str | None, str]:
    """``ID[:CONFIG][:SPLIT]`` -> (id, config or None, split, default ``train``)."""
    parts = spec.split(":")
    hub_id = parts[0]
    subset = parts[1] if len(parts) > 1 and parts[1] else None
    split = parts[2] if len(parts) > 2 and parts[2] else "train"
    return hub_id, subset, split


def _load_hub(spec: str):
    """The split as a ``datasets`` object: a hub id is downloaded once into the cache (memory-mapped, so reading stays
    bounded, and HF_HUB_OFFLINE=1 finds it later); a local folder in hub layout is streamed, writing no cache."""
    try:
        from datasets import load_dataset
    except ImportError:
        raise InputError("hub data sets need the datasets package: pip install 'aopcore[hf]'") from None
    hub_id, subset, split = parse_hub_spec(spec)
    local = Path(hub_id).is_dir()
    kwargs: dict[str, Any] = {"split": split, "streaming": local}
    if subset:
        kwargs["data_dir" if hub_id == "Anthropic/hh-rlhf" else "name"] = subset
    offline = os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on")
    if not local and not offline and (reason := hub_unreachable()):
        # datasets would retry the hub for over a minute; the local cache is the only place left to look
        try:
            with hub_offline():
                return load_dataset(hub_id, **kwargs)
        except Exception:
            raise InputError(
                f"hub data set {spec!r} is not in the local cache and the hub cannot be reached ({reason}); "
                f"{OFFLINE_HINT}"
            ) from None
    try:
        return load_dataset(hub_id, **kwargs)
    except Exception as exc:  # not cached offline, no such data set, no such config or split
        if offline:
            raise InputError(
                f"hub data set {spec!r} is not in the local cache and HF_HUB_OFFLINE is set: point HF_HOME "
                "(or HF_DATASETS_CACHE) at a cache that holds it, or download the files and give their local path"
            ) from None
        raise InputError(f"hub data set {spec!r}: cannot load it ({_datasets_error(exc)}); {OFFLINE_HINT}") from None


def load_hub(arg: str, base_dir: Path, *, fields: FieldMap | None = None) -> Iterator[Question]:
    """Hub data sets through `datasets` (cached once, read memory-mapped): `hf:ID[:CONFIG][:SPLIT]` (split default train)."""
    hub_id, subset, split = parse_hub_spec(arg)
    mapper = RowMapper(
        fields, hint=f"{hub_id}:{subset or ''}", id_prefix=f"{subset or hub_id.rsplit('/', 1)[-1]}-{split}"
    )
    stream = _load_hub(arg)
    try:
        for index, row in enumerate(stream):
            question = mapper(row, index, f"hf:{arg} row {index}")
            if question is not None:
                yield question
    except InputError:
        raise
    except Exception as exc:
        raise InputError(f"hub data set {arg!r}: reading failed ({_datasets_error(exc)}); {OFFLINE_HINT}") from None


def _dolly_rows(spec: str, base_dir: Path | None) -> Iterable[tuple[str, Any]]:
    if spec.startswith("hf:"):
        for i, row in enumerate(_load_hub(spec[3:])):
            yield f"{spec} row {i}", row
        return
    if spec.startswith("builtin:"):
        name = spec.split(":", 1)[1]
        path = DATA_DIR / f"{name}.jsonl"
        if not path.is_file():
            known = ", ".join(sorted(p.stem for p in DATA_DIR.glob("*.jsonl")))
            raise InputError(f"no built-in Dolly data set {name!r} (built-ins: {known})")
        paths = [path]
    else:
        paths = data_files(resolve_path(spec.removeprefix("file:"), base_dir))
    for path in paths:
        for where, _, row in iter_rows(path):
            yield where, row


def load_dolly(spec: str, base_dir: Path | None = None, *, limit: int | None = None) -> list[dict[str, str]]:
    """Dolly-format records (instruction, context, response) from a file or folder, builtin:NAME or hf:ID."""
    rows: list[dict[str, str]] = []
    for where, row in _dolly_rows(spec, base_dir):
        if limit and len(rows) >= limit:
            break
        missing = [
            f for f in ("instruction", "response") if not isinstance(row, dict) or not isinstance(row.get(f), str)
        ]
        if missing:
            raise InputError(f"{where}: a Dolly (SFT) record needs field(s) {', '.join(missing)}")
        rows.append({k: row.get(k) or "" for k in DOLLY_FIELDS})
    if not rows:
        raise InputError(f"{spec}: no Dolly (SFT) records")
    return rows
