"""The configuration reference, generated from the pydantic models so it cannot drift from the code.

Covers the core sections, the data sources, and every installed plugin's options (built-in ones
by component kind, third-party ones grouped by the distribution that installed them), with the
bounds each numeric option enforces. ``plugin_details`` is the same for one implementation.
"""

from __future__ import annotations

import types
import typing
from typing import Any

import annotated_types as at
from pydantic import BaseModel
from pydantic_core import PydanticUndefined

from aopcore.engine.config import DataSection, EvaluationSection, ExperimentSection, SourceTable
from aopcore.options import option_kind
from aopcore.registry import Implementation, Registry

CORE_DIST = "aopcore"
KIND_SECTION = {
    "trainer": "[trainer]",
    "reward": "[reward]",
    "feedback": "[feedback]",
    "judge": "[judge]",
    "embedder": "[embedder]",
    "curriculum": "[arms.NAME]",
}

DATA_SOURCES_TEXT = """\
`data.heldout` and `data.test_prompts` name a data source:

- a **path** (relative to the config file) to a file or a folder of files: JSON Lines (`.jsonl`, gzipped
  `.jsonl.gz`), JSON, Parquet or CSV, in any schema below;
- `builtin:NAME`: data shipped with aopcore (`builtin:heldout`, `builtin:test-prompts`);
- `hf:ID[:CONFIG][:SPLIT]`: a hub data set read through `datasets` (split default `train`), e.g.
  `hf:Anthropic/hh-rlhf:harmless-base:test`, `hf:stanfordnlp/SHP::test`;
- `SCHEME:ARG` for any other installed data source (table below).

Schemas recognised without configuration: HH-RLHF (`chosen` dialogues: the prompt is the dialogue up to
the last `Assistant:` turn; the category comes from the subset in the path or config name, `harmless-base`
-> harmless, `helpful-*` -> helpful), SHP (`history` + `domain`, one question per `post_id`), Dolly
(`instruction` + `category`) and plain `id`/`text`/`category`. Anything else takes a field mapping:
`test_prompts = {source = "exports/questions.csv", text = "question", id = "qid", category = "topic"}`.
`aopcore validate` reads every source and prints how many questions per category came in."""


def _fmt(tp: Any) -> str:
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is typing.Annotated:
        return _fmt(args[0])
    if origin in (typing.Union, types.UnionType):
        return " | ".join(_fmt(a) for a in args)
    if origin is typing.Literal:
        return "Literal[" + ", ".join(repr(a) for a in args) + "]"
    if origin is not None:
        return f"{getattr(origin, '__name__', str(origin))}[{', '.join(_fmt(a) for a in args)}]"
    if tp is type(None):
        return "None"
    return getattr(tp, "__name__", str(tp).replace("typing.", ""))


def _type_name(annotation: Any) -> str:
    text = "data spec | table" if "SourceTable" in str(annotation) else _fmt(annotation)
    return text.replace("|", "\\|")


def bounds(field: Any) -> str:
    """``>= 1``, ``> 0, <= 1``: the numeric and length constraints a field enforces."""
    out = []
    for m in field.metadata:
        for name, sym in (("gt", ">"), ("ge", ">="), ("lt", "<"), ("le", "<=")):
            value = getattr(m, name, None)
            if value is not None and isinstance(m, (at.Gt, at.Ge, at.Lt, at.Le, at.Interval)):
                out.append(f"{sym} {value}")
        if isinstance(m, at.MinLen):
            out.append(f"at least {m.min_length} item(s)")
        pattern = getattr(m, "pattern", None)
        if pattern:
            out.append(f"matches {pattern}")
    return ", ".join(out)


def _default(field: Any) -> str:
    if field.default is not PydanticUndefined:
        return repr(field.default)
    if field.default_factory is not None:
        return repr(field.default_factory())
    return "required"


def _rows(model: type[BaseModel], prefix: str = "") -> list[tuple[str, str, str, str, str]]:
    rows = []
    for name, field in model.model_fields.items():
        annotation = field.annotation
        nested = [
            a
            for a in (typing.get_args(annotation) or (annotation,))
            if isinstance(a, type) and issubclass(a, BaseModel)
        ]
        if nested:
            rows += _rows(nested[0], f"{prefix}{name}.")
            continue
        kind = option_kind(field)
        type_name = {
            "path": "path",
            "file": "file path",
            "folder": "folder path",
            "output path": "output path",
            "data": "data spec",
        }.get(kind or "", _type_name(annotation))
        if kind and "None" in str(annotation):
            type_name += " \\| None"
        desc = (field.description or "").replace("|", "\\|").replace("\n", " ")
        rows.append((f"{prefix}{name}", type_name, _default(field), bounds(field), desc))
    return rows


def _table(model: type[BaseModel]) -> list[str]:
    rows = _rows(model)
    if not rows:
        return ["No options.", ""]
    lines = ["| key | type | default | bounds | description |", "| --- | --- | --- | --- | --- |"]
    lines += [f"| `{k}` | {t} | `{d}` | {b} | {desc} |" for k, t, d, b, desc in rows]
    return [*lines, ""]


