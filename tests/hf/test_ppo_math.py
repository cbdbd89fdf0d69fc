"""Each PPO term against a hand computation on a fixed batch."""

import math

import pytest

torch = pytest.importorskip("torch")
from aopcore_hf.ppo import functional as pm  # noqa: E402


def t(rows):
    return torch.tensor(rows, dtype=torch.float32)


def test_gae_matches_hand_computation_with_padding():
    rewards = t([[0.0, 0.0, 1.0], [0.0, 2.0, 0.0]])
    values = t([[0.5, 0.4, 0.3], [0.2, 0.1, 9.0]])  # 9.0 sits on padding and must be ignored
    mask = t([[1, 1, 1], [1, 1, 0]])
    adv, ret = pm.gae(rewards, values, mask, gamma=1.0, lam=0.95)
    # row 0: A2 = 1 - 0.3 = 0.7; A1 = (0.3 - 0.4) + 0.95 * 0.7 = 0.565; A0 = (0.4 - 0.5) + 0.95 * 0.565 = 0.43675
    assert adv[0].tolist() == pytest.approx([0.43675, 0.565, 0.7])
    assert ret[0].tolist() == pytest.approx([0.93675, 0.965, 1.0])
    # row 1: A1 = 2 - 0.1 = 1.9; A0 = (0.1 - 0.2) + 0.95 * 1.9 = 1.705; padding stays 0
    assert adv[1].tolist() == pytest.approx([1.705, 1.9, 0.0])


def test_gae_discount():
    adv, _ = pm.gae(t([[0.0, 1.0]]), t([[0.0, 0.0]]), t([[1, 1]]), gamma=0.5, lam=1.0)
    assert adv[0].tolist() == pytest.approx([0.5, 1.0])


def test_token_rewards_kl_penalty_and_score_on_last_token():
    scores = t([1.0, -0.5])
    logprobs = t([[-1.0, -2.0, -3.0], [-1.0, -1.0, 0.0]])
    ref = t([[-1.5, -2.0, -2.0], [-2.0, -1.0, 0.0]])
    mask = t([[1, 1, 1], [1, 1, 0]])
    rewards, kl = pm.token_rewards(scores, logprobs, ref, mask, kl_coef=0.2)
    assert kl[0].tolist() == pytest.approx([0.5, 0.0, -1.0])
    assert rewards[0].tolist() == pytest.approx([-0.1, 0.0, 0.2 + 1.0])
    assert rewards[1].tolist() == pytest.approx([-0.2, -0.5, 0.0])  # score lands on the last real token


def test_clipped_policy_and_value_losses():
    mask = t([[1, 1]])
    terms = pm.ppo_loss(
        logprobs=t([[math.log(1.5), math.log(0.5)]]),
        old_logprobs=t([[0.0, 0.0]]),
        advantages=t([[1.0, 1.0]]),
        vpreds=t([[1.0, 0.0]]),
        old_values=t([[0.5, 0.5]]),
        returns=t([[1.0, 1.0]]),
        mask=mask,
        cliprange=0.2,
        cliprange_value=0.2,
        vf_coef=0.1,
        ratio_threshold=10.0,
    )
    # policy: max(-A*r, -A*clip(r)) = max([-1.5, -0.5], [-1.2, -0.8]) = [-1.2, -0.5]
    assert terms.policy_loss.item() == pytest.approx(-0.85)
    assert terms.policy_clipfrac.item() == pytest.approx(0.5)
    # value: clipped preds [0.7, 0.3]; losses max([0, 1], [0.09, 0.49]) = [0.09, 1]; 0.5 * mean
    assert terms.value_loss.item() == pytest.approx(0.2725)
    assert terms.value_clipfrac.item() == pytest.approx(0.5)
    assert terms.loss.item() == pytest.approx(-0.85 + 0.1 * 0.2725)
    assert terms.approx_kl.item() == pytest.approx(0.5 * (math.log(1.5) ** 2 + math.log(0.5) ** 2) / 2)
    assert terms.ratio_mean.item() == pytest.approx(1.0)
    assert not terms.skipped


