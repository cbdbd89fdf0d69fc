"""Human evaluation (paper 6.2): blinded, shuffled pairwise votes from several raters, and their tally.

`aopcore human-eval serve RUN_DIR` serves a small web app (standard library only). Each rater signs in with
a personal token and sees the pairs in a shuffled order with the two answers in a random (recorded) position;
votes are committed to SQLite at once, one per rater and item, so nothing is lost when the server restarts.
`aopcore human-eval results RUN_DIR` un-shuffles, majority-votes each item and prints the win-rate table
(paper table 4) with Fleiss' kappa for inter-rater agreement.
"""

from __future__ import annotations

import hashlib
import html
import random
import secrets
import sqlite3
import threading
from collections import Counter
from http.cookies import SimpleCookie
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs

from aopcore import InputError
from aopcore.analysis.stats import WinRate
from aopcore.analysis.tables import markdown_table
from aopcore.records import iter_jsonl
from aopcore.storage.rundir import TEST_ANSWERS, RunLayout

DB_NAME = "human_eval.sqlite"
SCHEMA = """
CREATE TABLE IF NOT EXISTS items (id TEXT PRIMARY KEY, pair TEXT, iteration INTEGER, question TEXT,
    shown_a TEXT, shown_b TEXT, arm_shown_a TEXT, arm_shown_b TEXT, position INTEGER);
CREATE TABLE IF NOT EXISTS raters (name TEXT PRIMARY KEY, token_hash TEXT UNIQUE);
CREATE TABLE IF NOT EXISTS votes (rater TEXT, item TEXT, choice TEXT CHECK (choice IN ('A','B','C')), created REAL,
    PRIMARY KEY (rater, item));
"""


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def connect(run_dir: Path) -> sqlite3.Connection:
    db = sqlite3.connect(Path(run_dir) / DB_NAME, timeout=30)
    db.execute("PRAGMA journal_mode=WAL")
    db.executescript(SCHEMA)
    return db


def answered_iterations(run_dir: Path, arm: str) -> list[int]:
    """Iterations of ``arm`` that have test answers (the ones a human can compare)."""
    return RunLayout.of(run_dir).iterations_with(arm, TEST_ANSWERS)


def check_pairs(run_dir: Path, pairs: list[tuple[str, str]], iterations: list[int]) -> None:
    """One clear line for an arm the run does not have or an iteration without test answers for both arms."""
    arms = RunLayout.of(run_dir).arms()
    for a, b in pairs:
        for arm in (a, b):
            if arm not in arms:
                raise InputError(
                    f"{run_dir}: unknown arm {arm!r} in --pair {a}:{b} (arms: {', '.join(arms) or 'none'})"
                )
        both = sorted(set(answered_iterations(run_dir, a)) & set(answered_iterations(run_dir, b)))
        for i in iterations:
            if i not in both:
                have = ", ".join(map(str, both)) or "none yet (is the run finished?)"
                raise InputError(
                    f"{run_dir}: iteration {i} has no test answers for both {a} and {b} "
                    f"(iterations with answers: {have}); pick one with --iteration"
                )


def prepare(
    run_dir: Path, pairs: list[tuple[str, str]], iterations: list[int], sample: int, raters: list[str], seed: int = 0
) -> dict[str, str]:
    """Create the blinded items (once) and a token per new rater; returns {rater: token} for the new raters."""
    run_dir = Path(run_dir)
    from aopcore.errors import RuntimeFailure
    from aopcore.storage.integrity import damaged_message, first_damage

    damage = first_damage(run_dir, lambda stage: stage.endswith("/answers") or stage.startswith("judge/"))
    if damage is not None:  # the answers raters see (and the judge's verdicts they are compared with) must be intact
        raise RuntimeFailure(damaged_message(run_dir, damage))
    db = connect(run_dir)
    rng = random.Random(seed)
    if not db.execute("SELECT COUNT(*) FROM items").fetchone()[0]:
        check_pairs(run_dir, pairs, iterations)
        rows = []
        for a, b in pairs:
            for i in iterations:
                fa, fb = (RunLayout.of(run_dir).test_answers(arm, i) for arm in (a, b))
                for f in (fa, fb):
                    if not f.exists():
                        raise InputError(f"{f}: no test answers (is the run finished, and is {i} a judged iteration?)")
                answers_a = {o["id"]: o for _, o in iter_jsonl(fa)}
                answers_b = {o["id"]: o for _, o in iter_jsonl(fb)}
                ids = sorted(set(answers_a) & set(answers_b))
                for qid in rng.sample(ids, min(sample, len(ids))):
                    swap = rng.random() < 0.5
                    first, second = (b, a) if swap else (a, b)
                    text = {a: answers_a[qid]["answer"], b: answers_b[qid]["answer"]}
                    rows.append(
                        (
                            f"{a}-vs-{b}:{i}:{qid}",
                            f"{a}-vs-{b}",
                            i,
                            answers_a[qid]["question"],
                            text[first],
                            text[second],
                            first,
                            second,
                        )
                    )
        rng.shuffle(rows)
        db.executemany("INSERT INTO items VALUES (?,?,?,?,?,?,?,?,?)", [(*r, n) for n, r in enumerate(rows)])
    tokens = {}
    for name in raters:
        if db.execute("SELECT 1 FROM raters WHERE name = ?", (name,)).fetchone():
            continue
        token = secrets.token_urlsafe(12)
        db.execute("INSERT INTO raters VALUES (?, ?)", (name, _hash(token)))
        tokens[name] = token
    db.commit()
    db.close()
    return tokens


