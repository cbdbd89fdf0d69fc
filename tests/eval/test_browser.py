"""Human evaluation and the report in a real headless browser (Playwright driving Debian's Chromium)."""

import json
import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="Debian chromium not installed (.ci/run installs it)"),
]
FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

QUESTIONS = [
    "How do I fix a squeaky door?",
    "What is a good budget?",
    "How do I clean cast iron?",
    "Why is the sky blue?",
]


@pytest.fixture
def browser():
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS, headless=True)
        yield b
        b.close()


def fake_run(run: Path) -> None:
    (run / "config.json").parent.mkdir(parents=True)
    (run / "config.json").write_text(json.dumps({"experiment": {"name": "r", "iterations": 2}}))
    for arm, good in (("aop", {0, 1, 2}), ("sop", {3})):
        it = run / "arms" / arm / "iter-02"
        it.mkdir(parents=True)
        rows = [
            {"id": f"t{k}", "question": q, "answer": ("GOOD " if k in good else "") + f"{arm} answer to {q}"}
            for k, q in enumerate(QUESTIONS)
        ]
        (it / "test_answers.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))


def serve(run: Path, *extra: str) -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "aopcore.cli", "human-eval", "serve", str(run), "--port", "0", "--sample", "4", *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    for line in proc.stdout:
        if m := re.search(r"serving human evaluation on (http://\S+)", line):
            return proc, m.group(1)
    raise AssertionError("server did not start")


def vote(page, count: int, contrarian: bool = False) -> None:
    """Vote for the response that says GOOD (or, contrarian, against it on the first item)."""
    for n in range(count):
        a, b = page.inner_text("#resp-a"), page.inner_text("#resp-b")
        choice = "A" if "GOOD" in a and "GOOD" not in b else "B" if "GOOD" in b and "GOOD" not in a else "C"
        if contrarian and n == 0:
            choice = {"A": "B", "B": "A", "C": "C"}[choice]
        page.click(f"#vote-{choice}")
        page.wait_for_load_state()


def test_two_raters_vote_server_restarts_results_are_right(browser, tmp_path: Path):
    run = tmp_path / "run"
    fake_run(run)
    proc, url = serve(run, "--rater", "alice", "--rater", "bob")
    tokens = dict(line.split("\t") for line in (run / "human_eval_tokens.txt").read_text().splitlines())
    pages = {}
    try:
        for name in ("alice", "bob"):
            page = browser.new_context().new_page()
            page.goto(url)
            page.fill("#token", tokens[name])
            page.click("#signin")
            assert "0 of 4 rated" in page.inner_text("#progress")
            pages[name] = page
        bad = browser.new_context().new_page()
        bad.goto(url)
        bad.fill("#token", "not-a-token")
        bad.click("#signin")
        assert "Unknown token" in bad.inner_text("#error")
        vote(pages["alice"], 2)
        vote(pages["bob"], 2, contrarian=True)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=10)
    proc, url = serve(run)  # restart: no votes lost, cookies still valid
    try:
        for _name, page in pages.items():
            page.goto(url + "vote")
            assert "2 of 4 rated" in page.inner_text("#progress")
            vote(page, 2)
            assert "All 4 items are rated" in page.inner_text("#done")
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=10)
    result = subprocess.run(
        [sys.executable, "-m", "aopcore.cli", "human-eval", "results", str(run)], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    out = json.loads((run / "tables" / "human_eval.json").read_text())
    assert out["votes"] == 8 and out["raters"] == 2
    row = out["winrates"][0]
    # aop's answer is the GOOD one on 3 prompts, sop's on 1. Bob disagreed on his first item: that item has no majority -> tie.
    assert (row["arm_a"], row["arm_b"], row["iteration"], row["n"]) == ("aop", "sop", 2, 4)
    assert row["a_wins_pct"] + row["b_wins_pct"] + row["ties_pct"] == pytest.approx(100)
    assert row["ties_pct"] == 25.0 and row["a_wins_pct"] in (50.0, 75.0) and row["b_wins_pct"] in (0.0, 25.0)
    # Fleiss' kappa for 4 items, 2 raters, one disagreement, computed by hand
    assert out["kappa"] == pytest.approx(expected_kappa(run), abs=1e-9)
    assert "Fleiss' kappa" in result.stdout


def expected_kappa(run: Path) -> float:
    """Recompute kappa directly from the raw votes, un-shuffled, with the textbook formula."""
    import sqlite3
    from collections import Counter

    db = sqlite3.connect(run / "human_eval.sqlite")
    shown = dict(db.execute("SELECT id, arm_shown_a FROM items"))
    per_item = {}
    for _, item, choice in db.execute("SELECT rater, item, choice FROM votes"):
        if shown[item] != "aop":
            choice = {"A": "B", "B": "A", "C": "C"}[choice]
        per_item.setdefault(item, Counter())[choice] += 1
    n, N = 2, len(per_item)
    p_j = [sum(c[k] for c in per_item.values()) / (N * n) for k in "ABC"]
    p_i = [(sum(c[k] ** 2 for k in "ABC") - n) / (n * (n - 1)) for c in per_item.values()]
    p_e = sum(p * p for p in p_j)
    return (sum(p_i) / N - p_e) / (1 - p_e)


def test_report_renders_tables_and_plots(browser, tmp_path: Path):
    sys.path.insert(0, str(Path(__file__).parents[1] / "toy"))
    from aopcore import Budget, Experiment, Question

    import toy_components as toy

    heldout = [Question(f"h{i}", f"q {i}", c) for i, c in enumerate(["a", "b", "c"] * 3)]
    run = (
        Experiment(
            name="shot",
            output_dir=tmp_path,
            trainer=toy.ToyTrainer(toy.ToyTrainerOptions()),
            reward=toy.LengthReward(),
            arms={"x": toy.StaticCurriculum(toy.StaticOptions()), "y": toy.WeakestCurriculum()},
            heldout=heldout,
            test_prompts=heldout[:4],
            judge=toy.LengthJudge(toy.MarginJudgeOptions()),
            budget=Budget(2, 6, 1),
        )
        .run()
        .run_dir
    )
    page = browser.new_page(viewport={"width": 1200, "height": 900})
    page.goto((run / "report.html").as_uri())
    headings = page.locator("h2").all_inner_texts()
    for h in (
        "Held-out reward",
        "Prompt categories per iteration, and why",
        "Training curves",
        "Compute ledger: choosing prompts vs training",
    ):
        assert h in headings
    assert any(h.startswith("Win rates") for h in headings)
    widths = page.eval_on_selector_all("img", "imgs => imgs.map(i => i.naturalWidth)")
    assert len(widths) >= 4 and all(w > 200 for w in widths)  # every plot decoded and rendered
    assert page.locator("table").count() >= 4
    shot = tmp_path / "report.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 50_000
