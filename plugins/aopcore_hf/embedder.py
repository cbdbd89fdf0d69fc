"""Embedder via sentence-transformers (the packaged MiniLM offline)."""

from __future__ import annotations

from collections.abc import Sequence

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


class SentenceEmbedder:
    """Sentence embeddings as a float32 numpy array (n, dim)."""

    Options = EmbedderOptions

    def __init__(self, options: EmbedderOptions) -> None:
        from sentence_transformers import SentenceTransformer

        self.options = options
        self.model = SentenceTransformer(resolve_model(options.model), device=choose_device(options.device).device)

    def embed(self, texts: Sequence[str]):
        return self.model.encode(
            list(texts),
            batch_size=self.options.batch_size,
            normalize_embeddings=self.options.normalize,
            convert_to_numpy=True,
            show_progress_bar=len(texts) > 2000,
        )
