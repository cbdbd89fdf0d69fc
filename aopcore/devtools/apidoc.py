"""The plugin API reference (docs/api.md), generated from the code's docstrings and type hints so it cannot drift.

``aopcore api-reference > docs/api.md`` writes it; ``tests/core/test_apidoc.py`` fails when the file
differs from what the code says, and when a public field has no description. Docstrings use
the Google layout (``Args:``, ``Returns:``, ``Raises:``, ``Attributes:``); Sphinx roles such as
:class:`~aopcore.records.Prompt` become code spans.
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import importlib
import inspect
import re
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

SECTIONS = ("Args", "Arguments", "Returns", "Raises", "Attributes", "Yields")
_ROLE = re.compile(r":(?:class|meth|func|data|mod|attr|exc):`(~?)([^`]+)`")
_SECTION = re.compile(rf"^({'|'.join(SECTIONS)}):\s*$")
_ITEM = re.compile(r"^(\*{0,2}[A-Za-z_][\w, .*]*?)(?: \(([^)]*)\))?:\s+(.*)$")


def _roles(text: str) -> str:
    text = _ROLE.sub(lambda m: f"`{m.group(2).rsplit('.', 1)[-1] if m.group(1) else m.group(2)}`", text)
    return re.sub(r"``([^`]+)``", r"`\1`", text)


def doc_text(obj: Any) -> str:
    """An object's docstring as Markdown (for a family's own section, ``register_api_pages``)."""
    return _roles(inspect.cleandoc(obj.__doc__ or ""))


def split_docstring(doc: str | None) -> tuple[str, dict[str, list[tuple[str, str]]]]:
    """(body, sections): the free text, and each Google section as (name, text) items (name "" for plain text)."""
    lines = inspect.cleandoc(doc or "").splitlines()
    body: list[str] = []
    sections: dict[str, list[tuple[str, str]]] = {}
    current: list[tuple[str, str]] | None = None
    for line in lines:
        m = _SECTION.match(line)
        if m:
            current = sections.setdefault(m.group(1).replace("Arguments", "Args"), [])
            continue
        if current is not None:
            if not line.strip():
                current = None
                body.append("")
                continue
            stripped = line.strip()
            indent = len(line) - len(line.lstrip())
            item = _ITEM.match(stripped)
            if indent <= 4 and item:
                current.append((item.group(1), item.group(3)))
            elif current:
                name, text = current[-1]
                current[-1] = (name, f"{text} {stripped}")
            else:
                current.append(("", stripped))
            continue
        body.append(line)
    return "\n".join(body).strip(), sections


def _render_doc(doc: str | None, *, skip: tuple[str, ...] = ()) -> list[str]:
    body, sections = split_docstring(doc)
    out = [_roles(body), ""] if body else []
    for name in ("Args", "Returns", "Yields", "Raises", "Attributes"):
        if name not in sections or name in skip:
            continue
        out.append(f"*{name}:*")
        out.append("")
        for item, text in sections[name]:
            out.append(
                f"- `{item}`: {_roles(text)}"
                if item and name != "Returns"
                else f"- {_roles(f'{item}: {text}' if item else text)}"
            )
        out.append("")
    return out


def _annotation(a: Any) -> str:
    if a is inspect.Parameter.empty:
        return ""
    text = a if isinstance(a, str) else getattr(a, "__name__", None) or repr(a)
    return str(text).replace("typing.", "").replace("collections.abc.", "")


def signature(fn: Callable[..., Any], name: str | None = None, *, drop_self: bool = True) -> str:
    """``name(arg: type = default, *, kw: type) -> type`` from the function's signature, annotations as written."""
    sig = inspect.signature(fn)
    parts = []
    star = False
    for p in sig.parameters.values():
        if (drop_self and p.name == "self") or p.name.startswith("_"):  # private keywords are not the API
            continue
        text = p.name
        if p.kind is p.VAR_POSITIONAL:
            text, star = f"*{p.name}", True
        elif p.kind is p.VAR_KEYWORD:
            text = f"**{p.name}"
        elif p.kind is p.KEYWORD_ONLY and not star:
            parts.append("*")
            star = True
        ann = _annotation(p.annotation)
        text += f": {ann}" if ann else ""
        if p.default is not inspect.Parameter.empty:
            text += f" = {p.default!r}"
        parts.append(text)
    ret = _annotation(sig.return_annotation)
    return f"{name or fn.__name__}({', '.join(parts)})" + (f" -> {ret}" if ret else "")


def _field_default(f: dataclasses.Field) -> str:
    if f.default is not dataclasses.MISSING:
        return f"`{f.default!r}`"
    if f.default_factory is not dataclasses.MISSING:
        return f"`{f.default_factory()!r}`"
    return "required"


def field_descriptions(cls: type) -> dict[str, str]:
    """Field name -> description, from the class docstring's ``Attributes:`` section."""
    _, sections = split_docstring(cls.__doc__)
    return {name: text for name, text in sections.get("Attributes", []) if name}


