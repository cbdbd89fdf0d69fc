"""examples/own_loop.py, the "your own loop" example of docs/library.md: AOP follows a plain generate function."""

import ast
import subprocess
import sys

from helpers import ROOT

WORD_TASKS = {"counting", "reversal", "uppercase", "conversion"}  # what the example's policy answers wrong at first


def run_example(state_dir):
    result = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "own_loop.py"), str(state_dir)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def rounds(stdout):
    return {
        int(line.split(":")[0].split()[1]): ast.literal_eval(line.split(": ", 1)[1])
        for line in stdout.splitlines()
        if line.startswith("round ")
    }


def test_prompts_follow_what_the_function_answers_wrong_and_a_rerun_resumes(tmp_path):
    out = run_example(tmp_path / "state")
    got = rounds(out)
    assert sorted(got) == [1, 2, 3]
    for r, counts in got.items():
        assert sum(counts.values()) == 16, (r, counts)
        assert set(counts) <= WORD_TASKS, (r, counts)  # never the arithmetic the function already answers right
    # the toy trainer learned round 1's category, so round 2's evaluation says it is no longer weak
    learned = max(got[1], key=got[1].get)
    assert learned not in got[2] and max(got[2], key=got[2].get) not in got[3]
    calls = int(out.split("feedback calls:")[1])
    assert calls > 0
    assert (tmp_path / "state" / "arms" / "session" / "iter-03" / "prompts.jsonl").exists()
    again = run_example(tmp_path / "state")  # every round ended: the reopened session has nothing left to do
    assert rounds(again) == {} and int(again.split("feedback calls:")[1]) == calls


def test_docs_quote_the_example_as_it_is():
    code = (ROOT / "examples" / "own_loop.py").read_text().split('"""', 2)[2].strip()
    assert code in (ROOT / "docs" / "library.md").read_text(), (
        "update the quote of examples/own_loop.py in docs/library.md"
    )
