"""Rows to questions: the schemas the paper's data sets use, explicit field mapping, and JSON Lines reading.

Every data source (the core's ``builtin:``, the Hugging Face family's files and hub ids, a third
party's scheme) can turn rows into :class:`Question` objects with :class:`RowMapper`, so a schema is
recognised the same way wherever the rows come from. The core's own ``builtin:`` source is
:mod:`aopcore.data.builtin`.
"""

from __future__ import annotations

import gzip
import json
import re
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aopcore.errors import InputError
from aopcore.records import Question

LFS_POINTER = "version https://git-lfs.github.com/spec/"
HH_ASSISTANT = "\n\nAssistant:"
# HH-RLHF subsets -> category; red-team-attempts has another schema
HH_SUBSETS = {
    "harmless-base": "harmless",
    "helpful-base": "helpful",
    "helpful-online": "helpful",
    "helpful-rejection-sampled": "helpful",
}
SPLIT_SUFFIX = re.compile(r"_(train|test|validation)$")


@dataclass(frozen=True)
class FieldMap:
    """Which columns hold a question's text, id and category (from a ``[data]`` table such as
    ``heldout = {source = "q.csv", text = "question", category = "topic"}``); None: recognise the schema."""

    text: str | None = None
    id: str | None = None
    category: str | None = None
    default_category: str | None = None  # for rows without a category column

    @property
    def explicit(self) -> bool:
        return self.text is not None


def hh_prompt(dialogue: str) -> str:
    """The dialogue up to (and including) the last ``Assistant:`` marker."""
    cut = dialogue.rfind(HH_ASSISTANT)
    return dialogue[: cut + len(HH_ASSISTANT)].strip() if cut >= 0 else dialogue.strip()


def hh_subset(hint: str) -> str | None:
    """The HH-RLHF subset named in a file path or hub config name (``harmless-base/test.jsonl.gz``)."""
    for part in re.split(r"[/\\:]", hint):
        if part in HH_SUBSETS:
            return part
    return None


class RowMapper:
    """Turns the rows of one file or split into questions.

    Recognised without configuration: HH-RLHF (``chosen`` dialogue: the prompt up to the last
    assistant turn; category from the subset in ``hint``, e.g. ``harmless-base`` -> harmless),
    SHP (``history`` + ``domain``; one question per ``post_id``), Dolly (``instruction``,
    ``category``) and plain ``id``/``text``/``category``. ``fields`` maps anything else.
    ``where(index)`` names a row in error messages (``file:line``).
    """

    def __init__(self, fields: FieldMap | None = None, *, hint: str = "", id_prefix: str = "q") -> None:
        self.fields = fields or FieldMap()
        self.hint = hint
        self.id_prefix = id_prefix
        self.subset = hh_subset(hint)
        self._seen_posts: set[str] = set()

    def __call__(self, row: Any, index: int, where: str) -> Question | None:
        """The question of one row, None for a row that repeats one (SHP), InputError for a row that fits no schema."""
        if not isinstance(row, dict):
            raise InputError(f"{where}: a row must be an object, got {type(row).__name__}")
        f = self.fields
        if f.explicit:
            return self._mapped(row, index, where)
        if isinstance(row.get("chosen"), str):  # HH-RLHF
            category = f.default_category or HH_SUBSETS.get(self.subset or "", "helpful")
            return Question(f"{self.id_prefix}-{index}", hh_prompt(row["chosen"]), category)
        if isinstance(row.get("history"), str) and isinstance(
            row.get("domain"), str
        ):  # SHP: several comment pairs per post
            post = str(row.get("post_id", f"{self.id_prefix}-{index}"))
            if post in self._seen_posts:
                return None
            self._seen_posts.add(post)
            return Question(post, row["history"], SPLIT_SUFFIX.sub("", row["domain"]))
        if isinstance(row.get("instruction"), str):  # Dolly
            return Question(
                f"{self.id_prefix}-{index}",
                row["instruction"],
                str(row.get("category") or f.default_category or "general"),
            )
        if isinstance(row.get("text"), str):
            qid = row.get("id")
            if qid is None or qid == "":
                raise InputError(f"{where}: a question needs an 'id' (or map one: id = \"COLUMN\")")
            return Question(str(qid), row["text"], str(row.get("category") or f.default_category or "general"))
        columns = ", ".join(map(str, row)) or "none"
        raise InputError(
            f"{where}: no recognised schema (columns: {columns}); map the fields, e.g. "
            '{source = "...", text = "COLUMN", id = "COLUMN", category = "COLUMN"}'
        )

    def _mapped(self, row: dict[str, Any], index: int, where: str) -> Question:
        f = self.fields
        text = row.get(f.text or "")
        if not isinstance(text, str) or not text.strip():
            raise InputError(f"{where}: column {f.text!r} is missing or not text (columns: {', '.join(map(str, row))})")
        if f.id is not None:
            qid = row.get(f.id)
            if qid is None or qid == "":
                raise InputError(f"{where}: column {f.id!r} (the id) is missing")
        else:
            qid = f"{self.id_prefix}-{index}"
        if f.category is not None:
            category = row.get(f.category)
            if category is None or category == "":
                if f.default_category is None:
                    raise InputError(f"{where}: column {f.category!r} (the category) is missing")
                category = f.default_category
        else:
            category = f.default_category or "general"
        return Question(str(qid), text, str(category))


