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
import typing
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AliasChoices, BaseModel, ConfigDict, Discriminator, Field, Tag, ValidationError, model_validator

from aopcore.errors import InputError

COMPONENT_SECTIONS = ("trainer", "reward", "feedback", "judge", "embedder")
REQUIRED_SECTIONS = ("trainer", "reward", "judge")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ExperimentSection(_Strict):
    name: str = Field(description="Run name; the run directory is <output_dir>/<name>.")
    output_dir: str = Field("runs", description="Folder that holds run directories (relative to the config file).")
    seed: int = Field(0, description="Base seed; every stage derives its own seed from it and its stage id.")
    seeds: list[Annotated[int, Field(ge=0)]] | None = Field(
        None,
        min_length=1,
        description="Run once per seed, e.g. [0, 1, 2, 3, 4] (instead of `seed`): a resumable sub-run <name>/seed-<s>/ "
        "each, then an aggregate report with 95% intervals across seeds in <name>/aggregate/.",
    )
    share_sft: bool = Field(
        True,
        description="With `seeds`: train the SFT policy once (with the first seed) and start "
        "every seed from it, so seeds differ only in the RL phase being compared.",
    )
    iterations: int = Field(4, ge=1, description="RLHF iterations per arm (paper: 4).")
    records_per_iteration: int = Field(
        2000, ge=1, description="Prompts each arm trains on per iteration (paper: 2000)."
    )
    passes: int = Field(2, ge=1, description="How many times each prompt is seen per iteration (paper: 2).")
    keep_checkpoints: Literal["all", "last"] = Field(
        "all", description="Keep every iteration's policy checkpoint, or only the latest one per arm."
    )
    plugins: list[str] = Field(default_factory=list, description="Extra plugin modules to load by import name.")
    plugin_paths: list[str] = Field(
        default_factory=list, description="Folders added to sys.path before loading `plugins`."
    )
    executor: Literal["local", "ray"] = Field(
        "local",
        description="Where stages run: `local` (one at a time, in this process) or `ray` "
        "(independent stages at once as Ray tasks; needs `pip install 'aopcore[ray]'`). "
        "Either resumes the other's run directory.",
    )
    ray_address: str | None = Field(
        None,
        description='With executor = "ray": the cluster to join (`auto`, `ray://HOST:10001`); '
        "default: RAY_ADDRESS, else a Ray instance started on this machine.",
    )

    @model_validator(mode="after")
    def _one_way_to_seed(self) -> ExperimentSection:
        from pydantic_core import PydanticCustomError

        if self.seeds is not None and "seed" in self.model_fields_set:
            raise PydanticCustomError(
                "aopcore_input",
                "seed and seeds are exclusive: use seeds = [...] for a multi-seed run, or seed = N for a single run",
            )
        if self.seeds is not None and len(set(self.seeds)) != len(self.seeds):
            raise PydanticCustomError("aopcore_input", "seeds must be distinct (got {seeds})", {"seeds": self.seeds})
        return self


class SourceTable(_Strict):
    """A data source with an explicit field mapping, for data in a schema aopcore does not recognise."""

    source: str = Field(
        validation_alias=AliasChoices("source", "path"),
        description="The data: a path (file or folder) or scheme:ARG, as for a plain string entry; `path` is accepted too.",
    )
    text: str | None = Field(None, description="Column holding the question text.")
    id: str | None = Field(None, description="Column holding a unique id (default: the row number).")
    category: str | None = Field(None, description="Column holding the category.")
    default_category: str | None = Field(None, description="Category of rows without one (default: general).")

    @model_validator(mode="after")
    def _text_first(self) -> SourceTable:
        if self.text is None and (self.id or self.category):
            raise ValueError("a field mapping needs `text` (the column holding the question) as well")
        return self


def _source_kind(value: Any) -> str:
    return "~table" if isinstance(value, (dict, SourceTable)) else "~spec"


# a string spec or a table; tags starting with "~" are left out of error locations
DataSource = Annotated[
    Annotated[str, Tag("~spec")] | Annotated[SourceTable, Tag("~table")], Discriminator(_source_kind)
]

DATA_SPEC_HELP = (
    "a path (file or folder: .jsonl, .jsonl.gz, .json, .parquet, .csv), builtin:NAME, "
    "hf:ID[:CONFIG][:SPLIT], another installed scheme, or a table {source = ..., text = COLUMN, ...}"
)


class DataSection(_Strict):
    heldout: DataSource = Field(
        "builtin:heldout", description=f"Held-out questions evaluated every iteration: {DATA_SPEC_HELP}."
    )
    heldout_per_category: int | None = Field(
        None, ge=1, description="Keep at most this many held-out questions per category."
    )
    test_prompts: DataSource = Field(
        "builtin:test-prompts", description=f"Prompts the judge compares arms on: {DATA_SPEC_HELP}."
    )
    test_size: int | None = Field(
        None, ge=1, description="Use the first N test prompts (paper: 2000); more than the data hold is an error."
    )
    categories: list[str] | None = Field(
        None,
        min_length=1,
        description="Restrict held-out questions and curricula to these categories; default: all categories of the held-out questions.",
    )


