"""One self-contained HTML report with plots, built only from the run directory."""

from __future__ import annotations

import base64
import html
import io
import json
from pathlib import Path
from typing import Any

from aopcore.analysis.report import LEDGER_HEADER, category_rewards, ledger_rows, samples, targeting
from aopcore.storage.store import atomic_write_text

CSS = """body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:.5em 0 1.5em}td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}
th{background:#f3f3f3}td:first-child,th:first-child{text-align:left}img{max-width:100%}
blockquote{border-left:3px solid #ccc;margin:.3em 0 1em;padding:.2em .8em;color:#444}code,pre{background:#f6f6f6}
.grid{display:grid;grid-template-columns:1fr 1fr;gap:1em}"""


def _png(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def _table(header: list[str], rows: list[list[Any]]) -> str:
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def reward_plots(run_dir: Path) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    data = category_rewards(run_dir)
    if not data:
        return []
    images = []
    fig, ax = plt.subplots(figsize=(6, 3.5))
    for arm, per_iter in data.items():
        its = sorted(per_iter)
        ax.plot(its, [per_iter[i].get("(all)", float("nan")) for i in its], marker="o", label=arm)
    ax.set(xlabel="iteration (0 = SFT)", ylabel="mean held-out reward", title="Held-out reward per iteration")
    ax.set_xticks(sorted({i for per in data.values() for i in per}))
    ax.legend()
    images.append(_png(fig))
    arms = list(data)
    cats = sorted({c for per in data.values() for d in per.values() for c in d if c != "(all)"})
    fig, axes = plt.subplots(1, len(arms), figsize=(3.2 * len(arms) + 1, 0.3 * len(cats) + 1.5), squeeze=False)
    values = [v for per in data.values() for d in per.values() for c, v in d.items() if c != "(all)"]
    lo, hi = (min(values), max(values)) if values else (0, 1)
    for ax, arm in zip(axes[0], arms):
        its = sorted(data[arm])
        grid = [[data[arm][i].get(c, float("nan")) for i in its] for c in cats]
        im = ax.imshow(grid, aspect="auto", cmap="RdYlGn", vmin=lo, vmax=hi)
        ax.set_xticks(range(len(its)), [str(i) for i in its])
        ax.set_yticks(range(len(cats)), cats if ax is axes[0][0] else [""] * len(cats), fontsize=7)
        ax.set_title(arm)
    fig.colorbar(im, ax=axes[0].tolist(), shrink=0.8, label="mean reward")
    fig.suptitle("Per-category held-out reward (rows: categories, columns: iterations)")
    images.append(_png(fig))
    return images


def training_plot(run_dir: Path) -> str | None:
    import matplotlib.pyplot as plt

    curves: dict[str, list[dict[str, float]]] = {}
    from aopcore.storage.rundir import TRAIN_RECORD, RunLayout

    layout = RunLayout.of(run_dir)
    for arm in layout.arms():
        for i in layout.iterations_with(arm, TRAIN_RECORD):
            curves.setdefault(arm, []).extend(json.loads(layout.train_record(arm, i).read_text()).get("metrics", []))
    keys = [
        k
        for k in ("objective/scores", "objective/kl", "loss/policy_avg", "loss/value_avg")
        if any(k in m for ms in curves.values() for m in ms)
    ]
    if not keys:
        return None
    fig, axes = plt.subplots(1, len(keys), figsize=(3.3 * len(keys), 3), squeeze=False)
    for ax, key in zip(axes[0], keys):
        for arm, ms in curves.items():
            ax.plot([m.get(key, float("nan")) for m in ms], label=arm)
        ax.set(title=key, xlabel="PPO step")
    axes[0][0].legend(fontsize=7)
    return _png(fig)


def winrate_plot(rows: list[dict[str, Any]]) -> str | None:
    import matplotlib.pyplot as plt

    if not rows:
        return None
    labels = [f"{r['arm_a']} vs {r['arm_b']} @{r['iteration']}" for r in rows]
    fig, ax = plt.subplots(figsize=(7, 0.45 * len(rows) + 1))
    left = [0.0] * len(rows)
    for key, color, name in (
        ("a_wins_pct", "#2a9d8f", "A wins"),
        ("ties_pct", "#bbbbbb", "ties"),
        ("b_wins_pct", "#e76f51", "B wins"),
    ):
        vals = [r[key] for r in rows]
        ax.barh(labels, vals, left=left, color=color, label=name)
        left = [a + b for a, b in zip(left, vals)]
    ax.set(xlabel="% of judged test prompts", xlim=(0, 100), title="Pairwise win rates (A = first arm)")
    ax.legend(loc="lower right", fontsize=7)
    return _png(fig)


def write_html_report(run_dir: Path) -> list[str]:
    run_dir = Path(run_dir)
    config = json.loads((run_dir / "config.json").read_text()) if (run_dir / "config.json").exists() else {}
    exp = config.get("experiment", {})
    parts = [
        f"<!doctype html><html><head><meta charset='utf-8'><title>aopcore report: {html.escape(run_dir.name)}</title>",
        f"<style>{CSS}</style></head><body><h1>aopcore report: {html.escape(run_dir.name)}</h1>",
    ]
    if exp:
        parts.append(
            "<h2>Budget (identical for every arm)</h2>"
            + _table(
                ["iterations", "records per iteration", "passes", "seed"],
                [[exp.get("iterations"), exp.get("records_per_iteration"), exp.get("passes"), exp.get("seed")]],
            )
        )
    parts.append("<h2>Held-out reward</h2>")
    parts += [f"<img alt='reward plot' src='{img}'>" for img in reward_plots(run_dir)]
    parts.append(
        "<h2>Prompt categories per iteration, and why</h2><p>How each iteration's prompts were chosen (from the "
        "prompts' provenance), the weakest categories of the evaluation they were written from where they were, "
        "and where the prompts went.</p>"
    )
    rows = []
    for arm, its in targeting(run_dir).items():
        for r in its:
            log = r["log"]
            rows.append(
                [
                    arm,
                    r["iteration"],
                    r["basis"],
                    ", ".join(f"{c} ({v:.3f})" for c, v in r["weakest_before"]) or "n/a",
                    ", ".join(f"{c} {n}" for c, n in r["prompts"].items()),
                    f"{log.get('calls', '')} / {log.get('parsed', '')} / {log.get('accepted', '')}" if log else "",
                    ", ".join(f"{k}: {v}" for k, v in log.get("dropped", {}).items()),
                ]
            )
    parts.append(
        _table(
            [
                "arm",
                "iteration",
                "chosen how",
                "weakest of that evaluation",
                "prompts by category",
                "calls / parsed / kept",
                "dropped",
            ],
            rows,
        )
    )
    parts.append("<h2>Training curves</h2>")
    if img := training_plot(run_dir):
        parts.append(f"<img alt='training curves' src='{img}'>")
    parts.append("<h2>Win rates (pairwise judge, 95% Wilson intervals)</h2>")
    wr = run_dir / "tables" / "winrates.json"
    wr_rows = json.loads(wr.read_text()) if wr.exists() else []
    if wr_rows:
        parts.append(
            _table(
                ["pair", "iteration", "A wins %", "B wins %", "ties %", "n", "dropped"],
                [
                    [
                        f"{r['arm_a']} vs {r['arm_b']}",
                        r["iteration"],
                        f"{r['a_wins_pct']:.2f} [{r['a_wins_ci_low']:.1f}, {r['a_wins_ci_high']:.1f}]",
                        f"{r['b_wins_pct']:.2f} [{r['b_wins_ci_low']:.1f}, {r['b_wins_ci_high']:.1f}]",
                        f"{r['ties_pct']:.2f} [{r['ties_ci_low']:.1f}, {r['ties_ci_high']:.1f}]",
                        r["n"],
                        r["dropped"],
                    ]
                    for r in wr_rows
                ],
            )
        )
        if img := winrate_plot(wr_rows):
            parts.append(f"<img alt='win rates' src='{img}'>")
    else:
        parts.append("<p>Not judged yet.</p>")
    parts.append("<h2>Compute ledger: choosing prompts vs training</h2>")
    parts.append(_table(LEDGER_HEADER, ledger_rows(run_dir)))
    picked = samples(run_dir, config.get("evaluation", {}).get("samples_in_report", 3))
    if picked:
        parts.append("<h2>Sample generations (test prompts)</h2>")
        for arm, rows_ in picked.items():
            for r in rows_:
                parts.append(
                    f"<p><b>{html.escape(arm)}</b> ({html.escape(r['iteration'])}) — <i>{html.escape(r['question'])}</i></p>"
                    f"<blockquote>{html.escape(r['answer'] or '(empty)')}</blockquote>"
                )
    parts.append("<h2>Resolved config</h2><pre>" + html.escape(json.dumps(config, indent=2)) + "</pre></body></html>")
    atomic_write_text(run_dir / "report.html", "\n".join(parts))
    return ["report.html"]
