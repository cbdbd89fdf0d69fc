"""The configuration reference, generated from the pydantic models so it cannot drift from the code."""
from __future__ import annotations

import typing
from typing import Any

from pydantic import BaseModel
from pydantic_core import PydanticUndefined

from aopcore.config import DataSection, EvaluationSection, ExperimentSection
from aopcore.registry import Registry

KIND_SECTION = {"trainer": "[trainer]", "reward": "[reward]", "feedback": "[feedback]", "judge": "[judge]",
                "embedder": "[embedder]", "curriculum": "[arms.NAME]"}


def _type_name(annotation: Any) -> str:
    text = getattr(annotation, "__name__", None) if not typing.get_args(annotation) else None
    text = text or str(annotation).replace("typing.", "")
    return text.replace("NoneType", "None").replace("|", " \\| ")


def _rows(model: type[BaseModel], prefix: str = "") -> list[str]:
    rows = []
    for name, field in model.model_fields.items():
        annotation = field.annotation
        nested = [a for a in (typing.get_args(annotation) or (annotation,)) if isinstance(a, type) and issubclass(a, BaseModel)]
        if nested:
            rows += _rows(nested[0], f"{prefix}{name}.")
            continue
        if field.default is not PydanticUndefined:
            default = repr(field.default)
        elif field.default_factory is not None:
            default = repr(field.default_factory())
        else:
            default = "required"
        desc = (field.description or "").replace("|", "\\|").replace("\n", " ")
        rows.append(f"| `{prefix}{name}` | {_type_name(annotation)} | `{default}` | {desc} |")
    return rows


def _table(model: type[BaseModel]) -> list[str]:
    rows = _rows(model)
    if not rows:
        return ["No options.", ""]
    return ["| key | type | default | description |", "| --- | --- | --- | --- |", *rows, ""]


def config_reference(registry: Registry) -> str:
    out = ["# Configuration reference", "",
           "Generated from the option models by `aopcore config-reference`; do not edit by hand.",
           "A component section names its plugin (`plugin = \"ppo\"`) and sets that plugin's options beside it;",
           "an arm names its curriculum (`curriculum = \"aop\"`, default: the arm's name). Nested tables",
           "(e.g. `[trainer.generation]`) appear here with dotted keys. Relative paths are relative to the config file.", ""]
    for title, model in (("[experiment]", ExperimentSection), ("[data]", DataSection), ("[evaluation]", EvaluationSection)):
        out += [f"## {title}", "", *_table(model)]
    for kind, section in KIND_SECTION.items():
        out += [f"## {section} plugins", ""]
        for impl in sorted(registry.implementations[kind].values(), key=lambda i: i.name):
            if impl.distribution != "aopcore":
                continue  # third-party plugins document themselves
            out += [f"### `{impl.name}`", "", impl.description or "", "", *_table(impl.options)]
    return "\n".join(out).rstrip() + "\n"
