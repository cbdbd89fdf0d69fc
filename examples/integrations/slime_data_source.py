"""An aopcore curriculum as slime's rollout DataSource, with its dynamic-sampling filter as the gate.

slime's rollout function asks the data source for prompt groups (``get_samples(n)``, ``n`` =
``--over-sampling-batch-size``) until ``--rollout-batch-size`` groups are kept, passes each finished group to the
dynamic-sampling filter (``fn(args, samples) -> keep``), aborts what is still running, then calls
``fn(args, all_samples, data_source)`` of ``--rollout-all-samples-process-path`` with every finished group. The
train loop calls ``save(rollout_id)`` with the model checkpoints and ``load(start_rollout_id - 1)`` at start.
The mapping:

    get_samples(n)          -> n draws of GroupFeed.next(), each a group of n_samples_per_prompt Samples
    keep_group(args, group) -> GroupFeed.result(draw, rewards): the rewards reach the curriculum; keep(group) decides
    report_rollout(...)     -> the finished groups no filter reported (run without a filter: all of them)
    save / load             -> the stream's position and log in {save}/rollout/aopcore_state_{rollout_id}.json

Arguments, with this file copied into your project as ``my_project/aopcore_source.py`` (the curriculum's keys go in
the YAML of ``--custom-config-path``, which slime sets onto ``args``)::

    --data-source-path my_project.aopcore_source.AopcoreDataSource
    --dynamic-sampling-filter-path my_project.aopcore_source.keep_group
    --rollout-all-samples-process-path my_project.aopcore_source.report_rollout
    --custom-config-path aopcore.yaml   # aopcore_config: curriculum.toml, aopcore_state_dir: /ckpt/aopcore,
                                        # aopcore_draws_per_round: 256,
                                        # aopcore_initial_evaluation: start-eval.jsonl
"""

from __future__ import annotations

import json
import os
from typing import Any

from slime.rollout.data_source import DataSource
from slime.utils.types import Sample

from aopcore import CurriculumSession, EvalRecord
from aopcore.records import read_jsonl
from aopcore_integrations.groups import GroupFeed

DRAW = "aopcore_draw"
_source: AopcoreDataSource | None = None  # this process's data source (slime's RolloutManager), for the hooks


class AopcoreDataSource(DataSource):
    """Prompts from a CurriculumSession (``args.aopcore_config``: an ``aopcore run`` TOML), one draw per group."""

    def __init__(self, args: Any) -> None:
        global _source
        self.args = args
        session = CurriculumSession.from_config(args.aopcore_config, state_dir=args.aopcore_state_dir)
        over = args.over_sampling_batch_size or args.rollout_batch_size
        # a rollout keeps at most rollout_batch_size + over_sampling_batch_size groups in flight
        # round 1 is chosen from the start policy's held-out evaluation (EvalRecords, e.g. an aopcore run's
        # sft/evaluation.jsonl) when the curriculum reads one; later rounds from the previous round's rewards
        initial = getattr(args, "aopcore_initial_evaluation", None)
        self.feed = GroupFeed(
            session,
            draws_per_round=args.aopcore_draws_per_round,
            lag=args.rollout_batch_size + over,
            initial_evaluation=read_jsonl(initial, EvalRecord) if initial else None,
        )
        self.tokenizer = None
        _source = self

    def get_samples(self, num_samples: int) -> list[list[Sample]]:
        n = self.args.n_samples_per_prompt
        groups = []
        for _ in range(num_samples):
            g, prompt = self.feed.next()
            meta = {DRAW: g, "aopcore_id": prompt.id, "aopcore_category": prompt.category}
            text = self.template(prompt.text)
            label = prompt.metadata.get("answer")
            groups.append(
                [
                    Sample(group_index=g, index=g * n + k, prompt=text, label=label, metadata=dict(meta))
                    for k in range(n)
                ]
            )
        return groups

    def template(self, text: str) -> str:
        """The prompt as slime's own Dataset writes it (the chat template with ``--apply-chat-template``)."""
        if not self.args.apply_chat_template:
            return text
        if self.tokenizer is None:
            from slime.utils.processing_utils import load_tokenizer

            self.tokenizer = load_tokenizer(self.args.hf_checkpoint, trust_remote_code=True)
        messages = [{"role": "user", "content": text}]
        kwargs = self.args.apply_chat_template_kwargs or {}
        return self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True, **kwargs)

    def report(self, args: Any, group: list[Sample]) -> bool:
        """A finished group's rewards to the curriculum; whether to train on it."""
        rewards = [sample.get_reward_value(args) for sample in group]
        tokens = sum(sample.response_length for sample in group)
        return self.feed.result(group[0].metadata[DRAW], rewards, tokens=tokens)

    def add_samples(self, samples: list[list[Sample]]) -> None:
        raise RuntimeError("AopcoreDataSource takes no samples back: run slime without --partial-rollout")

    def save(self, rollout_id: int) -> None:
        path = os.path.join(self.args.save, f"rollout/aopcore_state_{rollout_id}.json")
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w", encoding="utf-8") as fh:
            json.dump(self.feed.state_dict(), fh)

    def load(self, rollout_id: int | None = None) -> None:
        if self.args.load is None:
            return
        path = os.path.join(self.args.load, f"rollout/aopcore_state_{rollout_id}.json")
        if os.path.exists(path):
            with open(path, encoding="utf-8") as fh:
                self.feed.load_state_dict(json.load(fh))

    def __len__(self) -> int:
        rounds = self.feed.session.rounds
        return rounds * self.feed.per_round if rounds else 0


def keep_group(args: Any, samples: list[Sample], **kwargs: Any) -> bool:
    """``--dynamic-sampling-filter-path``: report the group as it finishes; train on it if the curriculum keeps it."""
    assert _source is not None, "keep_group needs AopcoreDataSource as --data-source-path"
    return _source.report(args, samples)


def report_rollout(args: Any, all_samples: list[list[Sample]], data_source: Any) -> None:
    """``--rollout-all-samples-process-path``: the rollout's finished groups that no filter reported."""
    assert _source is not None, "report_rollout needs AopcoreDataSource as --data-source-path"
    for group in all_samples:
        if group[0].metadata[DRAW] in _source.feed.handed:
            _source.report(args, group)
