"""One sequence-tier start policy everywhere: `testbed-seq` ships pretrained, every cache holds the same bytes whatever
the thread count, its answers are several tokens long, and its held-out scores are the documented ones."""

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("reasoning_gym")

from aopcore_testbed.sequence.model import RECIPE, bpe_tokenizer, ensure_alias, recipe_id, shipped_key
from aopcore_testbed.sequence.shipped import WEIGHTS
from aopcore_testbed.sequence.tasks import CATEGORIES
from aopcore_testbed.shipped import MANIFEST, digest, file_hashes

ROOT = Path(__file__).parents[2]
DOC = ROOT / "docs" / "testbed.md"


def manifest() -> dict:
    return json.loads((WEIGHTS / MANIFEST).read_text())


def documented_start_scores() -> dict[str, tuple[str, str, str]]:
    """docs/testbed.md's sequence-tier table: category -> (score, exact, answer tokens) of the start policy."""
    text = DOC.read_text()
    rows = re.findall(r"^\| `(\w+)` \| [^|]+ \| (\d\.\d{3}) \| (\d\.\d{3}) \| (\d+\.\d) \|$", text, re.M)
    return {c: (s, e, n) for c, s, e, n in rows}


def test_shipped_weights_match_their_manifest_and_the_current_recipe():
    m = manifest()
    assert file_hashes(WEIGHTS) == m["files"] and digest(m["files"]) == m["sha256"]
    assert {"model.safetensors", "config.json", "tokenizer.json"} <= set(m["files"])
    assert sum(p.stat().st_size for p in WEIGHTS.iterdir()) < 2_000_000
    assert m["recipe"] == RECIPE and m["recipe_id"] == recipe_id(), (
        "python -m aopcore_testbed.sequence.regenerate, then update docs/testbed.md"
    )
    shipped = json.loads((WEIGHTS / "tokenizer.json").read_text())["model"]
    fresh = json.loads(bpe_tokenizer().backend_tokenizer.to_str())["model"]
    assert shipped["vocab"] == fresh["vocab"] and shipped["merges"] == fresh["merges"]  # the BPE is deterministic
    assert m["made_with"]["threads"] == 1


def test_answers_are_several_tokens_and_skill_is_uneven_across_categories():
    m = manifest()
    assert m["answer_tokens"]["(all)"] >= 4
    assert all(m["answer_tokens"][c] >= 8 for c in CATEGORIES if c.startswith("word_sequence_reversal"))
    scores = [m["heldout_score"][c] for c in CATEGORIES]
    assert max(scores) >= 0.6 and min(scores) <= 0.3, scores  # some categories mostly right, some mostly wrong


def test_the_tokenizer_gives_every_text_back_and_splits_answers_into_several_tokens():
    tok = bpe_tokenizer()
    for text in ("gnirts", "-381", "General, issue, an, editions, supply", "Calculate 12 + 580.\n"):
        ids = tok(text, add_special_tokens=False)["input_ids"]
        assert tok.decode(ids) == text and (len(ids) >= 3 or len(text) < 3)


def test_the_cache_key_is_a_hash_of_the_shipped_bytes(tmp_path: Path):
    folder = ensure_alias("testbed-seq", tmp_path)
    assert folder.name == f"testbed-seq-{shipped_key()}" and shipped_key() == manifest()["sha256"][:16]
    assert file_hashes(folder) == manifest()["files"]
    assert ensure_alias("testbed-seq", tmp_path) == folder
    changed = tmp_path / "changed"
    shutil.copytree(WEIGHTS, changed)
    blob = bytearray((changed / "model.safetensors").read_bytes())
    blob[-1] ^= 1
    (changed / "model.safetensors").write_bytes(bytes(blob))
    assert digest(file_hashes(changed))[:16] != shipped_key()


def test_documented_start_scores_are_the_shipped_policys():
    m = manifest()
    documented = documented_start_scores()
    assert set(documented) == set(CATEGORIES) | {"(all)"} or set(documented) == set(CATEGORIES)
    for c in CATEGORIES:
        assert documented[c] == (
            f"{m['heldout_score'][c]:.3f}",
            f"{m['heldout_exact'][c]:.3f}",
            f"{m['answer_tokens'][c]:.1f}",
        ), c


PROBE = """
import json
from pathlib import Path
from aopcore_hf.models import resolve_model
from aopcore_testbed.sequence.shipped import start_scores
from aopcore_testbed.shipped import file_hashes
import torch
folder = Path(resolve_model("testbed-seq"))
print(json.dumps({"folder": str(folder), "threads": torch.get_num_threads(), "files": file_hashes(folder),
                  "scores": start_scores(folder)}))
"""


@pytest.mark.slow
def test_fresh_caches_under_one_and_two_threads_hold_the_same_policy_with_the_documented_scores(tmp_path: Path):
    seen = []
    for threads in ("1", "2"):
        env = {
            **os.environ,
            "OMP_NUM_THREADS": threads,
            "AOPCORE_CACHE": str(tmp_path / f"cache-{threads}"),
            "TQDM_DISABLE": "1",
        }
        proc = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0, proc.stderr[-3000:]
        seen.append(json.loads(proc.stdout.strip().splitlines()[-1]))
    one, two = seen
    assert (one["threads"], two["threads"]) == (1, 2)
    assert one["folder"].startswith(str(tmp_path / "cache-1")) and two["folder"].startswith(str(tmp_path / "cache-2"))
    assert one["files"] == two["files"] == manifest()["files"]
    for name in one["files"]:
        assert (Path(one["folder"]) / name).read_bytes() == (Path(two["folder"]) / name).read_bytes()
    m = manifest()
    for got in (one["scores"], two["scores"]):
        assert got["score"] == m["heldout_score"] and got["answer_tokens"] == m["answer_tokens"]
