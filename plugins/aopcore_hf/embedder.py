"""Embedder via sentence-transformers (the packaged MiniLM offline)."""

from __future__ import annotations

import weakref
from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from aopcore_hf.models import ModelPreflight, ModelRef, choose_device, resolve_model


class EmbedderOptions(ModelPreflight, BaseModel):
    model_config = ConfigDict(extra="forbid", protected_namespaces=())
    model: ModelRef = Field(
        "all-minilm-l6-v2", description="Sentence-transformers model: hub id, folder, or all-minilm-l6-v2 (offline)."
    )
    device: str = "auto"
    batch_size: int = Field(64, ge=1)
    normalize: bool = Field(True, description="Unit-length vectors, so a dot product is a cosine similarity.")


_loaded: weakref.WeakValueDictionary[tuple[str, str], Any] = weakref.WeakValueDictionary()


def _sentence_transformer(path: str, device: str) -> Any:
    """One SentenceTransformer per folder and device in a process: the relevance reward and the embedder both use
    MiniLM in the quickstart, and encoding changes no weights."""
    from sentence_transformers import SentenceTransformer

    model = _loaded.get((path, device))
    if model is None:
        model = _loaded[(path, device)] = SentenceTransformer(path, device=device)
    return model


class SentenceEmbedder:
    """Sentence embeddings as a float32 numpy array (n, dim)."""

    Options = EmbedderOptions

    def __init__(self, options: EmbedderOptions) -> None:
        self.options = options
        self.model = _sentence_transformer(resolve_model(options.model), choose_device(options.device).device)

    @staticmethod
    def import_libraries(options: EmbedderOptions) -> None:
        """What this component's stages import (``aopcore.memory.freeze_survivors``)."""
        from aopcore_hf.models import import_libraries

        import_libraries(causal_lm=False, sentences=True)

    def embed(self, texts: Sequence[str]):
        return self.model.encode(
            list(texts),
            batch_size=self.options.batch_size,
            normalize_embeddings=self.options.normalize,
            convert_to_numpy=True,
            show_progress_bar=len(texts) > 2000,
        )
