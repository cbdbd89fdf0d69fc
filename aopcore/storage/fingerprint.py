"""A fingerprint of everything that shapes a run's results, so a run directory never answers a different question.

The experiment stores ``fingerprint.json`` in the run directory on the first run and compares
it on every rerun. A difference in budget, seed, data, judging plan, curriculum or component
configuration refuses the rerun with one line listing what changed; ``allow_changes=True``
(``aopcore run --allow-changed-config``) continues anyway and records the override in
``fingerprint-changes.jsonl``. Package versions only warn: a bug-fix release of torch should not
lock a long run, but the change is still recorded.

How an object is described (:func:`describe`):

- an object with a ``fingerprint()`` method: whatever it returns (JSON-able);
- pydantic models: ``model_dump(mode="json")``; dataclasses: their fields;
- an aopcore plugin (an object whose ``options`` attribute is a pydantic model): its class and
  options — everything else it holds is derived from them;
- any other object: its class and its public, JSON-able attributes, recursively (two levels of
  plain objects); attributes named like credentials (``key``, ``token``, ``secret``, ...) are never
  read, standard-library objects (locks, loggers) count by class, and long lists are reduced to
  their length and a hash.
"""

from __future__ import annotations

import dataclasses
import enum
import functools
import hashlib
import json
import logging
import re
import sys
import types
from collections.abc import Mapping, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

from pydantic import BaseModel

log = logging.getLogger("aopcore")

VERSIONED_PACKAGES = ("aopcore", "torch", "transformers", "trl", "accelerate", "sentence-transformers", "numpy")
MAX_DEPTH = 4
MAX_LIST = 64  # longer lists are fingerprinted by length and hash, so the diff stays one line
PLAIN_DEPTH = 2  # plain objects nested deeper are described by their class only
SECRET_NAME = re.compile(
    r"(^|_)(api_?key|key|secret|password|passwd|credentials?|cookie|auth|(access|api|auth|hf|bearer|refresh)_?token)$",
    re.IGNORECASE,
)
SKIPPED = object()


def _json_hash(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()[:12]


def questions_digest(questions: Sequence[Any]) -> dict[str, Any]:
    """Held-out or test questions as a count and a hash of (id, text, category)."""
    rows = [[str(getattr(q, "id", "")), str(getattr(q, "text", q)), str(getattr(q, "category", ""))] for q in questions]
    return {"questions": len(rows), "sha256": _json_hash(rows)}


def class_name(obj: Any) -> str:
    cls = obj if isinstance(obj, type) else type(obj)
    return f"{cls.__module__}.{cls.__qualname__}"


def describe(obj: Any, depth: int = 0) -> Any:
    """A JSON-able description of ``obj``'s configuration (see the module docstring); SKIPPED if it has none."""
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, enum.Enum):
        return describe(obj.value, depth)
    if forwards_attributes(obj) and not callable(getattr(type(obj), "fingerprint", None)):
        return class_name(obj)  # a proxy (e.g. a lazily built plugin): looking further would build it
    own = getattr(obj, "fingerprint", None)
    if callable(own) and not isinstance(obj, type):
        return json.loads(json.dumps(own(), sort_keys=True, default=str))
    if depth > MAX_DEPTH:
        return SKIPPED
    if isinstance(obj, BaseModel):
        return obj.model_dump(mode="json")
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return _clean(
            {f.name: describe(getattr(obj, f.name), depth + 1) for f in dataclasses.fields(obj) if _public(f.name)}
        )
    if isinstance(obj, Mapping):
        return _clean({str(k): describe(v, depth + 1) for k, v in obj.items() if _public(str(k))})
    if isinstance(obj, (list, tuple, set, frozenset)):
        items = sorted(obj, key=str) if isinstance(obj, (set, frozenset)) else list(obj)
        described = [describe(v, depth + 1) for v in items]
        described = [v for v in described if v is not SKIPPED]
        if len(described) > MAX_LIST:
            return {"items": len(described), "sha256": _json_hash(described)}
        return described
    if isinstance(obj, type):
        return class_name(obj)
    if isinstance(obj, (types.FunctionType, types.BuiltinFunctionType, types.MethodType, functools.partial)):
        return _function_name(obj)  # a plain function: its name is what can be compared
    if type(obj).__module__.split(".")[0] in ("torch", "numpy", "transformers", "tokenizers"):
        return SKIPPED  # models, tensors, arrays: state, not configuration
    if type(obj).__module__.split(".")[0] in sys.stdlib_module_names or depth > PLAIN_DEPTH:
        return class_name(obj)  # locks, loggers, clients deep inside: their class, not their state
    out: dict[str, Any] = {"class": class_name(obj)}
    options = getattr(obj, "options", None)
    if isinstance(options, BaseModel):  # the plugin convention: the options are the configuration
        out.update(options.model_dump(mode="json"))
        return out
    attrs = getattr(obj, "__dict__", {})
    for key in sorted(attrs):
        if not _public(key):
            continue
        value = describe(attrs[key], depth + 1)
        if value is not SKIPPED:
            out[key] = value
    return out


