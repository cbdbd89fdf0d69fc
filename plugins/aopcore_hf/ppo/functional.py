"""The pieces of classic (TRL < 0.12) PPO for language models, as pure tensor functions.

Kept free of models and I/O so that each term can be checked against a hand
computation on a fixed batch. Tensors are (batch, response length), right-padded,
with ``mask`` 1.0 on real response tokens.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


def masked_mean(x: torch.Tensor, mask: torch.Tensor, tokens: torch.Tensor | float | None = None) -> torch.Tensor:
    """Mean over the masked entries; ``tokens`` replaces the count (a data-parallel rank's share of a global mean)."""
    count = mask.sum() if tokens is None else torch.as_tensor(tokens, dtype=x.dtype, device=x.device)
    return (x * mask).sum() / count.clamp_min(1.0)


def masked_var(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Unbiased (Bessel-corrected) variance over the masked entries, as classic TRL computes it."""
    mean = masked_mean(x, mask)
    n = mask.sum()
    var = masked_mean((x - mean) ** 2, mask)
    return var * n / (n - 1).clamp_min(1.0)


def masked_whiten(x: torch.Tensor, mask: torch.Tensor, shift_mean: bool = True) -> torch.Tensor:
    mean, var = masked_mean(x, mask), masked_var(x, mask)
    out = (x - mean) * torch.rsqrt(var + 1e-8)
    if not shift_mean:
        out = out + mean
    return out * mask


def token_rewards(
    scores: torch.Tensor, logprobs: torch.Tensor, ref_logprobs: torch.Tensor, mask: torch.Tensor, kl_coef: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-token reward: -kl_coef * (logp - ref_logp) everywhere, plus the score on the last real token.

    Returns (rewards, kl) where kl is the per-token log-ratio (masked).
    """
    kl = (logprobs - ref_logprobs) * mask
    rewards = -kl_coef * kl
    last = mask.sum(dim=1).long() - 1
    rows = torch.arange(rewards.shape[0])
    valid = last >= 0
    rewards[rows[valid], last[valid]] += scores[valid].to(rewards.dtype)
    return rewards * mask, kl


def gae(
    rewards: torch.Tensor, values: torch.Tensor, mask: torch.Tensor, gamma: float, lam: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Generalised advantage estimation over each response; returns (advantages, returns)."""
    length = rewards.shape[1]
    advantages = torch.zeros_like(rewards)
    last = torch.zeros(rewards.shape[0], dtype=rewards.dtype, device=rewards.device)
    values = values * mask
    for t in reversed(range(length)):
        cont = mask[:, t + 1] if t + 1 < length else torch.zeros_like(last)
        next_value = values[:, t + 1] * cont if t + 1 < length else torch.zeros_like(last)
        delta = rewards[:, t] + gamma * next_value - values[:, t]
        last = delta + gamma * lam * last * cont
        advantages[:, t] = last * mask[:, t]
    returns = advantages + values
    return advantages, returns


@dataclass
class LossTerms:
    loss: torch.Tensor
    policy_loss: torch.Tensor
    value_loss: torch.Tensor
    policy_clipfrac: torch.Tensor
    value_clipfrac: torch.Tensor
    approx_kl: torch.Tensor
    ratio_mean: torch.Tensor
    skipped: bool


def ppo_loss(
    logprobs: torch.Tensor,
    old_logprobs: torch.Tensor,
    advantages: torch.Tensor,
    vpreds: torch.Tensor,
    old_values: torch.Tensor,
    returns: torch.Tensor,
    mask: torch.Tensor,
    *,
    cliprange: float,
    cliprange_value: float,
    vf_coef: float,
    ratio_threshold: float,
    tokens: torch.Tensor | float | None = None,
) -> LossTerms:
    """Clipped policy loss + vf_coef * clipped value loss; zeroed when the mean ratio exceeds ``ratio_threshold``.

    With ``tokens`` (the mini-batch's token count over all data-parallel ranks) every term is this rank's
    share of the global mean, so the terms of all ranks sum to those of one process; the skip decision
    then belongs to the caller, on the summed ratio.
    """
    vpred_clipped = old_values + (vpreds - old_values).clamp(-cliprange_value, cliprange_value)
    vf_losses1 = (vpreds - returns) ** 2
    vf_losses2 = (vpred_clipped - returns) ** 2
    value_loss = 0.5 * masked_mean(torch.max(vf_losses1, vf_losses2), mask, tokens)
    value_clipfrac = masked_mean((vf_losses2 > vf_losses1).to(logprobs.dtype), mask, tokens)

    ratio = torch.exp(logprobs - old_logprobs)
    pg_losses1 = -advantages * ratio
    pg_losses2 = -advantages * ratio.clamp(1.0 - cliprange, 1.0 + cliprange)
    policy_loss = masked_mean(torch.max(pg_losses1, pg_losses2), mask, tokens)
    policy_clipfrac = masked_mean((pg_losses2 > pg_losses1).to(logprobs.dtype), mask, tokens)
    approx_kl = 0.5 * masked_mean((logprobs - old_logprobs) ** 2, mask, tokens)
    ratio_mean = masked_mean(ratio, mask, tokens)

    loss = policy_loss + vf_coef * value_loss
    skipped = bool(ratio_mean.detach() > ratio_threshold)
    if skipped:
        loss = loss * 0.0
    return LossTerms(loss, policy_loss, value_loss, policy_clipfrac, value_clipfrac, approx_kl, ratio_mean, skipped)


class AdaptiveKLController:
    """Ziegler et al. (2019): move the KL coefficient toward a target KL over a horizon of samples."""

    def __init__(self, init_kl_coef: float, target: float, horizon: int) -> None:
        self.value = init_kl_coef
        self.target = target
        self.horizon = horizon

    def update(self, current_kl: float, n_steps: int) -> None:
        error = min(max(current_kl / self.target - 1.0, -0.2), 0.2)
        self.value *= 1.0 + error * n_steps / self.horizon


class FixedKLController:
    def __init__(self, kl_coef: float) -> None:
        self.value = kl_coef

    def update(self, current_kl: float, n_steps: int) -> None:
        pass


def logprobs_of(logp: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
    """The log-probabilities of ``tokens`` under a log-softmax already computed."""
    return logp.gather(-1, tokens.unsqueeze(-1)).squeeze(-1)


def entropy_from_logp(logp: torch.Tensor) -> torch.Tensor:
    """The entropy of log-probabilities already computed (the log-softmax a log-prob gather used)."""
    return -(logp.exp() * logp).sum(-1)
