import numpy as np

from aopcore_curricula.dedup import IncrementalDeduper, cluster_dedup, redundancy_scores

from helpers.fakes import HashEmbedder


def unit(x):
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_blockwise_redundancy_equals_brute_force():
    rng = np.random.default_rng(0)
    emb = unit(rng.normal(size=(300, 16)).astype(np.float32))
    labels = rng.integers(0, 3, size=300)
    fast = redundancy_scores(emb, labels, row_block=37, col_block=53)
    sims = emb @ emb.T
    brute = np.zeros(300, dtype=np.float32)
    for i in range(300):
        earlier = [j for j in range(i) if labels[j] == labels[i]]
        brute[i] = max(0.0, sims[i, earlier].max()) if earlier else 0.0
    np.testing.assert_allclose(fast, brute, atol=1e-5)


def test_cluster_dedup_drops_the_near_duplicates():
    rng = np.random.default_rng(1)
    base = unit(rng.normal(size=(60, 32)).astype(np.float32))
    copies = unit(base[:20] + 0.01 * rng.normal(size=(20, 32)).astype(np.float32))
    emb = np.vstack([base, copies])  # rows 60..79 nearly repeat rows 0..19
    kept = cluster_dedup(emb, 60, n_clusters=5, pca_components=8, seed=0)
    assert kept == list(range(60))


def test_ranking_is_across_clusters_not_within():
    rng = np.random.default_rng(2)
    # cluster A: 30 tight paraphrases; cluster B: 30 diverse points. Dropping 20 must take them from A.
    centre = rng.normal(size=(1, 32))
    tight = unit((centre + 0.05 * rng.normal(size=(30, 32))).astype(np.float32))
    diverse = unit((-3 * centre + rng.normal(size=(30, 32))).astype(np.float32))
    kept = cluster_dedup(np.vstack([tight, diverse]), 40, n_clusters=2, pca_components=4, seed=0)
    assert set(range(30, 60)) <= set(kept)


def test_incremental_deduper_rejects_exact_and_near_duplicates():
    d = IncrementalDeduper(HashEmbedder(), 0.9, existing=["How do I bake bread at home?"])
    ok = d.accept(
        [
            "how do I bake bread at home",
            "How do I bake BREAD at home today?",
            "Why is my cat sneezing?",
            "why is my cat sneezing",
        ]
    )
    assert ok == [False, False, True, False]
