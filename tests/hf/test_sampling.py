"""aopcore_hf.sampling draws from the distribution transformers' own warpers define (temperature, top-k, top-p), on
both of its paths: a nucleus found among the top 256 tokens, and a wider one that falls back to a full sort."""

import pytest

torch = pytest.importorskip("torch")
from transformers import TemperatureLogitsWarper, TopKLogitsWarper, TopPLogitsWarper  # noqa: E402

from aopcore_hf.sampling import WIDE, draw  # noqa: E402

VOCAB = 600


def reference(scores: torch.Tensor, temperature: float, top_k: int, top_p: float) -> torch.Tensor:
    """The probabilities transformers samples from, through its own warpers."""
    ids = torch.zeros((scores.shape[0], 1), dtype=torch.long)
    out = TemperatureLogitsWarper(temperature)(ids, scores.clone())
    if top_k:
        out = TopKLogitsWarper(top_k)(ids, out)
    if top_p < 1.0:
        out = TopPLogitsWarper(top_p)(ids, out)
    return torch.softmax(out, dim=-1)


def frequencies(scores: torch.Tensor, n: int, **kw) -> torch.Tensor:
    rows = scores.shape[0]
    counts = torch.zeros(rows, scores.shape[1])
    many = scores.repeat(n, 1)
    tokens = draw(many, **kw).view(n, rows)
    for r in range(rows):
        counts[r] = torch.bincount(tokens[:, r], minlength=scores.shape[1]).float()
    return counts / n


@pytest.mark.parametrize(
    ("temperature", "top_k", "top_p"), [(0.7, 0, 0.95), (1.0, 0, 1.0), (0.9, 50, 0.9), (1.3, 0, 0.5)]
)
def test_draws_follow_the_distribution_of_transformers_warpers(temperature, top_k, top_p):
    torch.manual_seed(0)
    peaked = torch.randn(VOCAB) * 3.0  # a nucleus of a few tokens
    flat = torch.randn(VOCAB) * 0.05  # a nucleus wider than WIDE: the full-sort path
    scores = torch.stack([peaked, flat])
    expected = reference(scores, temperature, top_k, top_p)
    got = frequencies(scores, 40_000, temperature=temperature, top_k=top_k, top_p=top_p)
    assert bool(((got > 0) <= (expected > 0)).all()), "a token outside the nucleus was drawn"
    distance = 0.5 * (got - expected).abs().sum(dim=-1)  # total variation per row
    # sampling noise: about 0.003 on the peaked row, 0.05 on the flat one (hundreds of tokens); a missing temperature
    # moves the peaked row by 0.03-0.12, a missing top-p by 0.03-0.5
    assert float(distance[0]) < 0.015 and float(distance[1]) < 0.07, distance
    if top_p < 1.0 and not top_k:
        assert int((got[1] > 0).sum()) > WIDE  # the flat row really took the wide path


def test_the_same_seed_draws_the_same_tokens():
    scores = torch.randn(4, VOCAB)
    torch.manual_seed(7)
    first = draw(scores, 0.7, 0, 0.95)
    torch.manual_seed(7)
    assert torch.equal(draw(scores, 0.7, 0, 0.95), first)


def test_generate_with_the_nucleus_draw_samples_and_a_one_token_nucleus_is_greedy(tmp_path):
    """Through ``generate_rollouts``: the draw replaces transformers' sampler inside ``generate`` (its tokens are
    the samples), a seed repeats them, and a nucleus of one token gives exactly the greedy answer."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from aopcore_hf.generation import GenerationSettings, encode_queries, generate_rollouts

    from helpers.tiny_models import save_tiny_gpt2

    folder = save_tiny_gpt2(tmp_path / "gpt2", init_range=0.5)
    model, tok = AutoModelForCausalLM.from_pretrained(folder), AutoTokenizer.from_pretrained(folder)
    queries = encode_queries(tok, ["how do i run ?", "what is a cat ?", "why ?"], 64)

    def answers(do_sample: bool, top_p: float = 1.0, seed: int = 0, draw: str = "nucleus") -> list[list[int]]:
        settings = GenerationSettings(12, do_sample, 1.0, top_p, 0, 64, 4, draw=draw)
        return [r.response for r in generate_rollouts(model, tok, queries, settings, seed=seed)]

    greedy = answers(False)
    assert answers(True, top_p=1e-6) == greedy
    sampled = answers(True, seed=1)
    assert sampled == answers(True, seed=1) and sampled != greedy
    assert answers(True, seed=1, draw="transformers") != sampled  # the other sampler: other draws
