"""The testbed's data sets (aopcore_testbed.sets): a short test set still covers every category."""

import json


def test_a_short_testbed_test_set_covers_every_category():
    from aopcore_testbed import sets
    from aopcore_testbed.skills import CATEGORIES

    built = sets.build_sets()
    for name in ("heldout", "test"):
        first = built[name][: len(CATEGORIES)]  # test_size = 7 takes these
        assert sorted(q.category for q in first) == sorted(CATEGORIES), name
        packaged = [json.loads(line)["category"] for line in (sets.DATA / f"{name}.jsonl").read_text().splitlines()]
        assert sorted(packaged[: len(CATEGORIES)]) == sorted(CATEGORIES), (
            f"{name}.jsonl: rerun python -m aopcore_testbed.sets"
        )
