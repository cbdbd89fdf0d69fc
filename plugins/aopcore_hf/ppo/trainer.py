"""Our PPO trainer: classic TRL PPO (value head on the policy trunk, adaptive KL, per-token KL penalty, GAE).

TRL deleted its PPOTrainer; this keeps the algorithm the paper used, and takes
rewards from any RewardModel on decoded text, so the reward model may use
another tokenizer than the policy.
"""

from __future__ import annotations

import functools
import json
import logging
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from tqdm.auto import tqdm

from aopcore import InputError, Prompt, RewardModel, TrainStats
from aopcore.memory import release_idle_models
from aopcore.steps import PromptStream, RolloutGroup
from aopcore_hf import lora
from aopcore_hf.generation import (
    Rollout,
    decode_responses,
    encode_queries,
)
from aopcore_hf.models import DeviceChoice, load_causal_lm
from aopcore_hf.options import PPOOptions, float32_layers, resolve_checkpointing
from aopcore_hf.policy import HFPolicyBase
from aopcore_hf.policy_io import policy_source, save_policy
from aopcore_hf.ppo import functional as pm
from aopcore_hf.ppo import memory as ppo_memory
from aopcore_hf.ppo.checkpoint import PPOCheckpoints
from aopcore_hf.ppo.comm import AccelerateComm, LocalComm
from aopcore_hf.ppo.length_groups import grouped_forward
from aopcore_hf.ppo.scoring import Score, score_and_book  # noqa: F401 (score_and_book: also imported from here)
from aopcore_hf.tracking import Trackers

VALUE_HEAD = "value_head.pt"
STATE = "ppo_state.json"


class ValueHead(torch.nn.Module):
    def __init__(self, hidden_size: int) -> None:
        super().__init__()
        self.summary = torch.nn.Linear(hidden_size, 1)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        with torch.autocast(device_type=hidden.device.type, enabled=False):  # values in float32 under mixed precision
            return self.summary(hidden.float()).squeeze(-1)


@dataclass
class RolloutBatch:
    """Queries left-padded to one width and responses right-padded after them, so every response
    starts at the same column and the model computes logits only for the response positions."""

    ids: torch.Tensor  # (B, Q + R)
    attn: torch.Tensor  # (B, Q + R)
    positions: torch.Tensor  # (B, Q + R): position ids that ignore the left padding
    tokens: torch.Tensor  # (B, R) response tokens
    mask: torch.Tensor  # (B, R) 1.0 on real response tokens

    def select(self, idx: torch.Tensor) -> RolloutBatch:
        return RolloutBatch(self.ids[idx], self.attn[idx], self.positions[idx], self.tokens[idx], self.mask[idx])

    def rows(self, idx: torch.Tensor, query_width: int) -> RolloutBatch:
        """Rows ``idx`` with the query columns cut to ``query_width`` (their longest query): the columns dropped are
        padding in every row taken, so positions and masks stay what they were."""
        idx = idx.to(self.ids.device)
        cut = self.ids.shape[1] - self.tokens.shape[1] - query_width
        return RolloutBatch(
            self.ids[idx, cut:], self.attn[idx, cut:], self.positions[idx, cut:], self.tokens[idx], self.mask[idx]
        )

    def to(self, device: str) -> RolloutBatch:
        return RolloutBatch(*(t.to(device) for t in (self.ids, self.attn, self.positions, self.tokens, self.mask)))


def pad_batch(rollouts: Sequence[Rollout], pad_id: int) -> RolloutBatch:
    q_width = max(len(r.query) for r in rollouts)
    r_width = max(max(len(r.response) for r in rollouts), 1)
    n = len(rollouts)
    ids = torch.full((n, q_width + r_width), pad_id, dtype=torch.long)
    attn = torch.zeros_like(ids)
    mask = torch.zeros((n, r_width))
    for row, r in enumerate(rollouts):
        ids[row, q_width - len(r.query) : q_width] = torch.tensor(r.query)
        attn[row, q_width - len(r.query) : q_width] = 1
        if r.response:
            ids[row, q_width : q_width + len(r.response)] = torch.tensor(r.response)
            attn[row, q_width : q_width + len(r.response)] = 1
            mask[row, : len(r.response)] = 1.0
    positions = (attn.cumsum(dim=1) - 1).clamp(min=0)
    return RolloutBatch(ids, attn, positions, ids[:, q_width:].clone(), mask)


