"""PPO forwards rows in groups of similar query length: fewer padded tokens, the same log-probs, values, entropies
and gradients as one left-padded batch."""

import pytest

torch = pytest.importorskip("torch")
from aopcore_hf.ppo.length_groups import length_groups  # noqa: E402


def _padded(groups: list[list[int]], lengths: list[int], extra: int, overhead: int) -> int:
    return sum(len(g) * (max(lengths[i] for i in g) + extra) + overhead for g in groups)


def test_one_long_query_gets_its_own_group():
    lengths = [41, 42, 44, 44, 45, 48, 48, 100]
    groups = length_groups(lengths, extra=24, overhead=32)
    assert sorted(i for g in groups for i in g) == list(range(8))
    assert [7] in groups
    assert _padded(groups, lengths, 24, 32) < 8 * (100 + 24)  # fewer tokens than one padded batch


def test_similar_lengths_stay_one_group():
    assert length_groups([40, 41, 42, 42], extra=24, overhead=32) == [[0, 1, 2, 3]]


def test_the_grouping_is_the_cheapest_partition():
    import itertools

    lengths = [5, 90, 12, 60, 61, 7, 30]
    best = length_groups(lengths, extra=10, overhead=20)
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    cheapest = min(
        _padded([order[a:b] for a, b in zip((0, *cuts), (*cuts, len(order)))], lengths, 10, 20)
        for k in range(len(order))
        for cuts in itertools.combinations(range(1, len(order)), k)
    )
    assert _padded(best, lengths, 10, 20) == cheapest


@pytest.mark.slow
def test_grouped_forward_matches_one_padded_batch(tmp_path):
    from transformers import AutoModelForCausalLM

    from aopcore_hf.generation import Rollout
    from aopcore_hf.ppo.trainer import PolicyWithValue, ValueHead, pad_batch, response_forward

    from helpers.tiny_models import save_tiny_gpt2

    model = AutoModelForCausalLM.from_pretrained(save_tiny_gpt2(tmp_path / "gpt2"), dtype=torch.float32)
    torch.manual_seed(0)
    rollouts = [
        Rollout(
            torch.randint(3, model.config.vocab_size, (q,)).tolist(),
            torch.randint(3, model.config.vocab_size, (r,)).tolist(),
        )
        for q, r in [(4, 5), (30, 3), (5, 6), (6, 2), (29, 6), (3, 1)]
    ]
    rb = pad_batch(rollouts, pad_id=0)
    module = PolicyWithValue(model, ValueHead(model.config.n_embd))
    grouped = module(rb)
    whole = response_forward(model, module.value_head, rb)
    for a, b in zip(grouped, whole):
        torch.testing.assert_close(a * rb.mask, b * rb.mask, rtol=1e-5, atol=1e-5)
    grads = []
    for out in (grouped, whole):
        module.zero_grad()
        ((out[0] * rb.mask).sum() + (out[1] * rb.mask).sum()).backward(retain_graph=True)
        grads.append([p.grad.clone() for p in module.parameters() if p.grad is not None])
    for a, b in zip(*grads, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)
