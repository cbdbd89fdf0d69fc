"""The Markdown tables of docs/testbed.md, written from the committed testbed results (never typed by hand).

    .venv/bin/python benchmarks/testbed_tables.py            # print every table
    .venv/bin/python benchmarks/testbed_tables.py --write    # replace the generated blocks in docs/testbed.md
                                                             # and benchmarks/README.md

Each table lives in docs/testbed.md (and the summary in benchmarks/README.md) between ``<!-- table:NAME -->`` and
``<!-- /table:NAME -->``; ``--write`` replaces what is between the markers and nothing else, and
``tests/testbed/test_testbed_docs.py`` fails when a page and the results disagree, so a rerun of the comparison cannot
leave stale figures in the docs.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
DOCS = ROOT / "docs" / "testbed.md"
BENCHMARKS = ROOT / "benchmarks" / "README.md"
DEFAULT = RESULTS / "testbed_compare.json"
REGIME = RESULTS / "testbed_regime.json"
SEQ = RESULTS / "testbed_seq.json"  # the sequence tier's comparison (examples/testbed-seq.toml)


def _ci(est: float, lo: float, hi: float, digits: int = 3, signed: bool = True) -> str:
    f = f"{{:+.{digits}f}}" if signed else f"{{:.{digits}f}}"
    return f"{f.format(est)} ({f.format(lo)} to {f.format(hi)})"


def _bold_if(text: str, verdict: str) -> str:
    return f"**{text}**" if verdict not in ("no detectable difference", "no conclusion") else text


def _total_tokens(rows: list[dict]) -> float:
    last = rows[-1]
    return sum(last[part].get(k, 0.0) for part in ("choosing", "train") for k in ("tokens_generated", "prompt_tokens"))


def arms_table(d: dict) -> str:
    n = d["iterations"]
    out = [
        f"| arm | accuracy, iteration {n} (t 95% CI over seeds) | mean over iterations 1-{n} (two-level bootstrap 95% CI) "
        "| total compute, tokens |",
        "| --- | --- | --- | ---: |",
    ]
    start = d["heldout"][d["arms"][0]][0]["estimate"]
    out.append(f"| start policy | {start:.3f} | | |")
    for arm in d["arms"]:
        last = next(r for r in d["heldout"][arm] if r["iteration"] == n)
        auc = d["area_under_curve"]["summary"][arm]
        out.append(
            f"| {arm} | {last['estimate']:.3f} ({last['ci_low']:.3f}-{last['ci_high']:.3f}) | "
            f"{auc['estimate']:.3f} ({auc['ci_low']:.3f}-{auc['ci_high']:.3f}) | {_total_tokens(d['compute'][arm]):,.0f} |"
        )
    return "\n".join(out)


def pairs_table(d: dict) -> str:
    out = ["| pair | difference (95% CI) | verdict |", "| --- | --- | --- |"]
    for r in d["area_under_curve"]["differences"]:
        text = _ci(r["estimate"], r["ci_low"], r["ci_high"])
        out.append(f"| {r['arm_a']} - {r['arm_b']} | {_bold_if(text, r['verdict'])} | {r['verdict']} |")
    return "\n".join(out)


def oracle_table(d: dict) -> str:
    f = d["fraction_of_oracle"]["area_under_curve"]
    lo, hi = f["oracle_gain_ci"]
    out = [
        f"The oracle's own gain over vanilla (mean over iterations 1-{d['iterations']}): {f['oracle_gain']:+.3f} "
        f"(seed-bootstrap 95% CI {lo:+.3f} to {hi:+.3f}).",
        "",
        "| arm | gain over vanilla | fraction of the oracle's gain (95% CI) |",
        "| --- | ---: | --- |",
    ]
    for arm, r in f["arms"].items():
        if r["fraction_of_oracle"] is None:
            frac = "no fraction: the oracle gained nothing"
        elif r["ci_low"] is None:
            frac = f"{r['fraction_of_oracle']:.2f} (no interval: the oracle's gain interval covers zero)"
        else:
            frac = f"{r['fraction_of_oracle']:.2f} ({r['ci_low']:.2f} to {r['ci_high']:.2f})"
        out.append(f"| {arm} | {r['gain']:+.3f} | {frac} |")
    return "\n".join(out)


def compute_sentences(d: dict) -> str:
    wanted = {(r["arm_a"], r["arm_b"]) for r in d["area_under_curve"]["differences"]}
    rows = [
        r
        for r in d["equal_compute"]["differences"]
        if (r["arm_a"], r["arm_b"]) in wanted or (r["arm_b"], r["arm_a"]) in wanted
    ]
    return "\n".join(f"- {r['sentence']}" for r in rows)


def regime_table(default: dict, regime: dict) -> str:
    """Mean accuracy over iterations, each curriculum's difference to vanilla, per configuration."""

    def diffs(d: dict) -> dict[tuple[str, str], dict]:
        return {(r["arm_a"], r["arm_b"]): r for r in d["area_under_curve"]["differences"]}

    cols = [("default", default), ("regime", regime)]
    heads = [f"default ({_shape(default)})", f"regime ({_shape(regime)})"]
    out = ["| curriculum | " + " | ".join(heads) + " |", "| --- | " + " | ".join("---" for _ in cols) + " |"]
    out.append(
        "| vanilla (accuracy) | "
        + " | ".join(f"{d['area_under_curve']['summary']['vanilla']['estimate']:.3f}" for _, d in cols)
        + " |"
    )
    arms = [a for a in default["arms"] if a != "vanilla"] + [a for a in regime["arms"] if a not in default["arms"]]
    pairs = [(a, "vanilla") for a in arms] + [("aop", "sop")]
    for a, b in pairs:
        cells = []
        for _, d in cols:
            r = diffs(d).get((a, b))
            cells.append("—" if r is None else _bold_if(_ci(r["estimate"], r["ci_low"], r["ci_high"]), r["verdict"]))
        label = a if b == "vanilla" else f"{a} - {b}"
        out.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(out)


