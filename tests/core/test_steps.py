"""The per-step channel (aopcore.steps): lag-ordered delivery, deterministic resume, filtering and its booking."""

from __future__ import annotations

import random

import pytest

from aopcore import Prompt, RuntimeFailure
from aopcore.ledger import StageMeter
from aopcore.steps import PlannedSelector, PromptStream, RolloutGroup, group_rollouts, read_batches, write_batches

POOL = [Prompt(f"p{k}", f"question {k}", "easy" if k % 2 else "hard") for k in range(12)]


class PassRateSelector:
    """A learnability-like selector: weights from observed mean rewards, random draws from a seeded RNG."""

    def __init__(self, seed: int = 7) -> None:
        self.rng = random.Random(seed)
        self.mean = {p.id: 0.5 for p in POOL}
        self.seen: list[int] = []

    def draw(self, n: int, draw: int) -> list[Prompt]:
        weights = [self.mean[p.id] * (1 - self.mean[p.id]) + 1e-3 for p in POOL]
        return self.rng.choices(POOL, weights=weights, k=n)

    def observe(self, batch) -> None:
        self.seen.append(batch.draw)
        for g in batch.groups:
            self.mean[g.prompt_id] = 0.5 * self.mean[g.prompt_id] + 0.5 * g.mean

    def keep(self, group: RolloutGroup) -> bool:
        return not group.zero_variance


def fake_rollouts(prompts: list[Prompt], draw: int) -> list[RolloutGroup]:
    # deterministic "rewards": hard prompts fail, easy ones pass, prompt 3 is mixed
    out = []
    for p in prompts:
        k = int(p.id[1:])
        rewards = (1.0, 0.0, 1.0, 0.0) if k == 3 else ((1.0,) * 4 if k % 2 else (0.0,) * 4)
        out.append(RolloutGroup(p.id, p.category, rewards, tokens=8))
    return out


def run(stream: PromptStream, draws: range, *, prefetch: bool = True) -> list[list[str]]:
    """Draw ahead by one (as TRL's loader does) and report each draw once its successor was drawn."""
    ids = []
    pending = None
    for d in draws:
        prompts = stream.next(4)
        ids.append([p.id for p in prompts])
        if pending is not None:
            stream.report(*pending)
        pending = (d, fake_rollouts(prompts, d))
        if not prefetch:
            stream.report(*pending)
            pending = None
    if pending is not None:
        stream.report(*pending)
    return ids


def test_observations_arrive_by_draw_index_not_by_timing():
    a, b = PassRateSelector(), PassRateSelector()
    ids_prefetch = run(PromptStream(a), range(8), prefetch=True)
    ids_sync = run(PromptStream(b), range(8), prefetch=False)
    assert ids_prefetch == ids_sync  # same prompts whether rewards arrive early or one draw late
    assert a.seen == b.seen == list(range(6))  # before draw 7, draws 0..5 were seen (lag 1)


def test_drawing_further_ahead_than_the_lag_is_an_error():
    stream = PromptStream(PassRateSelector())
    stream.next(2)
    stream.next(2)  # draw 1 may come before draw 0's rewards
    with pytest.raises(RuntimeFailure, match="more than lag=1 draws ahead"):
        stream.next(2)  # draw 2 needs draw 0's rewards


def test_resume_from_a_checkpoint_draws_the_same_prompts(tmp_path):
    reference = run(PromptStream(PassRateSelector()), range(10))
    log = tmp_path / "steps.log.jsonl"
    crashed = PromptStream(PassRateSelector(), log=log, make_selector=PassRateSelector)
    first = run(crashed, range(6))  # the process dies after draw 5; its checkpoint had draws 0..3
    assert first == reference[:6]
    resumed = PromptStream(PassRateSelector(), log=log, make_selector=PassRateSelector)
    resumed.restore(4)
    assert resumed.draws == 4 and resumed.completed == 4
    rest = run(resumed, range(4, 10))
    assert rest == reference[4:]
    assert [b.draw for b in read_batches(log)] == list(range(10))  # the log holds one report per draw, no duplicates


def test_a_crash_without_trainer_checkpoint_starts_the_stream_over(tmp_path):
    log = tmp_path / "steps.log.jsonl"
    run(PromptStream(PassRateSelector(), log=log, make_selector=PassRateSelector), range(3))
    again = PromptStream(PassRateSelector(), log=log, make_selector=PassRateSelector)
    ids = run(again, range(5))
    assert ids == run(PromptStream(PassRateSelector()), range(5))
    assert [b.draw for b in read_batches(log)] == list(range(5))