def test_ratio_threshold_skips_minibatch():
    logprobs = t([[math.log(20.0), math.log(5.0)]]).requires_grad_()
    terms = pm.ppo_loss(
        logprobs,
        t([[0.0, 0.0]]),
        t([[1.0, -1.0]]),
        t([[0.0, 0.0]]),
        t([[0.0, 0.0]]),
        t([[0.0, 0.0]]),
        t([[1, 1]]),
        cliprange=0.2,
        cliprange_value=0.2,
        vf_coef=0.1,
        ratio_threshold=10.0,
    )
    assert terms.ratio_mean.item() == pytest.approx(12.5)
    assert terms.skipped
    terms.loss.backward()
    assert logprobs.grad.abs().sum().item() == 0.0


def test_adaptive_kl_controller_update():
    ctl = pm.AdaptiveKLController(0.2, target=6.0, horizon=10000)
    ctl.update(9.0, n_steps=16)  # error clipped to +0.2: 0.2 * (1 + 0.2 * 16 / 10000)
    assert ctl.value == pytest.approx(0.2 * 1.00032)
    ctl.update(6.6, n_steps=16)  # error 0.1
    assert ctl.value == pytest.approx(0.2 * 1.00032 * 1.00016)
    ctl.update(0.0, n_steps=10000)  # error clipped to -0.2 over a whole horizon
    assert ctl.value == pytest.approx(0.2 * 1.00032 * 1.00016 * 0.8)
    fixed = pm.FixedKLController(0.1)
    fixed.update(100.0, 16)
    assert fixed.value == 0.1


def test_masked_whiten_uses_only_real_tokens():
    x = t([[1.0, 2.0, 3.0, 100.0]])
    mask = t([[1, 1, 1, 0]])
    w = pm.masked_whiten(x, mask)
    # mean 2, unbiased var 1 -> [-1, 0, 1], padding 0
    assert w[0].tolist() == pytest.approx([-1.0, 0.0, 1.0, 0.0], abs=1e-4)


def test_rank_shares_of_the_loss_sum_to_the_whole_batch_loss():
    """Data parallelism: with the global token count, two halves' terms add up to the one-process terms."""
    torch = pytest.importorskip("torch")
    g = torch.Generator().manual_seed(0)
    shape = (4, 5)
    logprobs, old, adv, vpred, oldv, ret = (torch.randn(shape, generator=g) * 0.3 for _ in range(6))
    mask = t([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1], [1, 0, 0, 0, 0], [1, 1, 0, 0, 0]])
    kw = dict(cliprange=0.2, cliprange_value=0.2, vf_coef=0.1, ratio_threshold=10.0)
    whole = pm.ppo_loss(logprobs, old, adv, vpred, oldv, ret, mask, **kw)
    halves = [
        pm.ppo_loss(*(x[rows] for x in (logprobs, old, adv, vpred, oldv, ret, mask)), **kw, tokens=mask.sum())
        for rows in ([0, 2], [1, 3])
    ]
    for name in ("loss", "policy_loss", "value_loss", "policy_clipfrac", "value_clipfrac", "approx_kl", "ratio_mean"):
        assert float(getattr(halves[0], name) + getattr(halves[1], name)) == pytest.approx(
            float(getattr(whole, name)), abs=1e-6
        ), name
    # without the global count each half is its own mean, and their average is not the whole batch's
    local = [
        pm.ppo_loss(*(x[rows] for x in (logprobs, old, adv, vpred, oldv, ret, mask)), **kw) for rows in ([0, 2], [1, 3])
    ]
    assert float(local[0].policy_loss + local[1].policy_loss) / 2 != pytest.approx(float(whole.policy_loss), abs=1e-4)
