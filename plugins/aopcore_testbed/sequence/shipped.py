"""The shipped ``testbed-seq`` start policy: where it lives, and its held-out score per category.

``python -m aopcore_testbed.sequence.regenerate`` writes the folder and its ``manifest.json``; importing this module
has no side effects.
"""

from __future__ import annotations

from pathlib import Path

WEIGHTS = Path(__file__).parents[1] / "weights" / "testbed-seq"
EVAL_MAX_NEW_TOKENS = 48  # the longest answer (three words reversed) is 23 tokens; examples/testbed-seq.toml agrees
EVAL_BATCH_SIZE = 64


def start_scores(folder: Path) -> dict[str, dict[str, float]]:
    """The policy in ``folder`` on ``testbed-seq:heldout``, greedy, exactly as an experiment evaluates it.

    ``score``: the mean of the tasks' own scores (the reward; partial credit included), overall (``(all)``) and per
    category; ``exact``: the share of answers scored 1 (all right); ``answer_tokens``: the mean length of the
    answers in tokens (characters; the end-of-sequence token not counted).
    """
    from transformers import AutoTokenizer

    from aopcore_hf.options import PolicyOptions
    from aopcore_hf.policy import HFPolicyBase
    from aopcore_testbed.sequence.sets import load
    from aopcore_testbed.sequence.verifier import SequenceReward

    heldout = load("heldout")
    policy = HFPolicyBase(
        PolicyOptions(
            model=str(folder), device="cpu", eval_max_new_tokens=EVAL_MAX_NEW_TOKENS, eval_batch_size=EVAL_BATCH_SIZE
        )
    )
    texts = [q.text for q in heldout]
    answers = policy.generate(Path(folder), texts, seed=0)
    rewards = SequenceReward().score(texts, answers)
    tok = AutoTokenizer.from_pretrained(folder)
    lengths = [len(tok(a, add_special_tokens=False)["input_ids"]) for a in answers]
    by: dict[str, list[tuple[float, int]]] = {}
    for q, r, n in zip(heldout, rewards, lengths):
        by.setdefault(q.category or "", []).append((r, n))
    every = [x for v in by.values() for x in v]
    out: dict[str, dict[str, float]] = {"score": {}, "exact": {}, "answer_tokens": {}}
    for name, rows in [*sorted(by.items()), ("(all)", every)]:
        out["score"][name] = round(sum(r for r, _ in rows) / len(rows), 6)
        out["exact"][name] = round(sum(r == 1.0 for r, _ in rows) / len(rows), 6)
        out["answer_tokens"][name] = round(sum(n for _, n in rows) / len(rows), 3)
    return out
