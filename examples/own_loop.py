"""AOP choosing the prompts of a training loop aopcore does not own (docs/library.md, "Your own loop").

The "policy" is a plain function that answers the testbed's arithmetic and leaves the word tasks wrong, and
its "training" learns the category it saw most prompts of. Runs in seconds on CPU:

    .venv/bin/python examples/own_loop.py [STATE_DIR]      # rerun with the same folder: it resumes
"""

import sys
from collections import Counter

from aopcore import CurriculumSession
from aopcore_testbed.skills import skill_of

known = {"addition", "subtraction", "maximum"}  # what the policy answers right so far


def generate(texts):  # your policy: questions in, answers out
    return [skill.solve(t) if (skill := skill_of(t)) and skill.name in known else "no idea" for t in texts]


def train(prompts):  # your trainer: here it learns the most-drilled category
    known.add(Counter(p.category for p in prompts).most_common(1)[0][0])


session = CurriculumSession(
    "aop",
    options={"targeting": "per-category", "prompt_style": "compact", "draws": 4},
    heldout="testbed:heldout",
    reward="verifier",
    feedback="testbed-writer",
    state_dir=sys.argv[1] if len(sys.argv) > 1 else "runs/own-loop",
    budget=16,
    rounds=3,
    seed=0,
)
for _ in range(session.round, 3):  # a reopened session continues after its last ended round
    prompts = session.next_prompts(generate=generate)  # evaluates generate on the held-out set, then chooses
    stream = session.stream()  # None for AOP (it chooses once per round)
    train(prompts)
    session.end_round(stream)
    print(f"round {session.round}: {dict(sorted(Counter(p.category for p in prompts).items()))}", flush=True)
print("feedback calls:", sum(r.get("feedback_calls", 0) for r in session.ledger()))
