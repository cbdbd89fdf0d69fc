"""The run directory's names are spelled in aopcore.storage.rundir only (issue 29): a path written elsewhere would drift."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from aopcore.storage.rundir import RunLayout, iteration_of, seed_name, stage_id, stage_iteration, stage_seed

ROOT = Path(__file__).resolve().parents[2]
# how the layout's names look inside a string or f-string of code (docstrings may describe the layout)
PATTERNS = re.compile(
    r"iter-\{|[\"'/]iter-[*0-9]|seed-\{|[\"']seed-\*|shared-sft|train-index|raw-iter|"
    r"[\"'](prompts|evaluation|test_answers|steps)\.jsonl[\"']|[\"']arms[\"'], |/ [\"'](arms|judge)[\"']"
)
LAYOUT = ROOT / "aopcore" / "storage" / "rundir.py"


def _code_strings(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text())
    docstrings = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
        and node.body
        and isinstance(node.body[0], ast.Expr)
        and isinstance(node.body[0].value, ast.Constant)
    }
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.JoinedStr):
            out.append((node.lineno, ast.unparse(node)))
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings:
            out.append((node.lineno, repr(node.value)))
        elif isinstance(node, ast.BinOp) and isinstance(node.op, ast.Div):
            out.append((node.lineno, ast.unparse(node)))
    return out


def test_no_run_directory_path_is_spelled_outside_the_layout_module():
    found = []
    for path in sorted([*(ROOT / "aopcore").rglob("*.py"), *(ROOT / "plugins").rglob("*.py")]):
        if path == LAYOUT:
            continue
        for line, text in _code_strings(path):
            if PATTERNS.search(text):
                found.append(f"{path.relative_to(ROOT)}:{line}: {text[:90]}")
    assert not found, "run-directory paths outside aopcore/storage/rundir.py:\n" + "\n".join(sorted(set(found)))


def test_the_pattern_catches_a_spelled_path(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text('"""iter-NN is fine in a docstring"""\nx = f"arms/{a}/iter-{i:02d}/prompts"\ny = run / "arms" / a\n')
    assert {line for line, t in _code_strings(bad) if PATTERNS.search(t)} == {2, 3}


def test_layout_keeps_the_released_names(tmp_path):
    layout = RunLayout(tmp_path)
    assert layout.rel(layout.prompts("aop", 2)) == "arms/aop/iter-02/prompts.jsonl"
    assert layout.rel(layout.evaluation("aop", 0)) == "sft/evaluation.jsonl"
    assert layout.rel(layout.policy_dir("aop", 3)) == "arms/aop/iter-03/policy"
    assert layout.rel(layout.raw_verdicts("a", "b", 1)) == "judge/a-vs-b/raw-iter-01.jsonl"
    assert layout.rel(layout.train_scratch("aop", 1)) == "scratch/arms__aop__iter-01__train"
    assert layout.rel(layout.seed_dir(4)) == seed_name(4) == "seed-4"
    assert stage_id("aop", 12, "train") == "arms/aop/iter-12/train"
    assert stage_iteration("judge/a-vs-b/iter-07") == 7 and stage_iteration("sft/policy") is None
    assert iteration_of("iter-03") == 3 and iteration_of("iter-x") is None
    assert stage_seed(0, "arms/aop/iter-01/prompts") == stage_seed(0, stage_id("aop", 1, "prompts"))
    from aopcore.engine import experiment

    assert experiment.stage_seed is stage_seed  # the published import path still works
