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
        self._key: tuple | None = None
        self._value: tuple[Any, Any] | None = None

    @staticmethod
    def _key_of(path: Path, choice: DeviceChoice) -> tuple[int, ...] | tuple[str, ...]:
        """The folder by identity, not by name: a trainer writes into a temporary folder that the stage then renames
        to its place (``atomic_directory``), and a rename keeps the inodes, so the evaluation that reads the renamed
        folder finds the model just trained. The marker file's inode and mtime tell a rewritten folder apart."""
        marker = path / POINTER if (path / POINTER).exists() else path / "config.json"
        if not marker.exists():
            return (str(path), choice.device, str(choice.dtype))
        folder, file = path.stat(), marker.stat()
        return (folder.st_dev, folder.st_ino, file.st_ino, file.st_mtime_ns, choice.device, str(choice.dtype))

    def load(self, path: Path, choice: DeviceChoice):
        key = self._key_of(path, choice)
        if key != self._key:
            self.clear()  # the old model goes before the new one loads: never two in memory
            self._value = load_causal_lm(policy_source(path), choice)
            self._key = key
        return self._value

    def holds(self, path: Path, choice: DeviceChoice) -> bool:
        return self._value is not None and self._key == self._key_of(path, choice)

    def clear(self) -> None:
        self._key, self._value = None, None

    def take(self, path: Path, choice: DeviceChoice) -> tuple[Any, Any] | None:
        """The held (model, tokenizer) of ``path`` for a caller that will change the model (a LoRA stage trains
        adapters on it), so the cache lets go of it; None, and the cache emptied, when it holds another."""
        held = self._value if self.holds(path, choice) else None
        self.clear()
        return held

    def put(self, path: Path, choice: DeviceChoice, model: Any, tokenizer: Any) -> None:
        """Keep a model just saved to ``path`` (its weights are what the folder holds): the next load reads no file."""
        self._key, self._value = self._key_of(path, choice), (model, tokenizer)


def save_policy(model, tokenizer, out: Path) -> None:
    """Weights and tokenizer into ``out``, with the modes the umask allows (save_pretrained may write 0600)."""
    from aopcore.oserrors import environment_error
    from aopcore.storage.store import follow_umask

    try:
        model.save_pretrained(out)
        tokenizer.save_pretrained(out)
    except Exception as exc:
        # safetensors reports a full disk as its own error: made the OSError the CLI prints as one line, with the folder
        cause = environment_error(exc, out)
        if cause is None or cause is exc:
            raise
        raise cause from exc
    follow_umask(out)