PAGE = """<!doctype html><html><head><meta charset="utf-8"><title>aopcore human evaluation</title>
<style>body{{font-family:system-ui,sans-serif;max-width:900px;margin:2em auto;padding:0 1em}}
.resp{{border:1px solid #ccc;padding:.8em;margin:.5em 0;white-space:pre-wrap}}button{{font-size:1.1em;margin-right:.6em;padding:.4em 1.2em}}</style>
</head><body>{body}</body></html>"""


class HumanEvalServer:
    def __init__(self, run_dir: Path, host: str = "127.0.0.1", port: int = 8765) -> None:
        self.run_dir = Path(run_dir)
        connect(self.run_dir).close()
        self.lock = threading.Lock()
        app = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                app.get(self)

            def do_POST(self):
                app.post(self)

        self.httpd = ThreadingHTTPServer((host, port), Handler)
        self.httpd.daemon_threads = True

    @property
    def port(self) -> int:
        return self.httpd.server_address[1]

    def serve_forever(self) -> None:
        self.httpd.serve_forever()

    # ---- helpers ----
    def _rater(self, h: BaseHTTPRequestHandler) -> str | None:
        cookie = SimpleCookie(h.headers.get("cookie", ""))
        token = cookie["token"].value if "token" in cookie else None
        if not token:
            return None
        db = connect(self.run_dir)
        row = db.execute("SELECT name FROM raters WHERE token_hash = ?", (_hash(token),)).fetchone()
        db.close()
        return row[0] if row else None

    @staticmethod
    def _send(h: BaseHTTPRequestHandler, body: str, status: int = 200, headers: dict | None = None) -> None:
        data = PAGE.format(body=body).encode()
        h.send_response(status)
        h.send_header("content-type", "text/html; charset=utf-8")
        h.send_header("content-length", str(len(data)))
        for k, v in (headers or {}).items():
            h.send_header(k, v)
        h.end_headers()
        h.wfile.write(data)

    @staticmethod
    def _redirect(h: BaseHTTPRequestHandler, to: str, headers: dict | None = None) -> None:
        h.send_response(303)
        h.send_header("location", to)
        h.send_header("content-length", "0")
        for k, v in (headers or {}).items():
            h.send_header(k, v)
        h.end_headers()

    def _form(self, h: BaseHTTPRequestHandler) -> dict[str, str]:
        length = int(h.headers.get("content-length", 0))
        return {k: v[0] for k, v in parse_qs(h.rfile.read(length).decode()).items()}

    # ---- routes ----
    def get(self, h: BaseHTTPRequestHandler) -> None:
        rater = self._rater(h)
        if h.path.startswith("/vote") and rater:
            return self._vote_page(h, rater)
        if rater:
            return self._redirect(h, "/vote")
        self._send(
            h,
            "<h1>Human evaluation</h1><form method='post' action='/login'><label>Your token "
            "<input name='token' id='token' autofocus></label> <button id='signin'>Sign in</button></form>",
        )

    def post(self, h: BaseHTTPRequestHandler) -> None:
        form = self._form(h)
        if h.path == "/login":
            db = connect(self.run_dir)
            ok = db.execute("SELECT 1 FROM raters WHERE token_hash = ?", (_hash(form.get("token", "")),)).fetchone()
            db.close()
            if not ok:
                return self._send(h, "<p id='error'>Unknown token.</p><a href='/'>Try again</a>", 403)
            return self._redirect(
                h, "/vote", {"set-cookie": f"token={form['token']}; HttpOnly; Path=/; SameSite=Strict"}
            )
        rater = self._rater(h)
        if h.path == "/vote" and rater:
            if form.get("choice") not in ("A", "B", "C") or not form.get("item"):
                return self._send(h, "<p id='error'>Invalid vote.</p>", 400)
            with self.lock:
                db = connect(self.run_dir)
                exists = db.execute("SELECT 1 FROM items WHERE id = ?", (form["item"],)).fetchone()
                if exists:
                    db.execute(
                        "INSERT OR IGNORE INTO votes VALUES (?, ?, ?, strftime('%s','now'))",
                        (rater, form["item"], form["choice"]),
                    )
                    db.commit()
                db.close()
            return self._redirect(h, "/vote")
        self._redirect(h, "/")

    def _vote_page(self, h: BaseHTTPRequestHandler, rater: str) -> None:
        db = connect(self.run_dir)
        total = db.execute("SELECT COUNT(*) FROM items").fetchone()[0]
        done = db.execute("SELECT COUNT(*) FROM votes WHERE rater = ?", (rater,)).fetchone()[0]
        # each rater gets the items in a personal shuffled order
        rows = db.execute(
            "SELECT id, question, shown_a, shown_b FROM items WHERE id NOT IN (SELECT item FROM votes WHERE rater = ?)",
            (rater,),
        ).fetchall()
        db.close()
        if not rows:
            return self._send(
                h, f"<h1>Thank you, {html.escape(rater)}</h1><p id='done'>All {total} items are rated.</p>"
            )
        rows.sort(key=lambda r: hashlib.sha256(f"{rater}:{r[0]}".encode()).hexdigest())
        item_id, question, a, b = rows[0]
        buttons = "".join(
            f"<button name='choice' value='{c}' id='vote-{c}'>{label}</button>"
            for c, label in (("A", "A is more helpful"), ("B", "B is more helpful"), ("C", "About the same"))
        )
        body = (
            f"<p id='progress'>{html.escape(rater)}: {done} of {total} rated</p><h2>Question</h2><div class='resp' id='question'>{html.escape(question)}</div>"
            f"<h3>Response A</h3><div class='resp' id='resp-a'>{html.escape(a)}</div><h3>Response B</h3><div class='resp' id='resp-b'>{html.escape(b)}</div>"
            f"<form method='post' action='/vote'><input type='hidden' name='item' value='{html.escape(item_id)}'>{buttons}</form>"
        )
        self._send(h, body)


