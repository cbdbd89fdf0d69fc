"""`aopcore rm-bench`: how often each candidate reward model agrees with human preferences, per SHP category (paper table 1).

For each SHP pair (question, response A, response B, human label) a reward model agrees when it scores the
human-preferred response strictly higher. Ties count as disagreement.
"""

from __future__ import annotations

import csv
import io
import random
from collections import defaultdict
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from aopcore.engine.config import ComponentSpec, ConfigReport, TomlLocator, read_toml
from aopcore.records import load_records
from aopcore.storage.store import atomic_write_json, atomic_write_text

SHP_FIELDS = ("history", "human_ref_A", "human_ref_B", "labels", "domain")


class RMBenchConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    data: str = Field(description="SHP-format pairs: JSONL path or hf:stanfordnlp/SHP::test")
    per_category: int = Field(50, ge=1, description="Pairs sampled per category (paper: 50 x 18).")
    seed: int = 0
    output_dir: str = Field("rm-bench", description="Where tables and the plot go (relative to the config file).")
    plugins: list[str] = Field(default_factory=list)
    rewards: dict[str, ComponentSpec] = Field(
        description="Candidate reward models: [rewards.NAME] plugin = ... plus options."
    )


def load_pairs(spec: str, base_dir: Path) -> list[dict[str, Any]]:
    if spec.startswith("hf:"):
        from aopcore_hf.dataset_io import _load_hub

        rows = [dict(r) for r in _load_hub(spec[3:])]
    else:
        rows = load_records(Path(spec) if Path(spec).is_absolute() else base_dir / spec, SHP_FIELDS, "SHP")
    for row in rows:
        d = row["domain"]
        row["category"] = d.rsplit("_", 1)[0] if d.endswith(("_train", "_test", "_validation")) else d
    return rows


def sample_pairs(rows: list[dict[str, Any]], per_category: int, seed: int) -> dict[str, list[dict[str, Any]]]:
    by_cat: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        by_cat[row["category"]].append(row)
    rng = random.Random(seed)
    out = {}
    for cat in sorted(by_cat):
        rows_c = list(by_cat[cat])
        rng.shuffle(rows_c)
        out[cat] = rows_c[:per_category]
    return out


def agreement(reward, pairs: list[dict[str, Any]]) -> int:
    questions = [p["history"] for p in pairs]
    a = reward.score(questions, [p["human_ref_A"] for p in pairs])
    b = reward.score(questions, [p["human_ref_B"] for p in pairs])
    return sum(
        (sa > sb and int(p["labels"]) == 1) or (sb > sa and int(p["labels"]) == 0) for sa, sb, p in zip(a, b, pairs)
    )


def run_rm_bench(config_file: Path) -> dict[str, Any]:
    from aopcore.engine.build import _check_component
    from aopcore.registry import load_registry

    raw, text = read_toml(config_file)
    report = ConfigReport(config_file, TomlLocator(text))
    try:
        cfg = RMBenchConfig.model_validate(raw)
    except ValidationError as exc:
        report.add_validation_error((), exc, RMBenchConfig)
        report.raise_if_any()
        raise
    registry = load_registry(cfg.plugins)
    base = config_file.parent
    if (
        not cfg.data.startswith("hf:")
        and not (Path(cfg.data) if Path(cfg.data).is_absolute() else base / cfg.data).is_file()
    ):
        report.add(("data",), f"data file not found: {base / cfg.data}")
    checked = {}
    for name, spec in cfg.rewards.items():
        options = {k: v for k, v in spec.model_dump().items() if k != "plugin"}
        if c := _check_component(
            report, registry, "reward", ("rewards", name), spec.plugin, options, name_key="plugin"
        ):
            checked[name] = c
    report.raise_if_any()
    sampled = sample_pairs(load_pairs(cfg.data, base), cfg.per_category, cfg.seed)
    counts: dict[str, dict[str, int]] = {}
    for name, (impl, options) in checked.items():
        model = impl.build(options)
        counts[name] = {cat: agreement(model, pairs) for cat, pairs in sampled.items()}
        del model
    out = Path(cfg.output_dir) if Path(cfg.output_dir).is_absolute() else base / cfg.output_dir
    sizes = {cat: len(p) for cat, p in sampled.items()}
    result = {
        "per_category": sizes,
        "matches": counts,
        "totals": {n: sum(c.values()) for n, c in counts.items()},
        "pairs": sum(sizes.values()),
    }
    write_tables(out, result)
    return result


def write_tables(out: Path, result: dict[str, Any]) -> None:
    names = list(result["matches"])
    cats = list(result["per_category"])
    n_total = result["pairs"]
    lines = ["| category | " + " | ".join(names) + " |", "| --- |" + " ---: |" * len(names)]
    for cat in cats:
        lines.append(
            f"| {cat} (/{result['per_category'][cat]}) | "
            + " | ".join(str(result["matches"][n][cat]) for n in names)
            + " |"
        )
    lines.append(f"| No. of matches (/{n_total}) | " + " | ".join(str(result["totals"][n]) for n in names) + " |")
    lines.append(
        "| Agreement (%) | " + " | ".join(f"{100 * result['totals'][n] / max(n_total, 1):.2f}" for n in names) + " |"
    )
    atomic_write_text(out / "rm_bench.md", "\n".join(lines) + "\n")
    atomic_write_json(out / "rm_bench.json", result)
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(["category", "pairs", *names])
    for cat in cats:
        writer.writerow([cat, result["per_category"][cat], *(result["matches"][n][cat] for n in names)])
    atomic_write_text(out / "rm_bench.csv", buf.getvalue())
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 0.35 * len(cats) * max(1, len(names) / 2) + 1.5))
    height = 0.8 / max(len(names), 1)
    for k, name in enumerate(names):
        ax.barh(
            [i + k * height for i in range(len(cats))],
            [100 * result["matches"][name][c] / max(result["per_category"][c], 1) for c in cats],
            height=height,
            label=name,
        )
    ax.set_yticks([i + 0.4 - height / 2 for i in range(len(cats))], cats, fontsize=7)
    ax.axvline(50, color="grey", linestyle=":", linewidth=1)
    ax.set(xlabel="agreement with human preference (%)", xlim=(0, 100), title="Reward models vs SHP human preferences")
    ax.legend(fontsize=7)
    fig.savefig(out / "rm_bench.png", dpi=110, bbox_inches="tight")
    plt.close(fig)
