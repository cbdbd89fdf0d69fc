"""The testbed's run time is stated in three places; all three agree with the committed comparison's measured run."""
import json
import re
from pathlib import Path

ROOT = Path(__file__).parent.parent


def test_stated_run_times_agree_with_the_committed_measured_run():
    result = json.loads((ROOT / "benchmarks" / "results" / "testbed_compare.json").read_text())
    assert result["complete"] is True  # the committed run is the full comparison, not a reduced one
    measured = result.get("time_full_run") or result["time"]
    wall = measured["wall_s"]
    minutes = max(1, round(wall / 60))
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
    said = re.findall(r"testbed[^\n]*\n?[^\n]*?about (\d+) minutes on 2", readme) + re.findall(r"about (\d+) minutes on 2 CPU cores", example)
    assert len(said) == 3, said  # README twice, examples/testbed.toml once
    assert all(int(m) == minutes for m in said), (said, wall)
