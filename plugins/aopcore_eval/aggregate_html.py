"""``aggregate/aggregate.html``: the multi-seed conclusion with plots, built only from ``aggregate.json``.

Plots: held-out reward per iteration with 95% bands across seeds; reward against compute spent (training
episodes, prompt-selection wall time, all wall time) — the paper's trade-off; and every pairwise difference
(held-out reward, win rate) with its interval against zero.
"""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any

from aopcore.analysis.aggregate import agreement_sentence
from aopcore.storage.store import atomic_write_text
from aopcore_eval.html_report import CSS, _png, _table


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _nan(x: float | None) -> float:
    return float("nan") if x is None else x


def reward_band_plot(data: dict[str, Any]) -> str | None:
    plt = _pyplot()
    if not any(data["heldout"].values()):
        return None
    fig, ax = plt.subplots(figsize=(6.5, 3.8))
    for arm, rows in data["heldout"].items():
        its = [r["iteration"] for r in rows]
        (line,) = ax.plot(its, [r["estimate"] for r in rows], marker="o", label=arm)
        ax.fill_between(
            its,
            [_nan(r["ci_low"]) for r in rows],
            [_nan(r["ci_high"]) for r in rows],
            color=line.get_color(),
            alpha=0.15,
        )
    ax.set(
        xlabel="iteration (0 = SFT)",
        ylabel="mean held-out reward",
        title=f"Held-out reward, mean of {len(data['seeds_found'])} seeds, 95% t-bands",
    )
    ax.set_xticks(data["iterations"])
    ax.legend(fontsize=8)
    return _png(fig)


def compute_plot(data: dict[str, Any]) -> str | None:
    """Reward against cumulative compute: the same points placed by training episodes and by prompt-selection cost."""
    plt = _pyplot()
    axes_spec = [
        ("training episodes", lambda r: r["episodes"]["estimate"]),
        ("choosing prompts, wall s", lambda r: r["choosing"]["wall_s"]),
        ("choosing + training, wall s", lambda r: r["choosing"]["wall_s"] + r["train"]["wall_s"]),
    ]
    if not any(data["compute"].values()):
        return None
    fig, axes = plt.subplots(1, len(axes_spec), figsize=(4.2 * len(axes_spec), 3.6), sharey=True)
    for ax, (label, x_of) in zip(axes, axes_spec):
        for arm, rows in data["compute"].items():
            rewards = {r["iteration"]: r for r in data["heldout"].get(arm, [])}
            pts = [(x_of(r), rewards[r["iteration"]]) for r in rows if r["iteration"] in rewards]
            if not pts:
                continue
            ys = [p[1]["estimate"] for p in pts]
            err = [
                [y - _nan(p[1]["ci_low"]) for y, p in zip(ys, pts)],
                [_nan(p[1]["ci_high"]) - y for y, p in zip(ys, pts)],
            ]
            ax.errorbar([p[0] for p in pts], ys, yerr=err, marker="o", capsize=3, label=arm)
        ax.set(xlabel=label)
    axes[0].set_ylabel("mean held-out reward")
    axes[0].legend(fontsize=8)
    fig.suptitle(
        "Held-out reward against cumulative compute (mean over seeds, 95% t-intervals; points: iterations 0..N)\n"
        "choosing = evaluate + prompts stages of the ledger",
        fontsize=10,
    )
    return _png(fig)


