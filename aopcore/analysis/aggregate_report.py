"""The aggregate report of a multi-seed run: ``aggregate/aggregate.json``, ``aggregate.md``, and plugin formats.

Written at the end of a multi-seed run and by ``aopcore report RUN_DIR`` on a run directory with ``seed-*``
sub-runs. Formats with plots come from plugins through ``register_aggregate_writers`` (the evaluation family
adds ``aggregate.html``); each writer reads only the run directory, so the report can be rebuilt any time.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from aopcore.analysis.aggregate import aggregate, agreement_sentence
from aopcore.storage.rundir import RunLayout, seed_link, seed_name
from aopcore.storage.store import atomic_write_json, atomic_write_text

log = logging.getLogger("aopcore")

FOLDER = RunLayout(Path(".")).aggregate_dir.name  # aggregate/ beside the seed-<s>/ sub-runs


def _ci(row: dict[str, Any], scale: float = 1.0, digits: int = 3) -> str:
    est = row.get("estimate")
    if est is None:
        return "n/a"
    if row.get("ci_low") is None:
        return f"{scale * est:.{digits}f}"
    return f"{scale * est:.{digits}f} [{scale * row['ci_low']:.{digits}f}, {scale * row['ci_high']:.{digits}f}]"


def _equal_compute_section(eq: dict[str, Any]) -> list[str]:
    """Held-out reward against total compute per arm, and the pairs at equal compute (aopcore.analysis.aggregate_compute)."""
    if not eq.get("curves"):
        return []
    parts = [
        "",
        "## At equal total compute (training plus choosing)",
        "",
        f"Unit: {eq['unit']}. {eq['method']}.",
        "",
        "| arm | iteration | compute (mean over seeds) | held-out reward (95% t-interval) |",
        "| --- | ---: | ---: | ---: |",
    ]
    for arm, rows in eq["curves"].items():
        parts += [f"| {arm} | {r['iteration']} | {r['compute']['estimate']:,.0f} | {_ci(r['heldout'])} |" for r in rows]
    parts += [""] + [f"- {d['sentence']}" for d in eq.get("differences", [])]
    return parts


def markdown(data: dict[str, Any]) -> str:
    name = data["run"]
    found, finished = data["seeds_found"], data["seeds_finished"]
    parts = [
        f"# aopcore aggregate: {name}",
        "",
        f"Seeds: {', '.join(map(str, data['seeds']))}; with results: {', '.join(map(str, found)) or 'none'}; "
        f"finished: {', '.join(map(str, finished)) or 'none'}.",
        "",
    ]
    parts += ["## Conclusions", ""]
    for c in data["conclusions"]:
        parts += [f"- {s}" for s in (c["heldout"], c.get("equal_compute"), c["winrate"]) if s]
    if not data["conclusions"]:
        parts.append("No pair of arms has results yet.")
    parts += ["", "## How the numbers are computed", ""]
    parts += [f"- **{k.replace('_', ' ')}**: {v}" for k, v in data["methods"].items()]
    parts += ["", "## Held-out reward (mean over seeds, 95% t-interval across seeds)", ""]
    its = data["iterations"]
    if its:
        parts += ["| arm | " + " | ".join(f"iter {i}" for i in its) + " |", "| --- |" + " ---: |" * len(its)]
        for arm, rows in data["heldout"].items():
            by_it = {r["iteration"]: r for r in rows}
            parts.append(
                f"| {arm} | "
                + " | ".join(_ci(by_it[i]) + f" (n={by_it[i]['n']})" if i in by_it else "" for i in its)
                + " |"
            )
    last = str(its[-1]) if its else None
    cats = sorted({c for per in data["heldout_by_category"].values() for c in per.get(last, {})}) if last else []
    if cats:
        arms = list(data["heldout_by_category"])
        parts += [
            "",
            f"### Per category at iteration {last} (mean over seeds, 95% t-interval)",
            "",
            "| category | " + " | ".join(arms) + " |",
            "| --- |" + " ---: |" * len(arms),
        ]
        for c in cats:
            parts.append(
                f"| {c} | "
                + " | ".join(_ci(data["heldout_by_category"][a].get(last, {}).get(c, {})) for a in arms)
                + " |"
            )
    parts += [
        "",
        "## Held-out reward difference (first arm minus second, same question within each seed; "
        "95% two-level bootstrap: seeds, then questions)",
        "",
        "| pair | iteration | seeds | difference [95% CI] | verdict |",
        "| --- | ---: | ---: | ---: | --- |",
    ]
    for d in data["heldout_differences"]:
        parts.append(f"| {d['arm_a']} vs {d['arm_b']} | {d['iteration']} | {d['n']} | {_ci(d)} | {d['verdict']} |")
    parts += ["", "## Win rates pooled over seeds (95% two-level bootstrap: seeds, then prompts)", ""]
    if data["winrates"]:
        parts += [
            "| pair | iteration | seeds | A wins % | B wins % | ties % | A − B (points) | n | dropped |",
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
        ]
        for w in data["winrates"]:
            cells = [_ci(w[k], 100, 1) for k in ("a_win_rate", "b_win_rate", "tie_rate", "difference")]
            parts.append(
                f"| {w['arm_a']} vs {w['arm_b']} | {w['iteration']} | {w['n_seeds']} | {' | '.join(cells)} | "
                f"{w['difference']['n']} | {w['dropped']} |"
            )
    else:
        parts.append("Not judged yet.")
    parts += [
        "",
        "## Compute spent to reach each iteration (cumulative, mean over seeds)",
        "",
        "Choosing = the stages that evaluate policies and choose prompts (kinds evaluate and prompts), including "
        "every policy sample, reward call, embedder call and feedback call a curriculum makes through its context; "
        "train = training. The SFT policy and judging are not counted.",
        "",
        "| arm | iteration | held-out reward | training episodes | choosing wall s | choosing feedback calls | "
        "choosing policy samples | choosing tokens generated | choosing reward calls | choosing embedder calls | "
        "choosing cost USD | train wall s |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for arm, rows in data["compute"].items():
        rewards = {r["iteration"]: r for r in data["heldout"].get(arm, [])}
        for r in rows:
            ch, tr = r["choosing"], r["train"]
            parts.append(
                f"| {arm} | {r['iteration']} | {_ci(rewards.get(r['iteration'], {}))} | {r['episodes']['estimate']:.0f} | "
                f"{ch['wall_s']:.1f} | {ch['feedback_calls']:.1f} | {ch.get('policy_samples', 0):.0f} | "
                f"{ch['tokens_generated']:.0f} | {ch.get('reward_calls', 0):.0f} | {ch.get('embedder_calls', 0):.0f} | "
                f"{ch['cost_usd']:.4f} | {tr['wall_s']:.1f} |"
            )
    parts += _equal_compute_section(data.get("equal_compute") or {})
    parts += ["", "## LLM judge vs human majority", "", agreement_sentence(data.get("judge_agreement"))]
    parts += ["", "## Per seed", ""]
    parts += [f"- seed {s}: [`{seed_name(s)}/report.md`]({seed_link(s, 'report.md')})" for s in found]
    return "\n".join(parts) + "\n"


def aggregate_writers(extra_modules: Iterable[str] = ()) -> list[tuple[str, Callable[[Path], list[str]]]]:
    """Every (name, write) registered through ``register_aggregate_writers``; a failing hook is logged and skipped."""
    from aopcore.registry import registered_pairs

    return registered_pairs("register_aggregate_writers", extra_modules)


def write_aggregate(root: Path) -> list[str]:
    """Compute and write the aggregate of ``root``'s seeds; returns the files written, relative to ``root``."""
    layout = RunLayout.of(root)
    root = layout.root
    data = aggregate(root)
    atomic_write_json(layout.aggregate_dir / "aggregate.json", data)
    atomic_write_text(layout.aggregate_dir / "aggregate.md", markdown(data))
    files = [f"{FOLDER}/aggregate.json", f"{FOLDER}/aggregate.md"]
    manifest = layout.manifest
    plugins = (
        json.loads(manifest.read_text()).get("config", {}).get("experiment", {}).get("plugins", [])
        if manifest.exists()
        else []
    )
    for name, write in aggregate_writers(plugins):
        try:
            files += write(root)
        except Exception as exc:  # noqa: BLE001 - one format failing leaves the others
            log.warning("aggregate writer %r failed: %s: %s", name, type(exc).__name__, exc)
    return files