def response_forward(
    model, value_head: ValueHead | None, batch: RolloutBatch
) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
    """Log-probs of the response tokens, values of the states that emitted them, and their entropies (the last two
    with a value head only: the policy's pass)."""
    r_width = batch.tokens.shape[1]
    out = model(
        input_ids=batch.ids,
        attention_mask=batch.attn,
        position_ids=batch.positions,
        output_hidden_states=value_head is not None,
        logits_to_keep=r_width + 1,
        use_cache=False,
    )
    logp = torch.log_softmax(out.logits[:, :-1].float(), dim=-1)
    logprobs = pm.logprobs_of(logp, batch.tokens)
    values = entropy = None
    if value_head is not None:  # the policy's pass; the reference needs neither values nor entropies
        values = value_head(out.hidden_states[-1][:, -r_width - 1 : -1])
        with torch.no_grad():
            entropy = pm.entropy_from_logp(logp)
    return logprobs, values, entropy


class PolicyWithValue(torch.nn.Module):
    """The policy and its value head as one module, so that data parallelism synchronises both."""

    def __init__(self, lm: torch.nn.Module, value_head: ValueHead) -> None:
        super().__init__()
        self.lm = lm
        self.value_head = value_head

    def forward(self, batch: RolloutBatch) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        logprobs, values, entropy = grouped_forward(response_forward, self.lm, self.value_head, batch)
        assert values is not None
        return logprobs, values, entropy


