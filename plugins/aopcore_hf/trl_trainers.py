"""GRPO and RLOO through TRL's maintained trainers, with an aopcore RewardModel as the reward function."""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from aopcore import InputError, Prompt, RewardModel, TrainStats, record_usage
from aopcore.memory import release_idle_models
from aopcore.steps import PromptStream
from aopcore_hf.generation import PLAIN_TEMPLATE
from aopcore_hf.models import load_causal_lm
from aopcore_hf.options import TRLOptions
from aopcore_hf.policy import HFPolicyBase
from aopcore_hf.policy_io import policy_source, save_policy

log = logging.getLogger("aopcore")


def _completion_text(completion) -> str:
    if isinstance(completion, list):  # conversational: [{"role": "assistant", "content": ...}]
        return "".join(m.get("content", "") for m in completion)
    return str(completion)


TOKENS_FILE = "aopcore_tokens.json"


def _token_callback(tokens: dict[str, int]):
    """Keeps the generated-token count with each TRL checkpoint, so a resumed stage reports the whole stage's tokens."""
    from transformers import TrainerCallback

    class TokenCount(TrainerCallback):
        def on_save(self, args, state, control, **kwargs):
            folder = Path(args.output_dir) / f"checkpoint-{state.global_step}"
            if folder.is_dir() and state.is_world_process_zero:
                (folder / TOKENS_FILE).write_text(json.dumps(tokens))

    return TokenCount()


def _saved_tokens(checkpoint: Path) -> int:
    path = checkpoint / TOKENS_FILE
    return int(json.loads(path.read_text())["n"]) if path.exists() else 0


class _TRLPolicyTrainer(HFPolicyBase):
    Options = TRLOptions
    options: TRLOptions
    algorithm = ""

    def _config(self, out: Path, passes: int, seed: int, **override):
        raise NotImplementedError

    def _trainer_class(self):
        raise NotImplementedError

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
        """``scratch``: the stage's crash-surviving folder; with ``save_every_steps`` TRL saves checkpoints there and a
        killed stage resumes from the latest (``resume_from_checkpoint``).

        ``stream``: the per-step channel (:mod:`aopcore.steps`) for a curriculum that takes part: every generation batch
        is a draw from it and its rewards are reported back, through the same adapter as a TRL script's
        (:mod:`aopcore_integrations.trl`); the stage trains as many steps as without it (prompts x passes draws). When
        the curriculum filters (its selector has ``keep``, e.g. ``dynamic-filter``), dropped groups are regenerated from
        refill draws before the step trains (DAPO dynamic sampling, :class:`~aopcore_integrations.trl.RefillFeed`).

        ``num_processes > 1``: the stage trains in a launched group (:mod:`aopcore_hf.trl_launch`); this process keeps the
        reward model and the stream and serves the group, so the stream draws what one process would draw."""
        if self.options.num_processes > 1:
            from aopcore_hf.trl_launch import filters, train_in_processes

            size, world = self.options.num_generations, self.options.num_processes
            if stream is not None and filters(stream) and size % world:
                raise InputError(
                    f"{self.algorithm or type(self).__name__}: num_generations ({size}) must be a multiple of "
                    f"num_processes ({world}) when the curriculum filters (keep): refilled groups are generated in "
                    "equal shares"
                )
            return train_in_processes(
                self, policy, prompts, reward, passes=passes, out=out, seed=seed, scratch=scratch, stream=stream
            )
        return self.train_here(
            policy, prompts, reward, passes=passes, out=out, seed=seed, scratch=scratch, stream=stream
        )

    def train_here(
        self,
        policy: Path,
        prompts: Sequence[Prompt],
        reward: RewardModel,
        *,
        passes: int,
        out: Path,
        seed: int,
        scratch: Path | None = None,
        stream: Any = None,
        filtering: bool | None = None,
    ) -> TrainStats:
        """:meth:`train` in this process: one process, or one rank of a launched group (``stream`` is then rank 0's
        view of the launching process's stream, and ``filtering`` says whether its curriculum has ``keep``)."""
        from datasets import Dataset
        from transformers.trainer_utils import get_last_checkpoint

        from aopcore_integrations.trl_ranks import gather_all, rank_and_world

        o = self.options
        release_idle_models()
        model, tokenizer = load_causal_lm(policy_source(Path(policy)), self.choice)
        tokenizer.padding_side = "left"
        if getattr(tokenizer, "chat_template", None):
            messages = [{"role": "system", "content": o.system_prompt}] if o.system_prompt else []

            def row(text: str) -> dict:
                return {"prompt": messages + [{"role": "user", "content": text}], "question": text}
        else:

            def row(text: str) -> dict:
                return {"prompt": PLAIN_TEMPLATE.format(prompt=text), "question": text}

        dataset = Dataset.from_list([row(p.text) for p in prompts])
        tokens = {"n": 0}

        def reward_fn(prompts, completions, question, completion_ids=None, **_):
            texts = [_completion_text(c) for c in completions]
            if completion_ids is not None:
                mine = sum(len(c) for c in completion_ids)
                tokens["n"] += sum(gather_all(mine)) if rank_and_world()[1] > 1 else mine
            record_usage(reward_calls=len(texts))
            return [float(s) for s in reward.score(list(question), texts)]

        reward_fn.__name__ = "aopcore_reward"
        saving = scratch is not None and o.save_every_steps is not None
        workdir = Path(scratch) / "trl" if saving else out / "trl"
        checkpoints = (
            {"save_strategy": "steps", "save_steps": o.save_every_steps, "save_total_limit": 1} if saving else {}
        )
        config = self._config(workdir, passes, seed, **checkpoints)
        callbacks = [_token_callback(tokens)] if saving else []
        reward_funcs = reward_fn
        trainer_class = self._trainer_class()
        refill = None
        if stream is not None:  # the per-step channel: the same adapter a TRL script uses
            from aopcore_integrations.trl import RefillFeed, StreamFeed

            per_draw = config.generation_batch_size // config.num_generations
            draws = math.ceil(len(prompts) * passes / per_draw)
            config = self._config(workdir, passes, seed, max_steps=draws, shuffle_dataset=False, **checkpoints)
            if filtering is None:
                filtering = callable(getattr(stream.selector, "keep", None))
            if filtering:  # a filtering curriculum: dropped groups are refilled
                feed = refill = RefillFeed(stream, row=row, max_steps=draws, prompts_per_draw=per_draw)
                trainer_class = refilling(trainer_class)
            else:
                feed = StreamFeed(stream, row=row, max_steps=draws)
            dataset, reward_funcs = feed.dataset(), feed.reward(reward_fn)
            callbacks.append(feed.callback)
        trainer = trainer_class(
            model=model,
            reward_funcs=reward_funcs,
            args=config,
            train_dataset=dataset,
            processing_class=tokenizer,
            callbacks=callbacks or None,
        )
        if refill is not None:
            trainer.aopcore_feed = refill
        last = get_last_checkpoint(str(workdir)) if saving and workdir.is_dir() else None
        if last:
            log.info("%s: resuming from %s", type(self).__name__, last)
            tokens["n"] = _saved_tokens(Path(last))
        trainer.train(resume_from_checkpoint=last)
        if trainer.is_world_process_zero():
            save_policy(trainer.model, tokenizer, out)
        metrics = [
            {k: float(v) for k, v in entry.items() if isinstance(v, (int, float))}
            for entry in trainer.state.log_history
            if "loss" in entry or "reward" in entry
        ]
        return TrainStats(
            steps=int(trainer.state.global_step),
            episodes=len(prompts) * passes * o.num_generations,
            tokens_generated=tokens["n"],
            metrics=metrics,
        )

    def _common(self, out: Path, passes: int, seed: int) -> dict:
        o = self.options
        g = o.generation
        cpu = not self.choice.device.startswith("cuda")
        return dict(
            output_dir=str(out),
            per_device_train_batch_size=o.batch_size // o.num_processes,  # batch_size is the global batch
            num_generations=o.num_generations,
            max_completion_length=g.max_new_tokens,
            temperature=g.temperature,
            top_p=g.top_p,
            top_k=g.top_k,
            beta=o.beta,
            learning_rate=o.learning_rate,
            num_train_epochs=passes,
            seed=seed,
            logging_steps=1,
            save_strategy="no",
            report_to=list(o.report_to) or "none",
            use_cpu=cpu,
            bf16=not cpu and "bfloat16" in str(self.choice.dtype),
            disable_tqdm=False,
            # TRL's default (checkpointing on) by its current name: the deprecated one warns on every run
            **(
                {}
                if {"gradient_checkpointing", "activation_checkpointing"} & set(o.extra)
                else {"activation_checkpointing": True}
            ),
            **o.extra,
        )