def fleiss_kappa(ratings: list[Counter]) -> float:
    """Fleiss' kappa over items rated by the same number (>= 2) of raters; categories A, B, C."""
    ratings = [r for r in ratings if sum(r.values()) >= 2]
    if not ratings:
        return float("nan")
    n = sum(ratings[0].values())
    ratings = [r for r in ratings if sum(r.values()) == n]
    cats = ("A", "B", "C")
    p_j = {c: sum(r[c] for r in ratings) / (len(ratings) * n) for c in cats}
    p_i = [(sum(r[c] ** 2 for c in cats) - n) / (n * (n - 1)) for r in ratings]
    p_bar = sum(p_i) / len(p_i)
    p_e = sum(v * v for v in p_j.values())
    return 1.0 if p_e == 1 else (p_bar - p_e) / (1 - p_e)


def item_votes(run_dir: Path) -> tuple[dict[str, tuple], dict[str, Counter], int]:
    """Items by id (id, pair, iteration, arm shown as A), the votes per item in the (arm_a, arm_b) frame, raters."""
    db = connect(run_dir)
    items = {r[0]: r for r in db.execute("SELECT id, pair, iteration, arm_shown_a FROM items")}
    votes = db.execute("SELECT rater, item, choice FROM votes").fetchall()
    db.close()
    per_item: dict[str, Counter] = {}
    for _, item, choice in votes:
        _, pair, _, shown_a = items[item]
        arm_a = pair.split("-vs-")[0]
        if shown_a != arm_a:  # un-shuffle
            choice = {"A": "B", "B": "A", "C": "C"}[choice]
        per_item.setdefault(item, Counter())[choice] += 1
    return items, per_item, len({v[0] for v in votes})


def majority(counts: Counter) -> str:
    """The most voted choice; no single most voted choice counts as a tie."""
    top = counts.most_common()
    return top[0][0] if len(top) == 1 or top[0][1] > top[1][1] else "C"


def results(run_dir: Path) -> dict:
    """Un-shuffle each vote to the (arm_a, arm_b) frame, majority-vote per item, tally per pair and iteration."""
    items, per_item, n_raters = item_votes(run_dir)
    tallies: dict[tuple[str, int], Counter] = {}
    rated = []  # per item, in the (arm_a, arm_b) frame: what the aggregate compares with the LLM judge's verdicts
    for item, counts in sorted(per_item.items()):
        _, pair, iteration, _ = items[item]
        tallies.setdefault((pair, iteration), Counter())[majority(counts)] += 1
        rated.append(
            {
                "item": item,
                "pair": pair,
                "iteration": iteration,
                "question": item.split(":", 2)[2],
                "majority": majority(counts),
                "votes": dict(sorted(counts.items())),
            }
        )
    rates = [
        WinRate(pair.split("-vs-")[0], pair.split("-vs-")[1], it, c["A"], c["B"], c["C"], 0)
        for (pair, it), c in sorted(tallies.items())
    ]
    return {
        "winrates": [r.as_row() for r in rates],
        "table": markdown_table(rates),
        "kappa": fleiss_kappa(list(per_item.values())),
        "votes": sum(sum(c.values()) for c in per_item.values()),
        "raters": n_raters,
        "items_rated": len(per_item),
        "items": rated,
    }