def open_bytes(path: Path):
    """Open a file for binary reading, gunzipping it when it starts with the gzip magic bytes."""
    with open(path, "rb") as fh:
        head = fh.read(2)
    return gzip.open(path, "rb") if head == b"\x1f\x8b" else open(path, "rb")


def json_problem(exc: json.JSONDecodeError) -> str:
    """``Expecting value at column 3``: some of json's messages end in "at", others do not."""
    at = " " if exc.msg.endswith(" at") else " at "
    return f"{exc.msg}{at}column {exc.colno}"


def jsonl_rows(path: Path) -> Iterator[tuple[int, Any]]:
    """(line number, value) for each non-blank line; streams, so memory stays bounded.

    Errors name the file and line: bad JSON, bad UTF-8, a corrupt or truncated gzip file, and a
    Git LFS pointer standing in for the data. Lines are read as bytes and decoded one at a time, so a
    bad byte is blamed on its own line, not on wherever a buffered text read happened to stop.
    """
    lineno = 0
    try:
        with open_bytes(path) as fh:
            for lineno, raw in enumerate(fh, start=1):
                try:
                    line = raw.decode("utf-8")
                except UnicodeDecodeError as exc:
                    raise InputError(
                        f"{path}:{lineno}: not UTF-8 text (byte 0x{raw[exc.start]:02x} at column "
                        f"{len(raw[: exc.start].decode('utf-8', 'replace')) + 1})"
                    ) from None
                if lineno == 1 and line.startswith(LFS_POINTER):
                    raise InputError(f"{path}: a Git LFS pointer, not the data: fetch the file itself (git lfs pull)")
                if not line.strip():
                    continue
                try:
                    yield lineno, json.loads(line)
                except json.JSONDecodeError as exc:
                    raise InputError(f"{path}:{lineno}: not valid JSON ({json_problem(exc)})") from None
    except (gzip.BadGzipFile, EOFError, zlib.error) as exc:
        # the line being read when the compressed data ran out or went bad is the one after the last whole line
        raise InputError(f"{path}:{lineno + 1}: corrupt gzip data ({exc or type(exc).__name__})") from None
    except OSError as exc:
        raise InputError(f"{path}: cannot read ({exc.strerror or exc})") from None


def questions_from_jsonl(
    path: Path, fields: FieldMap | None = None, *, hint: str | None = None, id_prefix: str | None = None
) -> Iterator[Question]:
    """Questions from a JSON Lines file (gzipped or not), streaming."""
    mapper = RowMapper(fields, hint=str(path) if hint is None else hint, id_prefix=id_prefix or default_prefix(path))
    for lineno, row in jsonl_rows(path):
        question = mapper(row, lineno, f"{path}:{lineno}")
        if question is not None:
            yield question


def default_prefix(path: Path) -> str:
    """Ids for rows without one: ``<subset>-<file stem>`` (``harmless-base-test``), so files in one folder do not clash."""
    stem = path.name.split(".")[0]
    subset = hh_subset(str(path))
    return f"{subset}-{stem}" if subset else stem
