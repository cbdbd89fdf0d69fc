"""TOML configuration: parse, validate against core and plugin option models, report every problem.

A component section names its plugin (``plugin = "ppo"``) and carries that
plugin's options beside it; an arm section names a curriculum (default: the
arm's own name). Problems come back as ``file:line: toml.path: message`` lines.
"""
from __future__ import annotations

import difflib
import os
import re
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from aopcore.errors import InputError

COMPONENT_SECTIONS = ("trainer", "reward", "feedback", "judge", "embedder")
REQUIRED_SECTIONS = ("trainer", "reward", "judge")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ExperimentSection(_Strict):
    name: str = Field(description="Run name; the run directory is <output_dir>/<name>.")
    output_dir: str = Field("runs", description="Folder that holds run directories (relative to the config file).")
    seed: int = Field(0, description="Base seed; every stage derives its own seed from it and its stage id.")
    iterations: int = Field(4, ge=1, description="RLHF iterations per arm (paper: 4).")
    records_per_iteration: int = Field(2000, ge=1, description="Prompts each arm trains on per iteration (paper: 2000).")
    passes: int = Field(2, ge=1, description="How many times each prompt is seen per iteration (paper: 2).")
    keep_checkpoints: Literal["all", "last"] = Field("all", description="Keep every iteration's policy checkpoint, or only the latest one per arm.")
    plugins: list[str] = Field(default_factory=list, description="Extra plugin modules to load by import name.")
    plugin_paths: list[str] = Field(default_factory=list, description="Folders added to sys.path before loading `plugins`.")


class DataSection(_Strict):
    heldout: str = Field("builtin:heldout", description="Held-out questions evaluated every iteration: JSONL path, builtin:NAME or hf:DATASET.")
    heldout_per_category: int | None = Field(None, ge=1, description="Keep at most this many held-out questions per category.")
    test_prompts: str = Field("builtin:test-prompts", description="Prompts the judge compares arms on: JSONL path, builtin:NAME or hf:DATASET.")
    test_size: int | None = Field(None, ge=1, description="Use the first N test prompts (paper: 2000).")
    categories: list[str] | None = Field(None, description="Restrict held-out questions and curricula to these categories; default: all categories of the held-out questions.")


class EvaluationSection(_Strict):
    pairs: list[tuple[str, str]] | None = Field(None, description="Arm pairs to judge at each iteration; default: every pair.")
    iterations: list[int] | None = Field(None, description="Iterations to judge; default: all.")
    both_orders: bool = Field(True, description="Judge each pair in both orders; a win counts only when both agree.")
    samples_in_report: int = Field(3, ge=0, description="Sample generations shown per arm in the report.")


class ArmSpec(BaseModel):
    model_config = ConfigDict(extra="allow")
    curriculum: str | None = None


class ComponentSpec(BaseModel):
    model_config = ConfigDict(extra="allow")
    plugin: str


class ExperimentConfig(_Strict):
    experiment: ExperimentSection
    data: DataSection = Field(default_factory=DataSection)
    evaluation: EvaluationSection = Field(default_factory=EvaluationSection)
    arms: dict[str, ArmSpec]
    trainer: ComponentSpec
    reward: ComponentSpec
    judge: ComponentSpec
    feedback: ComponentSpec | None = None
    embedder: ComponentSpec | None = None


class ConfigProblems(InputError):
    """All problems of one config, each a ``file:line: path: message`` line."""


class TomlLocator:
    """Maps TOML paths like ``trainer.batch_size`` to line numbers for error messages."""

    _header = re.compile(r"^\s*\[\[?\s*([^\]]+?)\s*\]\]?\s*(#.*)?$")
    _key = re.compile(r"^\s*([A-Za-z0-9_\-\"'.]+)\s*=")

    def __init__(self, text: str) -> None:
        self.lines: dict[tuple[str, ...], int] = {}
        table: tuple[str, ...] = ()
        for lineno, line in enumerate(text.splitlines(), start=1):
            if m := self._header.match(line):
                table = tuple(p.strip().strip("\"'") for p in m.group(1).split("."))
                self.lines.setdefault(table, lineno)
            elif m := self._key.match(line):
                key = tuple(p.strip().strip("\"'") for p in m.group(1).split("."))
                self.lines.setdefault(table + key, lineno)

    def line(self, path: tuple[Any, ...]) -> int | None:
        parts = tuple(str(p) for p in path)
        while parts:
            if parts in self.lines:
                return self.lines[parts]
            parts = parts[:-1]
        return None


