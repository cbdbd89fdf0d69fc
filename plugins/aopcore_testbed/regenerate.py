"""Regenerate the shipped ``testbed-tiny`` weights: the documented, deterministic way to rebuild the start policy.

    .venv/bin/python -m aopcore_testbed.regenerate            # rewrites plugins/aopcore_testbed/weights/testbed-tiny/
    .venv/bin/python -m aopcore_testbed.regenerate --check    # rebuilds into a temporary folder, compares, writes nothing

The testbed ships its start policy (about half a megabyte) instead of pretraining it on each machine: pretrained
under ``OMP_NUM_THREADS=2`` the same recipe gives other weights (and a start accuracy 0.02-0.06 away) than under
one thread, which is as large as the differences the testbed is there to find. This script is how those weights
were made: it pins torch to one thread before anything runs (so the result does not depend on the shell's
``OMP_NUM_THREADS``), builds the random-initialised model (``model.build``), pretrains it on the SFT data
(``model.pretrain``, recipe ``model.RECIPE``), and writes ``manifest.json`` beside the weights with the SHA-256 of
every file, the recipe id, the library versions and machine it ran on, and the start policy's held-out accuracy
(greedy, exactly as an experiment evaluates it). ``tests/testbed/test_testbed_weights.py`` checks the shipped files against
that manifest, the recipe id against the current code, and the accuracy against docs/testbed.md.

Regenerate after changing the vocabulary (skills), the SFT plan or the recipe, then update the start-accuracy
figures in docs/testbed.md; the cache key (a hash of the shipped files) changes with the weights by itself.
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

from aopcore_testbed.shipped import MANIFEST, WEIGHTS, cpu_model, digest, file_hashes, start_accuracy  # noqa: E402


def regenerate(out: Path) -> dict:
    """Build, pretrain and describe the start policy into ``out`` (replaced); returns the manifest."""
    import tokenizers
    import torch
    import transformers

    from aopcore_testbed.model import RECIPE, _recipe_id, build, pretrain
    from aopcore_testbed.sets import sft_rows

    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    r = RECIPE
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="testbed-tiny-") as tmp:
        base = build(Path(tmp) / "base", n_embd=r["n_embd"], n_layer=r["n_layer"], n_head=r["n_head"], seed=r["seed"])
        skilled = Path(tmp) / "skilled"
        stats = pretrain(
            base,
            skilled,
            sft_rows(r["seed"]),
            epochs=r["epochs"],
            lr=r["lr"],
            batch_size=r["batch_size"],
            seed=r["seed"],
        )
        wall = time.perf_counter() - t0
        accuracy = start_accuracy(skilled)
        if out.exists():
            shutil.rmtree(out)
        out.parent.mkdir(parents=True, exist_ok=True)
        shutil.copytree(skilled, out)
    out.chmod(0o755)  # save_pretrained may write 0600: shipped files are readable by all
    for f in out.iterdir():
        f.chmod(0o644)
    hashes = file_hashes(out)
    manifest = {
        "model": "testbed-tiny",
        "recipe": RECIPE,
        "recipe_id": _recipe_id(),
        "files": hashes,
        "sha256": digest(hashes),
        "heldout_accuracy": accuracy,
        "loss_per_epoch": [round(x, 6) for x in stats["loss_per_epoch"]],
        "made_with": {
            "command": "python -m aopcore_testbed.regenerate",
            "threads": torch.get_num_threads(),
            "python": platform.python_version(),
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "tokenizers": tokenizers.__version__,
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
            fresh = regenerate(Path(tmp) / "testbed-tiny")
        shipped = json.loads((WEIGHTS / MANIFEST).read_text())
        same = fresh["sha256"] == shipped["sha256"]
        print(
            f"rebuilt {fresh['sha256'][:16]}, shipped {shipped['sha256'][:16]}: {'identical' if same else 'DIFFERENT'}; "
            f"held-out accuracy {fresh['heldout_accuracy']['(all)']:.3f} (shipped {shipped['heldout_accuracy']['(all)']:.3f})"
        )
        return 0 if same else 1
    manifest = regenerate(args.out)
    print(
        f"wrote {args.out} (sha256 {manifest['sha256'][:16]}, held-out accuracy {manifest['heldout_accuracy']['(all)']:.3f}, "
        f"{manifest['made_with']['pretrain_wall_s']} s)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