def _shape(d: dict) -> str:
    cfg = (ROOT / d["config"]).read_text() if (ROOT / d["config"]).exists() else ""
    lr = re.search(r"^learning_rate = ([0-9.e-]+)", cfg, re.M)
    rec = re.search(r"^records_per_iteration = (\d+)", cfg, re.M)
    return (
        f"lr {lr.group(1) if lr else '?'}, {d['iterations']} x {rec.group(1) if rec else '?'}, {len(d['seeds'])} seeds"
    )


def benchmarks_summary(d: dict) -> str:
    """The testbed section of benchmarks/README.md: what was run, how long it took, and the pairs with a verdict."""
    n, t = d["iterations"], d.get("time_full_run") or d["time"]
    start = d["heldout"][d["arms"][0]][0]["estimate"]
    finals = [next(r for r in d["heldout"][a] if r["iteration"] == n)["estimate"] for a in d["arms"]]
    diffs = {(r["arm_a"], r["arm_b"]): r for r in d["area_under_curve"]["differences"]}
    cpu = f", {t['cpu_s']:.0f} s CPU" if t.get("cpu_s") is not None else ""
    load = d.get("machine", {}).get("load_average_1m_at_end")
    shared = f"; load average {load} at the end: the cores were shared" if load else ""
    lines = [
        f"`results/testbed_compare.json` ({d['machine'].get('cpus', '?')} cores{shared}; `{d['config']}`, "
        f"{len(d['seeds'])} seeds x {len(d['arms'])} arms x {n} iterations, {t['wall_s']:.0f} s wall{cpu}): "
        f"every arm raises held-out accuracy from {start:.3f} to {min(finals):.2f}-{max(finals):.2f} at iteration {n}. "
        f"Mean accuracy over iterations 1-{n}, each arm against vanilla, and AOP against SOP (paired two-level "
        "bootstrap over seeds and held-out questions, `aopcore.analysis.aggregate`):",
        "",
        "| pair | difference (95% CI) | verdict |",
        "| --- | --- | --- |",
    ]
    pairs = [(a, "vanilla") for a in d["arms"] if a != "vanilla"] + [("aop", "sop")]
    for key in pairs:
        if (r := diffs.get(key)) is not None:
            text = _ci(r["estimate"], r["ci_low"], r["ci_high"])
            lines.append(f"| {key[0]} - {key[1]} | {_bold_if(text, r['verdict'])} | {r['verdict']} |")
    if d.get("power"):
        lines += ["", power_sentence(d)]
    lines += [
        "",
        "The oracle is a positive control (it measures every prompt's pass rate before choosing); each arm's fraction "
        "of its gain, and why AOP does not win here: [docs/testbed.md](../docs/testbed.md).",
    ]
    return "\n".join(lines)