def dataclass_section(cls: type, title: str | None = None) -> list[str]:
    out = [f"### `{title or cls.__name__}`", "", *_render_doc(cls.__doc__, skip=("Attributes",))]
    described = field_descriptions(cls)
    out += ["| field | type | default | description |", "| --- | --- | --- | --- |"]
    for f in dataclasses.fields(cls):
        ftype = _annotation(f.type).replace("|", "\\|")
        desc = _roles(described.get(f.name, "")).replace("|", "\\|")
        out.append(f"| `{f.name}` | `{ftype}` | {_field_default(f).replace('|', chr(92) + '|')} | {desc} |")
    return [*out, ""]


def _methods(cls: type) -> list[str]:
    out = []
    for name, fn in cls.__dict__.items():
        if name.startswith("_") or not callable(fn):
            continue
        out += [
            f"#### `{cls.__name__}.{name}`",
            "",
            "```python",
            signature(fn, name),
            "```",
            "",
            *_render_doc(fn.__doc__),
        ]
    return out


def class_section(cls: type[Any], title: str | None = None, *, methods: bool = True, init: bool = False) -> list[str]:
    out = [f"### `{title or cls.__name__}`", ""]
    if init:
        out += ["```python", signature(cls.__init__, cls.__name__), "```", ""]
    out += _render_doc(cls.__doc__)
    return out + (_methods(cls) if methods else [])


def function_section(fn: Callable[..., Any], title: str | None = None) -> list[str]:
    return [f"### `{title or fn.__name__}`", "", "```python", signature(fn), "```", "", *_render_doc(fn.__doc__)]


def module_attribute_docs(module: Any) -> dict[str, str]:
    """Docstrings written under module-level assignments (``X = ...`` then a string), read from the source."""
    tree = ast.parse(inspect.getsource(module))
    docs: dict[str, str] = {}
    body = tree.body
    for node, nxt in zip(body, body[1:]):
        if (
            isinstance(node, ast.Assign)
            and len(node.targets) == 1
            and isinstance(node.targets[0], ast.Name)
            and isinstance(nxt, ast.Expr)
            and isinstance(nxt.value, ast.Constant)
            and isinstance(nxt.value.value, str)
        ):
            docs[node.targets[0].id] = nxt.value.value
    return docs


def module_assignments(module: Any) -> list[str]:
    """Names assigned at module level, in source order."""
    tree = ast.parse(inspect.getsource(module))
    return [
        n.targets[0].id
        for n in tree.body
        if isinstance(n, ast.Assign) and len(n.targets) == 1 and isinstance(n.targets[0], ast.Name)
    ]


def _intro() -> list[str]:
    return [
        "# Plugin API reference",
        "",
        "Generated from the code's docstrings and type hints by `aopcore api-reference`; do not edit by hand",
        "(`tests/core/test_apidoc.py` fails when this page is out of date). The guide is [plugins.md](plugins.md);",
        "configuration keys are in [configuration.md](configuration.md).",
        "",
        "Everything here is importable from `aopcore` unless a module is named. Types are written as in the",
        "source (`X | None` means the value may be None).",
        "",
        "- [Protocols](#protocols): "
        + ", ".join(
            f"[`{n}`](#{n.lower()})"
            for n in ("PromptCurriculum", "PolicyTrainer", "RewardModel", "FeedbackLLM", "Judge", "Embedder")
        ),
        "- [Curriculum context and records](#curriculum-context-and-records): `CurriculumContext`, `Prompt`, `Provenance`, "
        "`EvalRecord`, `Question`, `JudgeItem`, `Verdict`, `TrainStats`, JSONL helpers",
        "- [Errors and exit statuses](#errors-and-exit-statuses): `InputError`, `RuntimeFailure`",
        "- [Cost accounting](#cost-accounting): `record_usage`",
        "- [Hooks](#hooks): the `register_*` hook specs, `LazyFactory`",
        "- [Options the framework understands](#options-the-framework-understands): path types, `PreflightContext`",
        "- [Testing helpers](#testing-helpers): `aopcore.testing`",
        "",
    ]


