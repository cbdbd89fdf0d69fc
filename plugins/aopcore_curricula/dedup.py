"""De-duplication of generated questions (paper section 4.3), in bounded memory.

``cluster_dedup``: PCA, then KMeans (paper: 11 clusters); within each cluster every
question gets a redundancy score, its highest cosine similarity to an earlier question
of the same cluster; scores are ranked across all clusters together (so no single
cluster loses most of its questions) and the most redundant are dropped down to the
target count. Similarities are computed block by block: memory is O(n * dim), never n x n.

``IncrementalDeduper``: accepts new questions one batch at a time, rejecting those too
close to anything accepted before (used while score-based generation fills a budget).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from aopcore import Embedder
from aopcore.engine.prompt_audit import (
    normalised as normalise_text,  # one rule: what is dropped is what the audit counts
)


def _unit(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.maximum(norms, 1e-12)


def redundancy_scores(
    emb: np.ndarray, labels: np.ndarray, *, row_block: int = 1024, col_block: int = 8192
) -> np.ndarray:
    """For each row: max cosine similarity to an earlier row with the same label (0 for the first)."""
    scores = np.zeros(len(emb), dtype=np.float32)
    for label in np.unique(labels):
        idx = np.flatnonzero(labels == label)
        sub = emb[idx]
        best = np.full(len(idx), -1.0, dtype=np.float32)
        for r0 in range(0, len(idx), row_block):
            rows = sub[r0 : r0 + row_block]
            r_pos = np.arange(r0, r0 + len(rows))
            for c0 in range(0, r0 + len(rows), col_block):  # only earlier (or same-block) columns matter
                cols = sub[c0 : c0 + col_block]
                sims = rows @ cols.T
                c_pos = np.arange(c0, c0 + len(cols))
                sims[c_pos[None, :] >= r_pos[:, None]] = -1.0
                np.maximum(best[r0 : r0 + len(rows)], sims.max(axis=1), out=best[r0 : r0 + len(rows)])
        scores[idx] = np.maximum(best, 0.0)
    return scores


def cluster_labels(emb: np.ndarray, *, n_clusters: int, pca_components: int, seed: int) -> np.ndarray:
    from sklearn.cluster import KMeans, MiniBatchKMeans
    from sklearn.decomposition import PCA

    n = len(emb)
    k = max(1, min(n_clusters, n))
    dims = max(1, min(pca_components, emb.shape[1], n))
    rng = np.random.default_rng(seed)
    fit_rows = emb if n <= 20000 else emb[rng.choice(n, 20000, replace=False)]
    pca = PCA(n_components=dims, random_state=seed).fit(fit_rows)
    reduced = np.concatenate([pca.transform(emb[i : i + 20000]) for i in range(0, n, 20000)]).astype(np.float32)
    if n > 20000:
        km = MiniBatchKMeans(n_clusters=k, batch_size=4096, n_init=3, random_state=seed)
    else:
        km = KMeans(n_clusters=k, n_init=4, random_state=seed)
    return km.fit_predict(reduced)


def cluster_dedup(
    embeddings: np.ndarray, target: int, *, n_clusters: int = 11, pca_components: int = 32, seed: int = 0
) -> list[int]:
    """Indices (in input order) of the ``target`` least redundant rows."""
    emb = _unit(embeddings)
    if len(emb) <= target:
        return list(range(len(emb)))
    labels = cluster_labels(emb, n_clusters=n_clusters, pca_components=pca_components, seed=seed)
    scores = redundancy_scores(emb, labels)
    order = np.lexsort((np.arange(len(emb)), scores))  # least redundant first; ties keep input order
    return sorted(order[:target].tolist())


class IncrementalDeduper:
    """Accepts texts that are neither exact (normalised) duplicates nor within ``max_similarity`` of accepted ones."""

    def __init__(self, embedder: Embedder | None, max_similarity: float, existing: Sequence[str] = ()) -> None:
        self.embedder = embedder
        self.max_similarity = max_similarity
        self.seen: set[str] = set()
        self._kept = np.zeros((0, 0), dtype=np.float32)  # grows by doubling: amortised O(1) per accepted row
        self._n = 0
        if existing:
            self.accept(list(existing), force=True)

    def _append(self, row: np.ndarray) -> None:
        if self._n == len(self._kept):
            grown = np.zeros((max(64, 2 * len(self._kept)), row.shape[0]), dtype=np.float32)
            if self._n:
                grown[: self._n] = self._kept[: self._n]
            self._kept = grown
        self._kept[self._n] = row
        self._n += 1

    def accept(self, texts: Sequence[str], *, force: bool = False) -> list[bool]:
        keys = [normalise_text(t) for t in texts]
        emb = _unit(self.embedder.embed(list(texts))) if self.embedder is not None and texts else None
        out = []
        for i, key in enumerate(keys):
            ok = force or key not in self.seen
            if ok and not force and emb is not None and self._n:
                ok = float((self._kept[: self._n] @ emb[i]).max()) < self.max_similarity
            if ok:
                self.seen.add(key)
                if emb is not None:
                    self._append(emb[i])
            out.append(ok)
        return out