def refilling(base: type) -> type:
    """``base`` (TRL's GRPOTrainer or RLOOTrainer) drawing every training generation batch from an
    :class:`~aopcore_integrations.trl.RefillFeed` when it generates it, with the dropped groups regenerated (DAPO)."""

    class Refilling(base):  # type: ignore[misc, valid-type]
        aopcore_feed = None

        def _generate_and_score_completions(self, inputs):
            feed = self.aopcore_feed
            if feed is None or not self.model.training:
                return super()._generate_and_score_completions(inputs)
            tokenizer = getattr(self, "_tokenizer", None) or self.processing_class
            return feed.generate(super()._generate_and_score_completions, len(inputs), pad_id=tokenizer.pad_token_id)

    Refilling.__name__ = Refilling.__qualname__ = f"Refilling{base.__name__}"
    return Refilling


class GRPOPolicyTrainer(_TRLPolicyTrainer):
    """TRL's GRPOTrainer: group-relative advantages over ``num_generations`` samples per prompt."""

    def _trainer_class(self):
        from trl import GRPOTrainer

        return GRPOTrainer

    def _config(self, out: Path, passes: int, seed: int, **override):
        from trl import GRPOConfig

        return GRPOConfig(**{**self._common(out, passes, seed), **override})


class RLOOPolicyTrainer(_TRLPolicyTrainer):
    """TRL's RLOOTrainer: REINFORCE with a leave-one-out baseline over ``num_generations`` samples."""

    def _trainer_class(self):
        from trl import RLOOTrainer

        return RLOOTrainer

    def _config(self, out: Path, passes: int, seed: int, **override):
        from trl import RLOOConfig

        return RLOOConfig(**{**self._common(out, passes, seed), **override})