class EvaluationSection(_Strict):
    pairs: list[tuple[str, str]] | None = Field(
        None, description="Arm pairs to judge at each iteration; default: every pair."
    )
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


class SessionConfig(ExperimentConfig):
    """A config read by :meth:`aopcore.CurriculumSession.from_config`: the sections of ``aopcore run``, with no
    trainer or judge needed (the training loop is the user's); present ones are validated and not used."""

    trainer: ComponentSpec | None = None  # type: ignore[assignment]
    reward: ComponentSpec | None = None  # type: ignore[assignment]
    judge: ComponentSpec | None = None  # type: ignore[assignment]


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


def _model_at(model: type[BaseModel] | None, path: list[Any]) -> type[BaseModel] | None:
    """The options model of a nested table (``experiment`` -> ExperimentSection, ``generation`` -> GenerationOptions)."""
    for part in path:
        if model is None:
            return None
        field = model.model_fields.get(str(part))
        args = typing.get_args(field.annotation) if field else ()
        found = [
            a
            for a in (args or ((field.annotation,) if field else ()))
            if isinstance(a, type) and issubclass(a, BaseModel)
        ]
        model = found[0] if found else None
    return model


class ConfigReport:
    """Collects problems while validating so they can all be shown at once."""

    def __init__(self, file: Path, locator: TomlLocator, overrides: dict[tuple[str, ...], str] | None = None) -> None:
        self.file = file
        self.locator = locator
        self.overrides = overrides or {}  # TOML path -> the `--set` item that put its value there
        self.problems: list[str] = []

    def _override_for(self, path: tuple[Any, ...]) -> str | None:
        """The `--set` item whose key is ``path`` or a table above it: the value came from there, not the file."""
        parts = tuple(str(p) for p in path)
        while parts:
            if parts in self.overrides:
                return self.overrides[parts]
            parts = parts[:-1]
        return None

    def add(self, path: tuple[Any, ...], message: str) -> None:
        if (item := self._override_for(path)) is not None:
            where = f"--set {item}"
        else:
            line = self.locator.line(path)
            where = f"{self.file}:{line}" if line else f"{self.file}"
        dotted = ".".join(str(p) for p in path)
        self.problems.append(f"{where}: {dotted}: {message}" if dotted else f"{where}: {message}")

    def add_validation_error(
        self, prefix: tuple[Any, ...], error: ValidationError, model: type[BaseModel] | None
    ) -> None:
        for err in error.errors():
            loc = prefix + tuple(p for p in err["loc"] if not (isinstance(p, str) and p.startswith("~")))
            if err["type"] == "extra_forbidden":
                message = "unknown key"
                inner = _model_at(model, [p for p in err["loc"][:-1] if not (isinstance(p, str) and p.startswith("~"))])
                fields = list(inner.model_fields) if inner is not None else []
                close = difflib.get_close_matches(str(err["loc"][-1]), fields, n=1)
                if close:
                    message += f" (did you mean {close[0]!r}?)"
            elif err["type"] == "missing":
                message = "required key is missing"
            elif err["type"] == "aopcore_input":  # the framework's own option types (paths, data specs)
                message = err["msg"]
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


# keys that exclude each other: overriding one drops the other from the file (`--set experiment.seeds=[0,1]`
# on a config that says `seed = 0`)
EXCLUSIVE_KEYS: dict[tuple[str, ...], tuple[str, ...]] = {
    ("experiment", "seeds"): ("experiment", "seed"),
    ("experiment", "seed"): ("experiment", "seeds"),
}


def apply_overrides(raw: dict[str, Any], overrides: list[str]) -> dict[tuple[str, ...], str]:
    """Apply ``dotted.key=TOML value`` overrides (as from ``aopcore run --set``) to a parsed config.

    Returns which TOML path each override set, so problems with those values name the override, not a file line.
    """
    applied: dict[tuple[str, ...], str] = {}
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise InputError(f"--set {item!r}: expected KEY=VALUE, e.g. experiment.iterations=2")
        try:
            parsed = tomllib.loads(f"v = {value.strip()}")["v"]
        except tomllib.TOMLDecodeError:
            parsed = value.strip()  # bare words are strings: --set trainer.model=gpt2
        node = raw
        parts = tuple(p.strip() for p in key.strip().split("."))
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise InputError(f"--set {item!r}: {part} is not a table")
        node[parts[-1]] = parsed
        if (other := EXCLUSIVE_KEYS.get(parts)) is not None and other not in applied:
            node.pop(other[-1], None)  # the override replaces the file's choice; two overrides still clash
        applied[parts] = item.strip()
    return applied


def parse_config(
    file: Path,
    overrides: list[str] | None = None,
    *,
    model: type[ExperimentConfig] | None = None,
) -> tuple[ExperimentConfig | None, dict[str, Any], ConfigReport]:
    """Validate the core structure (``model``: ExperimentConfig, or a variant such as the curriculum session's);
    plugin options are checked later, against the registry."""
    model = model or ExperimentConfig
    raw, text = read_toml(file)
    applied = apply_overrides(raw, overrides or [])
    report = ConfigReport(file, TomlLocator(text), applied)
    try:
        return model.model_validate(raw), raw, report
    except ValidationError as exc:
        report.add_validation_error((), exc, model)
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