def equal_compute_plot(eq: dict[str, Any]) -> str | None:
    """Held-out reward against total compute (training plus choosing), one curve per arm, mean over seeds."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    for arm, rows in eq["curves"].items():
        if rows:
            ax.plot(
                [r["compute"]["estimate"] for r in rows],
                [r["heldout"]["estimate"] for r in rows],
                marker="o",
                label=arm,
            )
    ax.set(xlabel="total compute (tokens, training plus choosing)", ylabel="mean held-out reward")
    ax.legend(fontsize=8)
    return _png(fig)


def difference_plot(rows: list[dict[str, Any]], title: str, xlabel: str, scale: float = 1.0) -> str | None:
    plt = _pyplot()
    if not rows:
        return None
    labels = [f"{r['arm_a']} − {r['arm_b']} @{r['iteration']}" for r in rows]
    est = [scale * _nan(r["estimate"]) for r in rows]
    lo = [e - scale * _nan(r["ci_low"]) for e, r in zip(est, rows)]
    hi = [scale * _nan(r["ci_high"]) - e for e, r in zip(est, rows)]
    fig, ax = plt.subplots(figsize=(6.5, 0.35 * len(rows) + 1.2))
    ys = list(range(len(rows)))[::-1]
    colors = [
        "#888888"
        if r["ci_low"] is None or r["ci_low"] <= 0 <= r["ci_high"]
        else "#2a9d8f"
        if r["estimate"] > 0
        else "#e76f51"
        for r in rows
    ]
    for y, e, l_, h_, c in zip(ys, est, lo, hi, colors):
        ax.errorbar([e], [y], xerr=[[l_], [h_]], fmt="o", color=c, capsize=3)
    ax.axvline(0, color="#444", linewidth=0.8)
    ax.set_yticks(ys, labels, fontsize=7)
    ax.set(xlabel=xlabel, title=title)
    return _png(fig)


def _cell(row: dict[str, Any], scale: float = 1.0, digits: int = 3) -> str:
    if row.get("estimate") is None:
        return "n/a"
    if row.get("ci_low") is None:
        return f"{scale * row['estimate']:.{digits}f}"
    return f"{scale * row['estimate']:.{digits}f} [{scale * row['ci_low']:.{digits}f}, {scale * row['ci_high']:.{digits}f}]"


def write_aggregate_html(root: Path) -> list[str]:
    from aopcore.storage.rundir import RunLayout, seed_link

    layout = RunLayout.of(root)
    root = layout.root
    data = json.loads((layout.aggregate_dir / "aggregate.json").read_text())
    name = html.escape(root.name)
    parts = [
        f"<!doctype html><html><head><meta charset='utf-8'><title>aopcore aggregate: {name}</title>",
        f"<style>{CSS}</style></head><body><h1>aopcore aggregate: {name}</h1>",
        f"<p>Seeds: {', '.join(map(str, data['seeds']))} — with results: {', '.join(map(str, data['seeds_found'])) or 'none'}; "
        f"finished: {', '.join(map(str, data['seeds_finished'])) or 'none'}.</p>",
        "<h2>Conclusions</h2><ul id='conclusions'>",
    ]
    parts += [
        f"<li>{html.escape(s)}</li>"
        for c in data["conclusions"]
        for s in (c["heldout"], c.get("equal_compute"), c["winrate"])
        if s
    ]
    parts.append("</ul><h2>How the numbers are computed</h2><ul>")
    parts += [
        f"<li><b>{html.escape(k.replace('_', ' '))}</b>: {html.escape(v)}</li>" for k, v in data["methods"].items()
    ]
    parts.append("</ul><h2>Held-out reward</h2>")
    if img := reward_band_plot(data):
        parts.append(f"<img alt='held-out reward with bands' src='{img}'>")
    its = data["iterations"]
    parts.append(
        _table(
            ["arm", *(f"iter {i}" for i in its)],
            [
                [arm, *(_cell(by[i]) if i in by else "" for i in its)]
                for arm, rows in data["heldout"].items()
                for by in [{r["iteration"]: r for r in rows}]
            ],
        )
    )
    parts.append("<h2>Reward against compute spent</h2>")
    if img := compute_plot(data):
        parts.append(f"<img alt='reward against compute' src='{img}'>")
    parts.append(
        _table(
            [
                "arm",
                "iteration",
                "training episodes",
                "choosing wall s",
                "choosing feedback calls",
                "choosing policy samples",
                "choosing tokens generated",
                "choosing reward calls",
                "choosing embedder calls",
                "choosing cost USD",
                "train wall s",
            ],
            [
                [
                    arm,
                    r["iteration"],
                    f"{r['episodes']['estimate']:.0f}",
                    f"{ch['wall_s']:.1f}",
                    f"{ch['feedback_calls']:.1f}",
                    f"{ch.get('policy_samples', 0):.0f}",
                    f"{ch['tokens_generated']:.0f}",
                    f"{ch.get('reward_calls', 0):.0f}",
                    f"{ch.get('embedder_calls', 0):.0f}",
                    f"{ch['cost_usd']:.4f}",
                    f"{r['train']['wall_s']:.1f}",
                ]
                for arm, rows in data["compute"].items()
                for r in rows
                for ch in [r["choosing"]]
            ],
        )
    )
    if (eq := data.get("equal_compute") or {}).get("curves"):
        parts.append(
            f"<h2>At equal total compute</h2><p>Unit: {html.escape(eq['unit'])}. {html.escape(eq['method'])}.</p>"
        )
        if img := equal_compute_plot(eq):
            parts.append(f"<img alt='held-out reward against total compute' src='{img}'>")
        parts.append(
            "<ul id='equal-compute'>"
            + "".join(f"<li>{html.escape(d['sentence'])}</li>" for d in eq["differences"])
            + "</ul>"
        )
    parts.append("<h2>Differences between arms</h2>")
    if img := difference_plot(
        data["heldout_differences"],
        "Held-out reward difference (same questions, two-level bootstrap, 95%)",
        "difference in mean held-out reward",
    ):
        parts.append(f"<img alt='held-out reward differences' src='{img}'>")
    wins = [
        {"arm_a": w["arm_a"], "arm_b": w["arm_b"], "iteration": w["iteration"], **w["difference"]}
        for w in data["winrates"]
    ]
    if img := difference_plot(
        wins, "Win-rate difference, A wins − B wins (two-level bootstrap, 95%)", "percentage points", 100.0
    ):
        parts.append(f"<img alt='win-rate differences' src='{img}'>")
    if data["winrates"]:
        parts.append(
            _table(
                ["pair", "iteration", "seeds", "A wins %", "B wins %", "ties %", "A − B points", "n", "dropped"],
                [
                    [
                        f"{w['arm_a']} vs {w['arm_b']}",
                        w["iteration"],
                        w["n_seeds"],
                        *(_cell(w[k], 100, 1) for k in ("a_win_rate", "b_win_rate", "tie_rate", "difference")),
                        w["difference"]["n"],
                        w["dropped"],
                    ]
                    for w in data["winrates"]
                ],
            )
        )
    parts.append("<h2>LLM judge vs human majority</h2>")
    parts.append(f"<p id='judge-agreement'>{html.escape(agreement_sentence(data.get('judge_agreement')))}</p>")
    parts.append(
        "<h2>Per seed</h2><ul>"
        + "".join(f"<li><a href='{seed_link(s, 'report.html')}'>seed {s}</a></li>" for s in data["seeds_found"])
        + "</ul></body></html>"
    )
    page = layout.aggregate_dir / "aggregate.html"
    atomic_write_text(page, "\n".join(parts))
    return [layout.rel(page)]
