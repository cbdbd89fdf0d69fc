"""Checkpoints of Hugging Face policies: a full folder, or a pointer to a base model for an untouched policy_0."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from aopcore_hf.models import DeviceChoice, load_causal_lm

POINTER = "base_model.json"


def write_pointer(out: Path, model: str) -> None:
    (out / POINTER).write_text(json.dumps({"model": model}))


def policy_source(path: Path) -> str:
    pointer = path / POINTER
    if pointer.exists():
        return json.loads(pointer.read_text())["model"]
    return str(path)


class PolicyCache:
    """Keeps the most recently loaded policy: evaluation and test answers reuse the model just trained."""

    def __init__(self) -> None:
        self._key: tuple[str, float] | None = None
        self._value: tuple[Any, Any] | None = None

    def load(self, path: Path, choice: DeviceChoice):
        marker = path / POINTER if (path / POINTER).exists() else path / "config.json"
        key = (str(path.resolve()), marker.stat().st_mtime if marker.exists() else 0.0)
        if key != self._key:
            self._value = None
            self._value = load_causal_lm(policy_source(path), choice)
            self._key = key
        return self._value


def save_policy(model, tokenizer, out: Path) -> None:
    """Weights and tokenizer into ``out``, with the modes the umask allows (save_pretrained may write 0600)."""
    from aopcore.storage.store import follow_umask

    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    follow_umask(out)