def _public(name: str) -> bool:
    """Private state, and anything named like a credential, is never read into a fingerprint."""
    return not name.startswith("_") and not SECRET_NAME.search(name)


def forwards_attributes(obj: Any) -> bool:
    """A proxy (a class with ``__getattr__``, e.g. the CLI's lazily built plugins): inspecting it would build it."""
    return any("__getattr__" in vars(cls) for cls in type(obj).__mro__[:-1])


def _function_name(fn: Any) -> str:
    if isinstance(fn, functools.partial):
        return f"partial({_function_name(fn.func)})"
    return f"{getattr(fn, '__module__', '?')}.{getattr(fn, '__qualname__', repr(fn))}"


def _clean(data: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in data.items() if v is not SKIPPED}


def package_versions() -> dict[str, str]:
    out = {}
    for name in VERSIONED_PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return out


def flatten(data: Any, prefix: str = "") -> dict[str, Any]:
    """Nested dicts as dotted keys; lists and digests stay leaves (they are compared whole)."""
    if isinstance(data, dict) and data and not _is_digest(data):
        out: dict[str, Any] = {}
        for key, value in data.items():
            out.update(flatten(value, f"{prefix}.{key}" if prefix else str(key)))
        return out
    return {prefix: data}


def _is_digest(value: Any) -> bool:
    return isinstance(value, dict) and "sha256" in value and set(value) <= {"questions", "items", "sha256"}


def _show(value: Any) -> str:
    if _is_digest(value):
        n = value.get("questions", value.get("items"))
        unit = "questions" if "questions" in value else "items"
        return f"{n} {unit} (hash {value['sha256'][:8]})"
    if value is None:
        return "(none)"
    text = json.dumps(value, sort_keys=True, default=str) if not isinstance(value, str) else value
    return text if len(text) <= 60 else text[:57] + "..."


def _show_change(old: Any, new: Any) -> str:
    if _is_digest(old) and _is_digest(new) and ("questions" in old) == ("questions" in new):
        unit = "questions" if "questions" in new else "items"
        n_old, n_new = old.get(unit), new.get(unit)
        counts = f"{n_old} -> {n_new}" if n_old != n_new else f"{n_new}, same count,"
        return f"{counts} {unit} (hash {old['sha256'][:8]} -> {new['sha256'][:8]})"
    return f"{_show(old)} -> {_show(new)}"