def test_a_torn_last_log_line_is_ignored(tmp_path):
    log = tmp_path / "steps.log.jsonl"
    run(PromptStream(PassRateSelector(), log=log, make_selector=PassRateSelector), range(4))
    log.write_text(log.read_text() + '{"event": "draw", "dr')
    resumed = PromptStream(PassRateSelector(), log=log, make_selector=PassRateSelector)
    resumed.restore(3)
    assert resumed.draws == 3


def test_a_selector_that_is_not_deterministic_is_named_on_restore(tmp_path):
    log = tmp_path / "steps.log.jsonl"
    run(PromptStream(PassRateSelector(seed=1), log=log, make_selector=lambda: PassRateSelector(seed=1)), range(4))
    seeds = iter(range(100, 200))
    bad = PromptStream(PassRateSelector(), log=log, make_selector=lambda: PassRateSelector(seed=next(seeds)))
    with pytest.raises(RuntimeFailure, match="PassRateSelector is not deterministic"):
        bad.restore(3)


def test_dropped_groups_are_booked_as_choosing_compute():
    stream = PromptStream(PassRateSelector())
    with StageMeter("train") as meter:
        prompts = [POOL[3], POOL[1], POOL[2]]  # mixed, all-pass, all-fail
        stream.next(3)
        kept = stream.report(0, fake_rollouts(prompts, 0))
    assert kept == [True, False, False]
    assert (
        meter.counts["dropped_groups"] == 2
        and meter.counts["dropped_rollouts"] == 8
        and meter.counts["dropped_tokens"] == 16
    )
    assert stream.summary()["dropped_rollouts"] == 8


def test_non_finite_rewards_are_refused_at_the_report():
    stream = PromptStream(PassRateSelector())
    stream.next(1)
    with pytest.raises(RuntimeFailure, match="not a finite number"):
        stream.report(0, [RolloutGroup("p1", "easy", (float("nan"),))])


def test_planned_selector_covers_every_prompt_once_per_pass_and_forwards_batches():
    seen = []
    stream = PromptStream(PlannedSelector(POOL, passes=2, seed=3, watch=seen.append), online=False)
    drawn = []
    for d in range(6):
        prompts = stream.next(4)
        drawn += [p.id for p in prompts]
        stream.report(d, fake_rollouts(prompts, d))
    stream.finish()
    assert sorted(drawn) == sorted([p.id for p in POOL] * 2)
    assert [b.draw for b in seen] == list(range(6))


def test_group_rollouts_follows_trl_layout_and_batches_round_trip(tmp_path):
    groups = group_rollouts(
        ["a", "a", "b", "b", "a", "a"], ["x", "x", "y", "y", "x", "x"], [1, 0, 0, 0, 1, 1], [3, 4, 5, 6, 7, 8]
    )
    assert [(g.prompt_id, g.rewards, g.tokens) for g in groups] == [
        ("a", (1.0, 0.0), 7),
        ("b", (0.0, 0.0), 11),
        ("a", (1.0, 1.0), 15),
    ]
    assert [g.zero_variance for g in groups] == [False, True, True]
    stream = PromptStream(PassRateSelector())
    stream.next(3)
    stream.report(0, groups)
    write_batches(tmp_path / "steps.jsonl", stream.batches())
    assert read_batches(tmp_path / "steps.jsonl") == stream.batches()


def test_refill_draws_are_logged_as_refills_and_counted_again_on_restore(tmp_path):
    """A refilling trainer's stage record says how many refill draws it made, also after a resume."""
    log = tmp_path / "steps.log.jsonl"
    stream = PromptStream(PassRateSelector(), log=log, make_selector=PassRateSelector)
    for d in range(6):  # a synchronous trainer that refills whatever the filter dropped
        prompts = stream.refill(4) if d % 2 else stream.next(4)
        stream.report(d, fake_rollouts(prompts, d))
    assert stream.refills == 3 and stream.summary()["refills"] == 3
    resumed = PromptStream(PassRateSelector(), log=log, make_selector=PassRateSelector)
    resumed.restore(5)  # the checkpoint covered draws 0-4: refills 1 and 3
    assert resumed.refills == 2 and resumed.draws == 5