def api_reference() -> str:
    """The whole reference as Markdown."""
    from aopcore import errors, hookspecs, ledger, protocols, records, registry, testing

    out = _intro()
    out += ["## Protocols", "", _roles(inspect.cleandoc(protocols.__doc__ or "")), ""]
    for cls in (
        protocols.PromptCurriculum,
        protocols.PolicyTrainer,
        protocols.RewardModel,
        protocols.FeedbackLLM,
        protocols.Judge,
        protocols.Embedder,
    ):
        out += class_section(cls)

    out += ["## Curriculum context and records", "", _roles(inspect.cleandoc(records.__doc__ or "")), ""]
    out += dataclass_section(protocols.CurriculumContext)
    for record in (
        records.Prompt,
        records.Provenance,
        records.EvalRecord,
        records.Question,
        records.JudgeItem,
        records.Verdict,
        records.TrainStats,
    ):
        out += dataclass_section(record)
    out += ["### JSONL helpers (`aopcore.records`)", ""]
    for fn in (
        records.write_jsonl,
        records.read_jsonl,
        records.iter_jsonl,
        records.load_questions,
        records.load_records,
    ):
        out += [f"#### `{fn.__name__}`", "", "```python", signature(fn), "```", "", *_render_doc(fn.__doc__)]

    out += ["## Errors and exit statuses", "", _roles(inspect.cleandoc(errors.__doc__ or "")), ""]
    for error in (errors.InputError, errors.RuntimeFailure, errors.AopcoreError):
        out += class_section(error, methods=False, init=error is errors.InputError)

    out += ["## Cost accounting", "", _roles(inspect.cleandoc(ledger.__doc__ or "")), ""]
    out += function_section(ledger.record_usage)

    out += [
        "## Hooks",
        "",
        _roles(inspect.cleandoc(hookspecs.__doc__ or "")),
        "",
        "Implement a hook with the `aopcore.hookimpl` marker in the module your entry point names:",
        "",
        "```python",
        "from aopcore import hookimpl",
        "",
        "@hookimpl",
        "def register_curricula(register):",
        '    register("my-curriculum", MyCurriculum)',
        "```",
        "",
    ]
    out += [
        "### `register(name, factory, *, options=None, description=None)`",
        "",
        *_render_doc(hookspecs.Register.__doc__),
    ]
    for name, fn in inspect.getmembers(hookspecs, inspect.isfunction):
        if name.startswith("register_"):
            out += [f"### `{name}`", "", "```python", signature(fn), "```", "", *_render_doc(fn.__doc__)]
    out += class_section(registry.LazyFactory, "aopcore.registry.LazyFactory", methods=False, init=True)

    out += _loops_section()

    out += _options_section()

    out += ["## Testing helpers", "", _roles(inspect.cleandoc(testing.__doc__ or "")), ""]
    for name in testing.__all__:
        obj = getattr(testing, name)
        if inspect.isclass(obj):
            out += class_section(obj, f"aopcore.testing.{name}", init=True)
        else:
            out += function_section(obj, f"aopcore.testing.{name}")
    text = "\n".join(out)
    return re.sub(r"\n{3,}", "\n\n", text).rstrip() + "\n"


def _loops_section() -> list[str]:
    """Curricula in a loop aopcore does not own: the session, the per-step channel (aopcore.steps), the TRL adapter."""
    from aopcore import steps
    from aopcore.engine import session

    out = ["## Curricula in your own training loop", "", _roles(inspect.cleandoc(session.__doc__ or "")), ""]
    out += class_section(session.CurriculumSession, "aopcore.CurriculumSession", init=True)
    out += ["## The per-step channel (`aopcore.steps`)", "", _roles(inspect.cleandoc(steps.__doc__ or "")), ""]
    for cls in (steps.RolloutGroup, steps.StepBatch, steps.StepSelector, steps.PlannedSelector, steps.PromptStream):
        out += class_section(cls, f"aopcore.steps.{cls.__name__}", init=cls is not steps.StepSelector)
    for fn in (
        steps.open_stream,
        steps.group_rollouts,
        steps.read_batches,
        steps.write_batches,
        steps.is_online,
        steps.observes_steps,
    ):
        out += function_section(fn, f"aopcore.steps.{fn.__name__}")
    from aopcore.registry import registered_pairs  # families add their pages; the core imports none of them

    for _name, lines in registered_pairs("register_api_pages"):
        out += lines()
    return out


def _options_section() -> list[str]:
    try:
        options = importlib.import_module("aopcore.options")
    except ImportError:  # the options machinery is optional for this page
        return []
    out = [
        "## Options the framework understands",
        "",
        _roles(inspect.cleandoc(options.__doc__ or "")),
        "",
        "| type (`aopcore.options`) | definition | meaning |",
        "| --- | --- | --- |",
    ]
    docs = module_attribute_docs(options)
    for name in module_assignments(options):
        value = getattr(options, name, None)
        meta = getattr(value, "__metadata__", None)
        if value is None or not meta:
            continue
        kind = getattr(meta[0], "kind", None)
        fallback = f"As `InputPath`, and it must be a {kind}." if kind in ("file", "folder") else ""
        doc = _roles(inspect.cleandoc(docs.get(name, fallback))).replace("\n", " ").replace("|", "\\|")
        definition = f"Annotated[{value.__origin__.__name__}, {meta[0]!r}]".replace("|", "\\|")
        out.append(f"| `{name}` | `{definition}` | {doc} |")
    out.append("")
    if hasattr(options, "PreflightContext"):
        out += dataclass_section(options.PreflightContext, "aopcore.options.PreflightContext")
    return out


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("api-reference", help="print the plugin API reference (Markdown) from the code's docstrings")
    p.set_defaults(func=_cmd_api_reference)


def _cmd_api_reference(args: argparse.Namespace) -> int:
    sys.stdout.write(api_reference())
    return 0


def undocumented_fields(classes: Iterable[type]) -> list[str]:
    """``Class.field`` for every dataclass field without a description in its class's ``Attributes:``."""
    missing = []
    for cls in classes:
        described = field_descriptions(cls)
        missing += [f"{cls.__name__}.{f.name}" for f in dataclasses.fields(cls) if f.name not in described]
    return missing


if __name__ == "__main__":  # pragma: no cover
    Path("docs/api.md").write_text(api_reference())
