"""One start policy everywhere: the testbed ships its pretrained `testbed-tiny`, every cache holds the same bytes
whatever the thread count, its cache folder is keyed by those bytes, and its held-out accuracy is the documented one."""

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from aopcore_testbed.model import RECIPE, SPECIALS, _recipe_id, ensure_alias, shipped_key, vocabulary
from aopcore_testbed.shipped import MANIFEST, WEIGHTS, digest, file_hashes

ROOT = Path(__file__).parents[2]
DOC = ROOT / "docs" / "testbed.md"


def manifest() -> dict:
    return json.loads((WEIGHTS / MANIFEST).read_text())


def documented_start_accuracy() -> tuple[str, dict[str, str]]:
    """docs/testbed.md's start-policy row of the results table, and its per-category start accuracies."""
    text = DOC.read_text()
    overall = re.search(r"^\| start policy \| (\d\.\d{3}) \|", text, re.M).group(1)
    per_cat = dict(re.findall(r"^\| (\w+) \| [^|]+ \| [^|]+ \| (\d\.\d\d) \|$", text, re.M))
    return overall, per_cat


def test_shipped_weights_match_their_manifest_and_the_current_recipe():
    m = manifest()
    assert file_hashes(WEIGHTS) == m["files"] and digest(m["files"]) == m["sha256"]
    assert {"model.safetensors", "config.json", "tokenizer.json"} <= set(m["files"])
    assert sum(p.stat().st_size for p in WEIGHTS.iterdir()) < 1_000_000  # about half a megabyte
    # a change to the skills (vocabulary), the SFT plan or the recipe must come with regenerated weights
    assert m["recipe"] == RECIPE and m["recipe_id"] == _recipe_id(), (
        "python -m aopcore_testbed.regenerate, then update docs/testbed.md"
    )
    vocab = json.loads((WEIGHTS / "tokenizer.json").read_text())["model"]["vocab"]
    assert [t for t, _ in sorted(vocab.items(), key=lambda kv: kv[1])] == SPECIALS + vocabulary()
    assert m["made_with"]["threads"] == 1


def test_the_cache_key_is_a_hash_of_the_shipped_bytes(tmp_path: Path):
    folder = ensure_alias("testbed-tiny", tmp_path)
    assert folder.name == f"testbed-tiny-{shipped_key()}" and shipped_key() == manifest()["sha256"][:16]
    assert file_hashes(folder) == manifest()["files"]
    assert ensure_alias("testbed-tiny", tmp_path) == folder  # installed once
    changed = tmp_path / "changed"
    shutil.copytree(WEIGHTS, changed)
    blob = bytearray((changed / "model.safetensors").read_bytes())
    blob[-1] ^= 1  # one bit of one weight
    (changed / "model.safetensors").write_bytes(bytes(blob))
    assert digest(file_hashes(changed))[:16] != shipped_key()  # other weights, other cache folder


def test_documented_start_accuracies_are_the_shipped_policys():
    overall, per_cat = documented_start_accuracy()
    acc = manifest()["heldout_accuracy"]
    assert overall == f"{acc['(all)']:.3f}"
    assert per_cat == {c: f"{v:.2f}" for c, v in acc.items() if c != "(all)"}


PROBE = """
import json, sys
from pathlib import Path
from aopcore_hf.models import resolve_model
from aopcore_testbed.shipped import file_hashes, start_accuracy
import torch
folder = Path(resolve_model("testbed-tiny"))
print(json.dumps({"folder": str(folder), "threads": torch.get_num_threads(), "files": file_hashes(folder),
                  "accuracy": start_accuracy(folder)}))
"""


@pytest.mark.slow
def test_fresh_caches_under_different_thread_counts_start_from_the_same_policy_with_the_documented_accuracy(
    tmp_path: Path,
):
    seen = []
    for threads in ("1", "2"):
        env = {
            **os.environ,
            "OMP_NUM_THREADS": threads,
            "AOPCORE_CACHE": str(tmp_path / f"cache-{threads}"),
            "TQDM_DISABLE": "1",
        }
        proc = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr[-3000:]
        seen.append(json.loads(proc.stdout.strip().splitlines()[-1]))
    one, two = seen
    assert (one["threads"], two["threads"]) == (1, 2)
    assert one["folder"].startswith(str(tmp_path / "cache-1")) and two["folder"].startswith(str(tmp_path / "cache-2"))
    assert Path(one["folder"]).name == Path(two["folder"]).name
    assert one["files"] == two["files"] == manifest()["files"]  # byte-identical start policies
    for name in one["files"]:
        assert (Path(one["folder"]) / name).read_bytes() == (Path(two["folder"]) / name).read_bytes()
    assert one["accuracy"] == two["accuracy"] == manifest()["heldout_accuracy"]
    overall, _ = documented_start_accuracy()
    assert f"{one['accuracy']['(all)']:.3f}" == overall  # computed from the shipped weights, exactly as documented
