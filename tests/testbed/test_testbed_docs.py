"""The testbed's run time is stated in three places; all three agree with the committed comparison's measured run.

The committed run may be measured on a machine shared with other work, so its wall time says little about a user's
idle machine. What README.md and examples/testbed.toml promise is the time of their command, `aopcore run
examples/testbed.toml`, which runs the seeds one after another in one process: on an idle machine that is about the
measured run's CPU time. docs/testbed.md states both the wall and the CPU time."""

import json
import re
from pathlib import Path

ROOT = Path(__file__).parents[2]


def test_stated_run_times_agree_with_the_committed_measured_run():
    result = json.loads((ROOT / "benchmarks" / "results" / "testbed_compare.json").read_text())
    assert result["complete"] is True  # the committed run is the full comparison, not a reduced one
    measured = result.get("time_full_run") or result["time"]
    wall = measured["wall_s"]
    minutes = max(1, round((measured.get("cpu_s") or wall) / 60))
    doc = (ROOT / "docs" / "testbed.md").read_text()
    if measured.get("cpu_s") is None:  # a run whose CPU time was not recorded (time_full_run says why): wall only
        stated = re.search(r"\*\*(\d+) s wall\*\*", doc)
        assert stated, "docs/testbed.md states the comparison's wall time as **N s wall**"
        assert int(stated.group(1)) == round(wall)
    else:
        stated = re.search(r"\*\*(\d+) s wall, (\d+) s CPU\*\*", doc)
        assert stated, "docs/testbed.md states the comparison's wall and CPU time as **N s wall, M s CPU**"
        assert (int(stated.group(1)), int(stated.group(2))) == (round(wall), round(measured["cpu_s"]))
    readme = (ROOT / "README.md").read_text()
    example = (ROOT / "examples" / "testbed.toml").read_text()
    said = re.findall(r"testbed[^\n]*\n?[^\n]*?about (\d+) minutes on 2 idle", readme) + re.findall(
        r"about (\d+) minutes on 2 idle CPU cores", example
    )
    assert len(said) == 3, said  # README twice, examples/testbed.toml once
    assert all(int(m) == minutes for m in said), (said, wall)


def test_the_tables_in_the_docs_are_the_committed_results():
    """docs/testbed.md's result tables are generated (benchmarks/testbed_tables.py --write): a rerun of the comparison
    that is committed without rewriting the page fails here instead of leaving stale figures in the docs."""
    import sys

    sys.path.insert(0, str(ROOT / "benchmarks"))
    from testbed_tables import render, tables

    page = (ROOT / "docs" / "testbed.md").read_text()
    generated = tables()
    blocks = re.findall(r"<!-- table:([\w-]+) -->", page)
    assert {"arms", "pairs", "oracle", "compute", "regime"} <= set(blocks), blocks
    assert render(page, generated) == page, "run `.venv/bin/python benchmarks/testbed_tables.py --write`"
    bench = (ROOT / "benchmarks" / "README.md").read_text()  # its testbed section is generated from the same file
    assert re.findall(r"<!-- table:([\w-]+) -->", bench) == ["benchmarks-summary"]
    assert render(bench, generated) == bench, "run `.venv/bin/python benchmarks/testbed_tables.py --write`"
    assert f"{len(generated_arms(ROOT))} arms" in bench


def generated_arms(root: Path) -> list[str]:
    return json.loads((root / "benchmarks" / "results" / "testbed_compare.json").read_text())["arms"]


def test_the_sequence_tiers_tables_are_generated_into_its_section():
    """The sequence tier's committed comparison (benchmarks/results/testbed_seq.json) has its own generated blocks,
    in its own section of docs/testbed.md; a reduced run says so there."""
    result = json.loads((ROOT / "benchmarks" / "results" / "testbed_seq.json").read_text())
    page = (ROOT / "docs" / "testbed.md").read_text()
    start = page.index("## The sequence tier")
    end = page.find("\n## ", start + 1)
    section = page[start : end if end > 0 else None]
    blocks = set(re.findall(r"<!-- table:([\w-]+) -->", section))
    wanted = {"seq-arms", "seq-pairs", "seq-oracle", "seq-time", "seq-compute"} | (
        {"seq-power"} if result.get("power") else set()
    )
    assert wanted <= blocks, blocks
    assert not {b for b in re.findall(r"<!-- table:([\w-]+) -->", page) if b.startswith("seq-")} - blocks
    if not result["complete"]:
        assert "REDUCED" in section