def power_sentence(d: dict) -> str:
    """How many seeds the measured spread asks for: what a reader needs before trusting a 0.03 difference."""
    p = d["power"]
    need = p["seeds_needed_by_arm"]
    spread = ", ".join(f"{a} {v}" for a, v in sorted(need.items(), key=lambda kv: (kv[1] is None, kv[1] or 0)))
    return f"**Power.** {p['statement']} Seeds needed per arm for {p['delta']:.2f}: {spread}."


def run_time(d: dict) -> str:
    """How long the comparison took, and what it was: the sentence the sequence tier's section states."""
    t = d.get("time_full_run") or d["time"]
    m = d.get("machine", {})
    cpu = f", {t['cpu_s']:.0f} s CPU" if t.get("cpu_s") is not None else ""
    load = m.get("load_average_1m_at_end")
    scope = "the full comparison" if d.get("complete") else d.get("scope", "a reduced run")
    return (
        f"`{d['config']}`, {len(d['seeds'])} seeds x {len(d['arms'])} arms x {d['iterations']} iterations "
        f"({scope}): {t['wall_s']:.0f} s wall{cpu} on {m.get('cpus', '?')} cores"
        + (f" (load average {load} at the end)" if load else "")
        + f", {t['wall_s'] / 60:.0f} minutes. Command: `{d['command']}`."
    )


def tables() -> dict[str, str]:
    default = json.loads(DEFAULT.read_text())
    out = {
        "arms": arms_table(default),
        "pairs": pairs_table(default),
        "oracle": oracle_table(default),
        "compute": compute_sentences(default),
        "benchmarks-summary": benchmarks_summary(default),
    }
    if default.get("power"):
        out["power"] = power_sentence(default)
    if REGIME.exists():
        regime = json.loads(REGIME.read_text())
        out |= {
            "regime": regime_table(default, regime),
            "regime-oracle": oracle_table(regime),
            "regime-arms": arms_table(regime),
        }
    if SEQ.exists():
        seq = json.loads(SEQ.read_text())
        out |= {
            "seq-arms": arms_table(seq),
            "seq-pairs": pairs_table(seq),
            "seq-oracle": oracle_table(seq),
            "seq-time": run_time(seq),
            "seq-compute": compute_sentences(seq),
        }
        if seq.get("power"):
            out["seq-power"] = power_sentence(seq)
    return out


def render(page: str, generated: dict[str, str]) -> str:
    """``page`` with every ``<!-- table:NAME -->`` block replaced by the generated table NAME."""

    def sub(m: re.Match) -> str:
        name = m.group(1)
        if name not in generated:
            raise SystemExit(f"no generated table named {name!r} (have {sorted(generated)})")
        return f"<!-- table:{name} -->\n{generated[name]}\n<!-- /table:{name} -->"

    return re.sub(r"<!-- table:([\w-]+) -->\n.*?<!-- /table:\1 -->", sub, page, flags=re.S)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument(
        "--write", action="store_true", help="replace the generated blocks in docs/testbed.md and benchmarks/README.md"
    )
    args = p.parse_args()
    generated = tables()
    if args.write:
        for page in (DOCS, BENCHMARKS):
            page.write_text(render(page.read_text(), generated))
        return
    for name, text in generated.items():
        sys.stdout.write(f"<!-- table:{name} -->\n{text}\n<!-- /table:{name} -->\n\n")


if __name__ == "__main__":
    main()