def differences(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """What changed between two fingerprints, one ``key: old -> new`` item each (versions excluded).

    A key the CLI's config snapshot (``config.*``) and the experiment's own fields both describe is listed once,
    under its plain name.
    """
    a = flatten({k: v for k, v in old.items() if k != "versions"})
    b = flatten({k: v for k, v in new.items() if k != "versions"})
    keys = {key for key in set(a) | set(b) if key not in a or key not in b or a[key] != b[key]}
    out = []
    for key in sorted(keys):
        if key.startswith("config.") and key[len("config.") :] in keys:
            continue
        if key not in a:
            out.append(f"{key}: (absent) -> {_show(b[key])}")
        elif key not in b:
            out.append(f"{key}: {_show(a[key])} -> (absent)")
        elif a[key] != b[key]:
            out.append(f"{key}: {_show_change(a[key], b[key])}")
    return out


def version_differences(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    a, b = old.get("versions", {}), new.get("versions", {})
    return [
        f"{name} {a.get(name, '(absent)')} -> {b.get(name, '(absent)')}"
        for name in sorted(set(a) | set(b))
        if a.get(name) != b.get(name)
    ]


def normalise(data: Any) -> Any:
    """The fingerprint as it reads back from JSON (tuples become lists, keys strings)."""
    return json.loads(json.dumps(data, sort_keys=True, default=str))


# ---- the run directory ----------------------------------------------------------------------
FILE = "fingerprint.json"
CHANGES = "fingerprint-changes.jsonl"
COMPONENT_ROLES = ("trainer", "reward", "judge", "feedback", "embedder")
SHOWN_CHANGES = 8


def experiment_fingerprint(exp: Any, snapshot: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Everything of an :class:`~aopcore.Experiment` that shapes its results (its ``settings``, and its ``parts`` as
    the stages use them).

    ``snapshot`` (the CLI's resolved config) describes components and arms as configured
    (``plugin`` and options); without it the objects themselves are described.
    """
    settings, parts = exp.settings, exp.parts
    judging = settings.judging
    fp: dict[str, Any] = {
        "experiment": {
            "seed": settings.seed,
            "iterations": settings.budget.iterations,
            "records_per_iteration": settings.budget.records_per_iteration,
            "passes": settings.budget.passes,
        },
        "data": {
            "heldout": questions_digest(parts.heldout),
            "test_prompts": questions_digest(parts.test_prompts),
            "categories": list(settings.categories),
        },
        "evaluation": {
            "pairs": [list(p) for p in judging.pairs] if judging.pairs else None,
            "iterations": list(judging.iterations) if judging.iterations else None,
            "both_orders": judging.both_orders,
        },
    }
    for role in COMPONENT_ROLES:
        if snapshot and isinstance(snapshot.get(role), Mapping):
            fp[role] = dict(snapshot[role])
        else:
            fp[role] = describe(getattr(parts, role, None))
    if snapshot and isinstance(snapshot.get("arms"), Mapping):
        fp["arms"] = dict(snapshot["arms"])
    else:
        fp["arms"] = {arm: describe(c) for arm, c in parts.arms.items()}
    rest = _without(snapshot or {}, {*COMPONENT_ROLES, "arms"})
    if rest:  # the rest of a given snapshot (the CLI's data specs, a library user's own keys)
        fp["config"] = rest
    fp["versions"] = package_versions()
    return normalise(fp)


# snapshot keys that do not change what a run computes: changing them never refuses a rerun
NOT_SHAPING = {
    "experiment": {"name", "output_dir", "keep_checkpoints", "plugins", "plugin_paths", "seeds"},
    "evaluation": {"samples_in_report"},
}


def _without(snapshot: Mapping[str, Any], sections: set[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in snapshot.items():
        if key in sections:
            continue
        if isinstance(value, Mapping) and key in NOT_SHAPING:
            value = {k: v for k, v in value.items() if k not in NOT_SHAPING[key]}
            if not value:
                continue
        out[key] = value
    return out


def check_run_dir(
    root: Path,
    fingerprint: dict[str, Any],
    *,
    allow_changes: bool = False,
    remedy: str | None = None,
    what: str = "run directory",
) -> list[str]:
    """Compare with the fingerprint stored in ``root``; refuse a different setup unless ``allow_changes``.

    Stores the fingerprint on the first run. Returns the changes that were allowed (empty when none). ``remedy`` is
    how the caller's user continues anyway (a session names its own argument, not the CLI's flag).
    """
    from aopcore._moved import modernise
    from aopcore.errors import InputError
    from aopcore.storage.store import atomic_write_json, atomic_write_text

    root = Path(root)
    path = root / FILE
    fingerprint = normalise(fingerprint)
    if not path.exists():
        atomic_write_json(path, fingerprint)
        return []
    old = modernise(json.loads(path.read_text(encoding="utf-8")))  # module paths from before a move read as now
    changed = differences(old, fingerprint)
    versions = version_differences(old, fingerprint)
    if changed and not allow_changes:
        shown = "; ".join(changed[:SHOWN_CHANGES]) + (
            f"; and {len(changed) - SHOWN_CHANGES} more" if len(changed) > SHOWN_CHANGES else ""
        )
        raise InputError(
            f"{root}: this {what} holds results of a different config ({shown}); rerun with the same setup, "
            + (
                remedy
                or "choose another run name, or continue anyway with Experiment(..., allow_changes=True) or "
                "`aopcore run --allow-changed-config`"
            )
            + f" (recorded in {CHANGES})"
        )
    if versions:
        log.warning(
            "%s: package versions changed since this run started (%s); continuing, recorded in %s",
            root,
            "; ".join(versions),
            CHANGES,
        )
    if changed or versions:
        import time

        entry = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "changes": changed,
            "versions": versions,
            "allowed_by": "allow_changes" if changed else None,
            "previous": old,
        }
        history = (root / CHANGES).read_text(encoding="utf-8") if (root / CHANGES).exists() else ""
        atomic_write_text(root / CHANGES, history + json.dumps(entry, sort_keys=True, default=str) + "\n")
        atomic_write_json(path, fingerprint)
        if changed:
            log.warning("%s: continuing with a changed setup (%s); recorded in %s", root, "; ".join(changed), CHANGES)
    return changed