class ConfigReport:
    """Collects problems while validating so they can all be shown at once."""

    def __init__(self, file: Path, locator: TomlLocator) -> None:
        self.file = file
        self.locator = locator
        self.problems: list[str] = []

    def add(self, path: tuple[Any, ...], message: str) -> None:
        line = self.locator.line(path)
        where = f"{self.file}:{line}" if line else f"{self.file}"
        dotted = ".".join(str(p) for p in path)
        self.problems.append(f"{where}: {dotted}: {message}" if dotted else f"{where}: {message}")

    def add_validation_error(self, prefix: tuple[Any, ...], error: ValidationError, model: type[BaseModel] | None) -> None:
        for err in error.errors():
            loc = prefix + tuple(err["loc"])
            if err["type"] == "extra_forbidden":
                message = "unknown key"
                fields = list(model.model_fields) if model is not None and len(err["loc"]) == 1 else []
                close = difflib.get_close_matches(str(err["loc"][-1]), fields, n=1)
                if close:
                    message += f" (did you mean {close[0]!r}?)"
            elif err["type"] == "missing":
                message = "required key is missing"
            elif err["type"] == "value_error" and not err["loc"]:
                # a check across fields (a model validator): its message names the fields; the input is the whole section
                message = err["msg"].removeprefix("Value error, ")
            else:
                message = f"{err['msg']} (got {err.get('input')!r})"
            self.add(loc, message)

    def raise_if_any(self) -> None:
        if self.problems:
            raise ConfigProblems(*self.problems)


def read_toml(file: Path) -> tuple[dict[str, Any], str]:
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise InputError(f"{file}: cannot read config ({exc.strerror or exc})") from None
    try:
        return tomllib.loads(text), text
    except tomllib.TOMLDecodeError as exc:
        m = re.search(r"line (\d+)", str(exc))
        where = f"{file}:{m.group(1)}" if m else str(file)
        raise InputError(f"{where}: invalid TOML ({exc})") from None


def apply_overrides(raw: dict[str, Any], overrides: list[str]) -> None:
    """Apply ``dotted.key=TOML value`` overrides (as from ``aopcore run --set``) to a parsed config."""
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise InputError(f"--set {item!r}: expected KEY=VALUE, e.g. experiment.iterations=2")
        try:
            parsed = tomllib.loads(f"v = {value.strip()}")["v"]
        except tomllib.TOMLDecodeError:
            parsed = value.strip()  # bare words are strings: --set trainer.model=gpt2
        node = raw
        parts = key.strip().split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise InputError(f"--set {item!r}: {part} is not a table")
        node[parts[-1]] = parsed


def parse_config(file: Path, overrides: list[str] | None = None) -> tuple[ExperimentConfig | None, dict[str, Any], ConfigReport]:
    """Validate the core structure; plugin options are checked later, against the registry."""
    raw, text = read_toml(file)
    apply_overrides(raw, overrides or [])
    report = ConfigReport(file, TomlLocator(text))
    try:
        return ExperimentConfig.model_validate(raw), raw, report
    except ValidationError as exc:
        report.add_validation_error((), exc, ExperimentConfig)
        # keep going with whatever parts are valid so that plugin problems are reported too
        return None, raw, report


def missing_secrets(options: BaseModel) -> list[tuple[str, str]]:
    """Option fields naming environment variables (``*_env``) whose variable is unset."""
    out = []
    for name in type(options).model_fields:
        value = getattr(options, name)
        if name.endswith("_env") and isinstance(value, str) and value and not os.environ.get(value):
            out.append((name, value))
    return out
