"""Regenerate the shipped ``testbed-seq`` weights: the documented, deterministic way to rebuild the start policy.

    .venv/bin/python -m aopcore_testbed.sequence.regenerate          # rewrites plugins/aopcore_testbed/weights/testbed-seq/
    .venv/bin/python -m aopcore_testbed.sequence.regenerate --check  # rebuilds in a temporary folder, compares, writes nothing

As for ``testbed-tiny`` (``aopcore_testbed.regenerate``): torch is pinned to one thread before anything runs, the
random-initialised model is built from the recipe's seed (``model.build``), pretrained on the SFT data
(``pretrain.pretrain``, recipe ``model.RECIPE``, data ``sets.sft_rows``), and ``manifest.json`` is written beside the
weights with the SHA-256 of every file, the recipe id, the library versions and machine, the pretraining time, and
the start policy's held-out scores per category (the tasks' mean score, the share answered exactly, and the mean
answer length in tokens), computed exactly as an experiment evaluates it. tests/testbed/test_sequence_weights.py
checks the files against the manifest, the recipe id against the code, and docs/testbed.md against the scores.
"""

from __future__ import annotations

import os

os.environ["OMP_NUM_THREADS"] = "1"  # before torch is imported: one thread, one result
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import argparse  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import shutil  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

from aopcore_testbed.sequence.shipped import WEIGHTS, start_scores  # noqa: E402
from aopcore_testbed.shipped import MANIFEST, cpu_model, digest, file_hashes  # noqa: E402


def regenerate(out: Path) -> dict:
    """Build, pretrain and describe the start policy into ``out`` (replaced); returns the manifest."""
    import importlib.metadata

    import tokenizers
    import torch
    import transformers

    from aopcore_testbed.sequence.model import ARCH, NAME, RECIPE, build, recipe_id
    from aopcore_testbed.sequence.pretrain import pretrain
    from aopcore_testbed.sequence.sets import sft_rows

    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    r = RECIPE
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix=f"{NAME}-") as tmp:
        base = build(Path(tmp) / "base", **{k: r[k] for k in ARCH})
        skilled = Path(tmp) / "skilled"
        rows = sft_rows(r["seed"])
        stats = pretrain(
            base, skilled, rows, epochs=r["epochs"], lr=r["lr"], batch_size=r["batch_size"], seed=r["seed"]
        )
        wall = time.perf_counter() - t0
        scores = start_scores(skilled)
        if out.exists():
            shutil.rmtree(out)
        out.parent.mkdir(parents=True, exist_ok=True)
        shutil.copytree(skilled, out)
    out.chmod(0o755)  # save_pretrained may write 0600: shipped files are readable by all
    for f in out.iterdir():
        f.chmod(0o644)
    hashes = file_hashes(out)
    manifest = {
        "model": NAME,
        "recipe": RECIPE,
        "recipe_id": recipe_id(),
        "files": hashes,
        "sha256": digest(hashes),
        "sft_rows": len(rows),
        "heldout_score": scores["score"],
        "heldout_exact": scores["exact"],
        "answer_tokens": scores["answer_tokens"],
        "loss_per_epoch": [round(x, 6) for x in stats["loss_per_epoch"]],
        "made_with": {
            "command": "python -m aopcore_testbed.sequence.regenerate",
            "threads": torch.get_num_threads(),
            "python": platform.python_version(),
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "tokenizers": tokenizers.__version__,
            "reasoning_gym": importlib.metadata.version("reasoning-gym"),  # its __version__ lags the release
            "cpu": cpu_model(),
            "pretrain_wall_s": round(wall, 1),
        },
    }
    (out / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return manifest


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=WEIGHTS, help="folder to write (default: the shipped one)")
    parser.add_argument(
        "--check", action="store_true", help="rebuild into a temporary folder and compare with the shipped weights"
    )
    args = parser.parse_args(argv)
    if args.check:
        with tempfile.TemporaryDirectory() as tmp:
            fresh = regenerate(Path(tmp) / "testbed-seq")
        shipped = json.loads((WEIGHTS / MANIFEST).read_text())
        same = fresh["sha256"] == shipped["sha256"]
        print(
            f"rebuilt {fresh['sha256'][:16]}, shipped {shipped['sha256'][:16]}: {'identical' if same else 'DIFFERENT'}; "
            f"held-out score {fresh['heldout_score']['(all)']:.3f} (shipped {shipped['heldout_score']['(all)']:.3f})"
        )
        return 0 if same else 1
    manifest = regenerate(args.out)
    print(
        f"wrote {args.out} (sha256 {manifest['sha256'][:16]}, held-out score {manifest['heldout_score']['(all)']:.3f}, "
        f"mean answer {manifest['answer_tokens']['(all)']:.1f} tokens, {manifest['made_with']['pretrain_wall_s']} s)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