def _impl_block(impl: Implementation, level: str = "###", *, origin: bool = False) -> list[str]:
    title = f"{level} `{impl.name}`"
    if origin:
        title += f" ({KIND_SECTION.get(impl.kind, impl.kind)})"
    out = [title, ""]
    if impl.description:
        out += [impl.description, ""]
    if impl.kind == "data":
        return out
    return out + _table(impl.options)


def config_reference(registry: Registry, distributions: list[str] | None = None) -> str:
    """The whole reference; ``distributions`` limits the plugins shown (the docs page holds ``["aopcore"]``).

    Without ``aopcore`` among ``distributions`` (a plugin author's ``--distribution NAME``) only those
    distributions' plugins and data sources are printed: the core sections are docs/configuration.md.
    """
    keep = (lambda impl: impl.distribution in distributions) if distributions else (lambda impl: True)
    with_core = distributions is None or CORE_DIST in distributions
    sources = [
        impl for impl in sorted(registry.implementations.get("data", {}).values(), key=lambda i: i.name) if keep(impl)
    ]
    source_rows = ["| scheme | from | description |", "| --- | --- | --- |"]
    for impl in sources:
        note = " (paths without a scheme)" if impl.name == "file" else ""
        source_rows.append(f"| `{impl.name}:`{note} | {impl.distribution} | {impl.description} |")
    if with_core:
        out = [
            "# Configuration reference",
            "",
            "Generated from the option models by `aopcore config-reference`; do not edit by hand.",
            'A component section names its plugin (`plugin = "ppo"`) and sets that plugin\'s options beside it;',
            'an arm names its curriculum (`curriculum = "aop"`, default: the arm\'s name). Nested tables',
            "(e.g. `[trainer.generation]`) appear here with dotted keys. Relative paths are relative to the config file;",
            "`aopcore validate` checks every bound, path and data source before anything loads.",
            "",
        ]
        for title, model in (
            ("[experiment]", ExperimentSection),
            ("[data]", DataSection),
            ("[evaluation]", EvaluationSection),
        ):
            out += [f"## {title}", "", *_table(model)]
        out += [
            "## Data sources",
            "",
            DATA_SOURCES_TEXT,
            "",
            "A data source table (`heldout = {source = ..., text = ...}`):",
            "",
            *_table(SourceTable),
            *source_rows,
            "",
        ]
    else:
        out = [
            f"# Configuration reference: {', '.join(distributions or [])}",
            "",
            "Generated from the option models by `aopcore config-reference`; the core sections, the data-source",
            "syntax and the built-in plugins are `aopcore config-reference --distribution aopcore` (docs/configuration.md).",
            "",
        ]
        if sources:
            out += ["## Data sources", "", *source_rows, ""]
    for kind, section in KIND_SECTION.items():
        impls = [i for i in registry.implementations[kind].values() if i.distribution == CORE_DIST and keep(i)]
        if impls:
            out += [f"## {section} plugins", ""]
            for impl in sorted(impls, key=lambda i: i.name):
                out += _impl_block(impl)
    others: dict[tuple[str, str], list[Implementation]] = {}
    for impl in registry.all():
        if impl.distribution != CORE_DIST and keep(impl) and impl.kind != "data":
            others.setdefault((impl.distribution, impl.version), []).append(impl)
    if others:
        level = "##" if not with_core else "###"
        if with_core:
            out += ["## Plugins from other packages", ""]
        for (dist, version), impls in sorted(others.items()):
            out += [f"{level} {dist} {version}".rstrip(), ""]
            for impl in impls:
                out += _impl_block(impl, level + "#", origin=True)
    return "\n".join(out).rstrip() + "\n"


def plugin_details(registry: Registry, name: str) -> str:
    """``aopcore plugins --details NAME``: every implementation of that name (any kind), with its options."""
    from aopcore.errors import InputError

    found = [impl for impl in registry.all() if impl.name == name]
    if not found:
        import difflib

        names = sorted({impl.name for impl in registry.all()})
        close = difflib.get_close_matches(name, names, n=3, cutoff=0.5)
        hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        raise InputError(f"no plugin implementation named {name!r}{hint} (see `aopcore plugins`)")
    out = []
    for impl in found:
        origin = f"{impl.distribution} {impl.version}".strip()
        out += [
            f"{impl.name} ({impl.kind}, config section {KIND_SECTION.get(impl.kind, '[data] ' + impl.name + ':ARG')})",
            f"  from: {origin} (plugin module {impl.plugin})",
        ]
        if impl.description:
            out.append(f"  {impl.description}")
        if impl.kind != "data":
            rows = _rows(impl.options)
            out.append("  options:" if rows else "  options: none")
            for key, type_name, default, bound, desc in rows:
                extra = f"; {bound}" if bound else ""
                out.append(
                    f"    {key} ({type_name.replace(chr(92), '')}, default {default}{extra})"
                    + (f": {desc}" if desc else "")
                )
        out.append("")
    return "\n".join(out)
