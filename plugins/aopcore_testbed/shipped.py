"""The shipped ``testbed-tiny`` start policy: where it lives, the hash that keys its cache folder, its accuracy.

``python -m aopcore_testbed.regenerate`` writes the folder and its ``manifest.json``; importing this module has no
side effects (regenerate pins torch to one thread, this does not).
"""

from __future__ import annotations

import hashlib
import json
import platform
from pathlib import Path

WEIGHTS = Path(__file__).parent / "weights" / "testbed-tiny"
MANIFEST = "manifest.json"


def file_hashes(folder: Path) -> dict[str, str]:
    """SHA-256 of every shipped file except the manifest, by name."""
    return {
        p.name: hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(Path(folder).iterdir())
        if p.is_file() and p.name != MANIFEST
    }


def digest(hashes: dict[str, str]) -> str:
    """One hash over the files' names and hashes: the cache key of the shipped policy."""
    return hashlib.sha256(json.dumps(hashes, sort_keys=True).encode()).hexdigest()


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def start_accuracy(folder: Path) -> dict[str, float]:
    """Held-out accuracy of the policy in ``folder`` on ``testbed:heldout``, overall (``(all)``) and per category.

    The experiment's own path: the HF policy's greedy ``generate`` with examples/testbed.toml's evaluation settings
    (4 new tokens, batches of 64), scored by the verifier.
    """
    from aopcore_hf.options import PolicyOptions
    from aopcore_hf.policy import HFPolicyBase
    from aopcore_testbed.sets import load
    from aopcore_testbed.verifier import VerifierReward

    heldout = load("heldout")
    policy = HFPolicyBase(PolicyOptions(model=str(folder), device="cpu", eval_max_new_tokens=4, eval_batch_size=64))
    texts = [q.text for q in heldout]
    rewards = VerifierReward().score(texts, policy.generate(Path(folder), texts, seed=0))
    by: dict[str, list[float]] = {}
    for q, r in zip(heldout, rewards):
        by.setdefault(q.category or "", []).append(r)
    out = {c: round(sum(v) / len(v), 6) for c, v in sorted(by.items())}
    out["(all)"] = round(sum(rewards) / len(rewards), 6)
    return out