class PPOPolicyTrainer(HFPolicyBase):
    """PPO (classic TRL behaviour, paper hyperparameters) for any causal LM on the hub or on disk."""

    Options = PPOOptions
    options: PPOOptions
    # where one mini-batch is the whole batch, its forward with gradients also gives the old log-probs and values,
    # and a stage's first step takes the reference log-probs from the policy (False: TRL's separate no-grad forward
    # and a reference forward at every step; the tests compare the two)
    reuse_first_forward: bool = True

    @staticmethod
    def resources(options: PPOOptions, kind: str) -> dict[str, float]:
        """What a stage with this trainer asks a cluster for (Ray executor): this machine's GPUs of the group to train, one to generate."""
        if options.device == "cpu":
            return {}
        return {"num_gpus": options.num_processes // options.num_machines if kind == "train" else 1}

    def inference_choice(self) -> DeviceChoice:
        return ppo_memory.inference_choice(
            self.choice, ppo_memory.autocast_dtype(self.options.mixed_precision, self.choice)
        )

    def train(
        self,
        policy: Path,
        prompts: Sequence[Prompt],
        reward: RewardModel,
        *,
        passes: int,
        out: Path,
        seed: int,
        scratch: Path | None = None,
        stream: PromptStream | None = None,
    ) -> TrainStats:
        """``scratch``: the stage's crash-surviving folder for mid-stage checkpoints (``save_every_steps``; one process only).

        ``stream``: the per-step channel (:mod:`aopcore.steps`). Each step's prompts are then drawn from it (as many
        steps and episodes as without it), and each step's rewards are reported back, one group per prompt.
        """
        if stream is not None and (self.options.num_processes > 1 or self.options.accelerate_config):
            raise InputError(
                f"ppo: a curriculum that takes part in the per-step channel needs num_processes = 1 so far "
                f"(num_processes = {self.options.num_processes}{', accelerate_config' if self.options.accelerate_config else ''})"
            )
        if self.options.num_processes > 1 or self.options.accelerate_config:
            from aopcore_hf.ppo.launch import train_distributed

            if self.options.save_every_steps:
                logging.getLogger("aopcore").warning(
                    "ppo: save_every_steps applies to one process only so far; "
                    "a killed %d-process stage restarts from its first step",
                    self.options.num_processes,
                )

            return train_distributed(self.options, Path(policy), prompts, reward, passes=passes, out=out, seed=seed)

        score = functools.partial(score_and_book, reward)
        return self.train_with(
            LocalComm(), Path(policy), prompts, score, passes=passes, out=out, seed=seed, scratch=scratch, stream=stream
        )

    def train_with(
        self,
        comm: LocalComm | AccelerateComm,
        policy: Path,
        prompts: Sequence[Prompt],
        score: Score,
        *,
        passes: int,
        out: Path,
        seed: int,
        scratch: Path | None = None,
        stream: PromptStream | None = None,
    ) -> TrainStats:
        """The training loop every rank runs; ``score`` is called on the main rank only (``stream``: one process only)."""
        o = self.options
        torch.manual_seed(seed + 1_000_003 * comm.rank)  # each rank samples its own rollouts
        rng = random.Random(seed)  # the same on every rank, so every rank walks the same batches
        device = self.choice.device
        release_idle_models()  # e.g. the feedback LLM, held between prompt stages: not beside the weights trained here
        amp = ppo_memory.autocast_dtype(o.mixed_precision, self.choice)
        weights = ppo_memory.weights_choice(self.choice, amp)
        ref: ppo_memory.Reference | ppo_memory.AdaptersOffReference
        if o.lora is None:
            # the reference is the input policy, frozen: where evaluation left that policy in the generation cache,
            # the reference is that model (one copy fewer to read and hold); otherwise the cache is emptied first
            ref = ppo_memory.Reference(
                policy_source(policy),
                weights,
                o.reference_placement,
                amp,
                loaded=lambda where: self.cache.load(policy, where)[0] if self.cache.holds(policy, where) else None,
            )
            if not ref.shared:
                self.cache.clear()
            model, tokenizer = load_causal_lm(policy_source(policy), weights)
        else:
            # frozen weights, trained adapters: no Adam states or weight gradients for the weights. Under autocast
            # the frozen weights are in its dtype (the same products, half the bytes): where evaluation left that
            # copy of the input in the generation cache, it is taken, not read again. The reference is the same
            # weights with the adapters off.
            frozen = DeviceChoice(weights.device, amp) if amp is not None else weights
            held = self.cache.take(policy, frozen)
            model, tokenizer = held if held is not None else load_causal_lm(policy_source(policy), frozen)
        if resolve_checkpointing(o.gradient_checkpointing, float32=float32_layers(amp is not None, weights)):
            ppo_memory.enable_gradient_checkpointing(model)
        if o.lora is not None:
            model = lora.attach(model, o.lora)
            ref = ppo_memory.AdaptersOffReference(model, amp)
        value_head = ValueHead(model.config.hidden_size).to(device)
        if (policy / VALUE_HEAD).exists():
            value_head.load_state_dict(torch.load(policy / VALUE_HEAD, map_location=device))
        state = json.loads((policy / STATE).read_text()) if (policy / STATE).exists() else {}
        kl_coef = state.get("kl_coef", o.init_kl_coef)
        kl_ctl = (
            pm.AdaptiveKLController(kl_coef, o.target, o.horizon) if o.adap_kl_ctrl else pm.FixedKLController(kl_coef)
        )
        module = PolicyWithValue(model, value_head)
        trained = [p for p in module.parameters() if p.requires_grad]
        adam = dict(lr=o.learning_rate, **ppo_memory.adam_kwargs(device))
        # in the backward pass where that is the same update: no clipping over all gradients, no ranks to average
        in_backward = o.optimizer_in_backward and not o.max_grad_norm and comm.world == 1 and not comm.steps_in_backward
        optimizer = ppo_memory.AdamInBackward(trained, **adam) if in_backward else torch.optim.Adam(trained, **adam)
        module.train()
        wrapped, optimizer = comm.prepare(module, optimizer)

        order: list[Prompt] = []
        for _ in range(passes):
            shuffled = list(prompts)
            rng.shuffle(shuffled)
            order.extend(shuffled)
        batches = [order[i : i + o.batch_size] for i in range(0, len(order), o.batch_size)]
        trackers = Trackers(o.report_to if comm.is_main else [], run_name=policy.name, logdir=out / "logs")
        metrics: list[dict[str, float]] = []
        tokens_generated = 0
        saves = PPOCheckpoints(
            scratch,
            o.save_every_steps,
            comm,
            job={
                "options": o.model_dump(mode="json"),
                "seed": seed,
                "passes": passes,
                "prompts": [p.id for p in prompts],
                "policy": str(policy),
                **({"stream": "online" if stream.online else "watch"} if stream is not None else {}),
            },
        )
        done = 0
        if (latest := saves.latest()) is not None:  # a killed stage: continue after its last save
            restored = saves.restore(latest, module=comm.unwrap(wrapped), optimizer=optimizer, device=device)
            done, metrics, tokens_generated, kl_ctl.value = (
                restored["step"],
                restored["metrics"],
                restored["tokens_generated"],
                restored["kl_value"],
            )
            if stream is not None:  # the stream rewinds to the save: the steps redone draw what they drew
                stream.restore(int(restored.get("stream_completed") or 0))
        step_bar = tqdm(
            batches[done:], desc="ppo", leave=False, disable=not comm.is_main, initial=done, total=len(batches)
        )
        for step, batch in enumerate(step_bar, start=done + 1):
            t0 = time.perf_counter()
            if (
                stream is not None
            ):  # the curriculum chooses this step's prompts (a watcher's: the planned ones, in its order)
                batch = stream.next(len(batch))
            stats = self._step(
                comm,
                wrapped,
                ref,
                tokenizer,
                optimizer,
                kl_ctl,
                batch,
                score,
                shuffle_seed=seed * 100_003 + step,
                policy_is_reference=step == 1,  # nothing trained yet: the policy is the stage's input, the reference
            )
            scores, lengths = stats.pop("_scores"), stats.pop("_lengths")
            if stream is not None:  # one completion per prompt: one group each
                stream.report(
                    stream.draws - 1,
                    [RolloutGroup(p.id, p.category, (float(r),), int(n)) for p, r, n in zip(batch, scores, lengths)],
                )
            stats["time/step_s"] = time.perf_counter() - t0
            stats["step"] = step
            tokens_generated += int(stats.pop("_tokens"))
            metrics.append(stats)
            trackers.log({k: v for k, v in stats.items() if k != "step"}, step)
            step_bar.set_postfix(score=f"{stats['objective/scores']:.3f}", kl=f"{stats['objective/kl']:.3f}")
            if saves.due(step, len(batches)):
                saves.save(
                    step,
                    module=comm.unwrap(wrapped),
                    optimizer=optimizer,
                    kl_value=kl_ctl.value,
                    metrics=metrics,
                    tokens_generated=tokens_generated,
                    stream_completed=stream.completed if stream is not None else None,
                )
        if stream is not None:
            stream.finish()
        trackers.close()
        if isinstance(optimizer, ppo_memory.AdamInBackward):
            optimizer.close()
        if o.lora is not None:  # the stage saves (and caches) an ordinary model: its input plus the adapters' updates
            updates = lora.deltas(model)
            del ref, optimizer, wrapped, module, model  # the frozen copy goes before the full-precision one comes
            model = lora.reloaded(policy_source(policy), weights, updates)
        else:
            del ref, optimizer, wrapped, module
        if comm.is_main:
            save_policy(model, tokenizer, out)
            torch.save(value_head.state_dict(), out / VALUE_HEAD)
            (out / STATE).write_text(json.dumps({"kl_coef": kl_ctl.value}))
        comm.barrier()
        serve = self.inference_choice()
        # evaluation and answers of ``out`` come next: no reread (on a CPU a bf16 copy is cast from the trained model,
        # the same numbers as reading the saved float32 weights in bf16)
        if comm.world == 1 and (weights == serve or (weights.device == serve.device == "cpu")):
            model.eval().requires_grad_(False)
            for p in model.parameters():
                p.grad = None
            self.cache.put(out, serve, model.to(serve.dtype), tokenizer)
        return TrainStats(steps=len(batches), episodes=len(order), tokens_generated=tokens_generated, metrics=metrics)

    def _step(
        self,
        comm: LocalComm | AccelerateComm,
        wrapped: torch.nn.Module,
        ref: ppo_memory.Reference,
        tokenizer,
        optimizer,
        kl_ctl,
        batch: Sequence[Prompt],
        score: Score,
        *,
        shuffle_seed: int,
        policy_is_reference: bool = False,
    ) -> dict[str, float]:
        """One PPO step on a global batch: each rank generates and trains on its share, and every rank holds
        the whole batch's rollouts, scores, advantages and token counts, so losses are shares of global means."""
        o = self.options
        device = self.choice.device
        module: PolicyWithValue = comm.unwrap(wrapped)
        texts = [p.text for p in batch]
        n = len(batch)
        mine = list(range(comm.rank, n, comm.world))
        queries = encode_queries(
            tokenizer, [texts[i] for i in mine], o.generation.max_prompt_tokens, system=o.system_prompt
        )
        amp = ppo_memory.autocast_dtype(o.mixed_precision, self.choice)
        with ppo_memory.autocast(device, amp, generating=True), lora.sampling(module.lm) as sampler:
            local = self.rollouts(sampler, tokenizer, queries, self.rollout_settings(len(mine)), world=comm.world)
        by_index = dict(pair for part in comm.all_gather_object(list(zip(mine, local))) for pair in part)
        rollouts = [by_index[i] for i in range(n)]
        responses = decode_responses(tokenizer, rollouts)
        scores = torch.tensor(comm.on_main(lambda: score(texts, responses)), dtype=torch.float32, device=device)

        pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        rb = pad_batch(rollouts, pad).to(device)
        mask = rb.mask
        # One process, one mini-batch of the whole batch: its first forward runs on the weights that generated, so
        # it is the "old" forward as well; its detached outputs replace a separate no-grad pass (the same numbers).
        first: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None
        if self.reuse_first_forward and comm.world == 1 and o.mini_batch_size >= n:
            with ppo_memory.autocast(device, amp):
                first = wrapped(rb)
        with torch.no_grad():  # each rank scores its rows; every rank then holds all of them
            rows = torch.tensor(mine, device=device)
            if first is not None:
                part_logprobs, part_values = first[0].detach(), first[1].detach()
            else:
                with ppo_memory.autocast(device, amp):
                    part_logprobs, part_values, _ = module(rb.select(rows))
            # before the first update the policy is the reference: its log-probs are the reference's (KL exactly 0),
            # without a forward of the frozen copy
            part_ref = (
                part_logprobs
                if policy_is_reference and self.reuse_first_forward
                else ref.logprobs(rb.select(rows), functools.partial(grouped_forward, response_forward))
            )
            parts = comm.all_gather_object((mine, part_logprobs.cpu(), part_values.cpu(), part_ref.cpu()))
        old_logprobs, old_values, ref_logprobs = (torch.empty_like(mask) for _ in range(3))
        for rows_of, lp, v, rlp in parts:
            old_logprobs[rows_of], old_values[rows_of], ref_logprobs[rows_of] = (
                lp.to(device),
                v.to(device),
                rlp.to(device),
            )
        rewards, kl = pm.token_rewards(scores, old_logprobs, ref_logprobs, mask, kl_ctl.value)
        advantages, returns = pm.gae(rewards, old_values, mask, o.gamma, o.lam)
        if o.whiten_advantages:
            advantages = pm.masked_whiten(advantages, mask)

        names = ("pg", "vf", "pg_clip", "vf_clip", "approxkl", "ratio", "entropy")
        terms_log: dict[str, list[float]] = {k: [] for k in names}
        skipped = 0
        shuffle = torch.Generator().manual_seed(shuffle_seed)  # the same mini-batches on every rank
        for _ in range(o.ppo_epochs):
            perm = torch.randperm(n, generator=shuffle)
            for start in range(0, n, o.mini_batch_size):
                idx = perm[start : start + o.mini_batch_size].to(device)
                share = idx[comm.rank :: comm.world]
                tokens = mask[idx].sum()
                if first is not None:  # the whole batch, forwarded above: rows in generation order, as ``share`` is not
                    logprobs, vpreds, entropy = (t[share] for t in first)
                    first = None
                else:
                    with ppo_memory.autocast(device, amp):
                        logprobs, vpreds, entropy = wrapped(rb.select(share))
                terms = pm.ppo_loss(
                    logprobs,
                    old_logprobs[share],
                    advantages[share],
                    vpreds,
                    old_values[share],
                    returns[share],
                    mask[share],
                    cliprange=o.cliprange,
                    cliprange_value=o.cliprange_value,
                    vf_coef=o.vf_coef,
                    ratio_threshold=o.ratio_threshold,
                    tokens=tokens,
                )
                summed = comm.sum(
                    torch.stack(
                        [
                            terms.policy_loss,
                            terms.value_loss,
                            terms.policy_clipfrac,
                            terms.value_clipfrac,
                            terms.approx_kl,
                            terms.ratio_mean,
                            pm.masked_mean(entropy, mask[share], tokens),
                        ]
                    ).detach()
                )
                skip = bool(summed[5] > o.ratio_threshold)  # decided on the global ratio, so every rank agrees
                optimizer.zero_grad()
                # DDP: every rank runs a backward, so the gradient hooks stay in step; a skip steps nothing. DeepSpeed
                # steps inside backward, so there a skip runs none. Data parallelism averages gradients over ranks,
                # and each rank's loss is its share of the global mean.
                if not (skip and (comm.steps_in_backward or getattr(optimizer, "steps_in_backward", False))):
                    comm.backward(terms.loss * (0.0 if skip else float(comm.world)))
                if skip:
                    skipped += 1
                else:
                    if o.max_grad_norm:
                        comm.clip_grad_norm([p for g in optimizer.param_groups for p in g["params"]], o.max_grad_norm)
                    optimizer.step()
                for key, value in zip(names, summed.tolist()):
                    terms_log[key].append(value)
        mean_kl = float(kl.sum(dim=1).mean())
        kl_coef_used = kl_ctl.value
        kl_ctl.update(mean_kl, n)
        avg = {k: sum(v) / len(v) for k, v in terms_log.items()}
        ratios = terms_log["ratio"]
        return {
            "objective/kl": mean_kl,
            "objective/kl_coef": kl_coef_used,
            "objective/scores": float(scores.mean()),
            "objective/rlhf_reward": float(scores.mean()) - kl_coef_used * mean_kl,
            "objective/entropy": avg["entropy"],
            "policy/clipfrac_avg": avg["pg_clip"],
            "policy/approxkl_avg": avg["approxkl"],
            "loss/policy_avg": avg["pg"],
            "loss/value_avg": avg["vf"],
            "val/clipfrac_avg": avg["vf_clip"],
            "val/ratio": avg["ratio"],
            "val/ratio_var": sum((r - avg["ratio"]) ** 2 for r in ratios) / len(ratios),
            "ppo/skipped_minibatches": float(skipped),
            "tokens/response_len_mean": float(mask.sum(dim=1).mean()),
            "_tokens": float(mask.sum()),
            "_scores": scores.tolist(),
            "_lengths": mask.sum(dim=1).tolist(),  # per prompt, for the per-step channel
        }
