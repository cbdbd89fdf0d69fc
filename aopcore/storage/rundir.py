"""The run directory's layout: the one module that spells its paths, stage ids and seed keys.

The run directory is the contract that resume, reports, ``verify`` and the adapters share, so its names live
here and nowhere else (``tests/core/test_run_layout.py`` greps the tree for them). The layout is the one written by
every release so far; changing a name here changes where old run directories are read::

    config.json, fingerprint.json, stages/<stage id>.json, attempts/, scratch/, train-index/
    sft/policy/, sft/evaluation.jsonl                           policy_0 and its evaluation
    arms/<arm>/iter-NN/{prompts,evaluation,test_answers,steps}.jsonl, train.json, policy/
    arms/<arm>/curriculum/                                      the curriculum's workdir (iter-NN.log.json)
    judge/<a>-vs-<b>/iter-NN.jsonl, raw-iter-NN.jsonl           verdicts, and what the judge said
    tables/, report.md
    multi-seed: multiseed.json, shared-sft/, seed-<s>/ (each a run directory), aggregate/

A run directory travels as a :class:`RunLayout` (``RunLayout.of(path)`` accepts either).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

SFT_POLICY = "sft/policy"
SFT_EVALUATION = "sft/evaluation"
MULTISEED_MANIFEST = "multiseed.json"
# the files of an iteration folder arms/<arm>/iter-NN/
PROMPTS, EVALUATION, TEST_ANSWERS, STEPS, TRAIN_RECORD = (
    "prompts.jsonl",
    "evaluation.jsonl",
    "test_answers.jsonl",
    "steps.jsonl",
    "train.json",
)
_ITERATION = re.compile(r"^iter-(\d+)$")
_STAGE_ITERATION = re.compile(r"/iter-(\d+)(?:/|$)")
_SEED = re.compile(r"^seed-(\d+)$")


def stage_seed(seed: int, stage_id: str) -> int:
    """A seed that depends only on the base seed and the stage, so a resumed stage draws the same numbers."""
    digest = hashlib.sha256(f"{seed}:{stage_id}".encode()).digest()
    return int.from_bytes(digest[:4], "big") & 0x7FFFFFFF


def iteration_name(i: int) -> str:
    """``iter-NN``: an iteration's folder (and file stem) name."""
    return f"iter-{i:02d}"


def iteration_of(name: str) -> int | None:
    """The iteration a folder or file stem ``iter-NN`` names (None for any other name)."""
    m = _ITERATION.match(name)
    return int(m.group(1)) if m else None


def stage_iteration(stage_id: str) -> int | None:
    """The iteration of a stage id such as ``arms/aop/iter-02/train`` or ``judge/a-vs-b/iter-02`` (None: no iteration)."""
    m = _STAGE_ITERATION.search(stage_id)
    return int(m.group(1)) if m else None


def curriculum_log_name(i: int) -> str:
    """``iter-NN.log.json``: the generation log a built-in curriculum writes into its work folder for iteration ``i``."""
    return f"{iteration_name(i)}.log.json"


def curriculum_log_names(i: int) -> list[str]:
    """The generation logs the built-in curricula write into their work folder for iteration ``i`` (a pool's at 1)."""
    return [curriculum_log_name(i)] + (["pool.log.json"] if i == 1 else [])


def curriculum_seed_key(kind: str, i: int) -> str:
    """The :func:`stage_seed` key of a curriculum's own draw at iteration ``i`` (``score-based/iter-NN``)."""
    return f"{kind}/{iteration_name(i)}"


def stage_id(arm: str, i: int, kind: str) -> str:
    """The id of an arm's stage at iteration ``i``: ``arms/<arm>/iter-NN/<kind>`` (prompts, train, evaluation, answers)."""
    return f"arms/{arm}/{iteration_name(i)}/{kind}"


def judge_stage_id(a: str, b: str, i: int) -> str:
    return f"judge/{a}-vs-{b}/{iteration_name(i)}"


def pair_name(a: str, b: str) -> str:
    return f"{a}-vs-{b}"


# ---- seed keys: stage ids that only seed (no stage record carries them); kept as released ----------------------
def evaluation_seed_key(i: int) -> str:
    """The seed key of the evaluation of policy ``i`` (0: the SFT policy)."""
    return SFT_EVALUATION if i == 0 else f"evaluation/iter-{i}"


def answers_seed_key(i: int) -> str:
    return f"answers/iter-{i}"


def train_seed_key(digest: str) -> str:
    return f"train/{digest}"


def order_seed_key(arm: str, i: int) -> str:
    """The seed of a loop's own data order in round ``i`` (the veRL adapter)."""
    return stage_id(arm, i, "order")


def seed_name(seed: int | str) -> str:
    """``seed-<s>``: a multi-seed run's sub-run folder."""
    return f"seed-{seed}"


def seed_link(seed: int, file: str) -> str:
    """A link from a multi-seed run's ``aggregate/`` folder to a seed's file (reports link each seed's own)."""
    return f"../{seed_name(seed)}/{file}"


@dataclass(frozen=True)
class RunLayout:
    """Every path of one run directory (``root``), relative names and stage ids included."""

    root: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "root", Path(self.root))

    @classmethod
    def of(cls, run: RunLayout | Path | str) -> RunLayout:
        return run if isinstance(run, RunLayout) else cls(Path(run))

    def path(self, *parts: str) -> Path:
        return self.root.joinpath(*parts)

    def rel(self, path: Path | str) -> str:
        """``path`` relative to the root, as stored in records."""
        return Path(path).relative_to(self.root).as_posix()

    # ---- files of the whole run -----------------------------------------------------------------------------
    @property
    def config(self) -> Path:
        return self.root / "config.json"

    @property
    def scratch_root(self) -> Path:
        return self.root / "scratch"

    @property
    def attempts_root(self) -> Path:
        return self.root / "attempts"

    @property
    def tables(self) -> Path:
        return self.root / "tables"

    @property
    def human_eval_tally(self) -> Path:
        return self.tables / "human_eval.json"

    def attempt(self, stage: str) -> Path:
        return self.attempts_root / f"{stage.replace('/', '__')}.json"

    def train_index(self, digest: str) -> Path:
        return self.root / "train-index" / f"{digest}.json"

    # ---- an arm's iterations ----------------------------------------------------------------------------------
    def arm_dir(self, arm: str) -> Path:
        return self.root / "arms" / arm

    def arms(self) -> list[str]:
        """The arm folders present, sorted."""
        folder = self.root / "arms"
        return sorted(p.name for p in folder.iterdir() if p.is_dir()) if folder.is_dir() else []

    def iteration_dir(self, arm: str, i: int) -> Path:
        return self.arm_dir(arm) / iteration_name(i)

    def iteration_dirs(self, arm: str) -> list[Path]:
        """The arm's ``iter-NN`` folders present, in iteration order."""
        found = [(iteration_of(p.name), p) for p in self.arm_dir(arm).glob("iter-*") if p.is_dir()]
        return [p for i, p in sorted((i, p) for i, p in found if i is not None)]

    def iterations_with(self, arm: str, file: str) -> list[int]:
        """The iterations whose folder holds ``file`` (e.g. ``test_answers.jsonl``), sorted."""
        return [int(iteration_of(p.name) or 0) for p in self.iteration_dirs(arm) if (p / file).exists()]

    def policy_dir(self, arm: str | None, i: int) -> Path:
        return self.root / "sft" / "policy" if i == 0 else self.iteration_dir(arm or "", i) / "policy"

    def evaluation(self, arm: str | None, i: int) -> Path:
        """The held-out evaluation of the arm's policy ``i`` (0: the SFT policy's, shared by every arm)."""
        return self.root / "sft" / "evaluation.jsonl" if i == 0 else self.iteration_dir(arm or "", i) / EVALUATION

    def prompts(self, arm: str, i: int) -> Path:
        return self.iteration_dir(arm, i) / PROMPTS

    def steps(self, arm: str, i: int) -> Path:
        return self.iteration_dir(arm, i) / STEPS

    def train_record(self, arm: str, i: int) -> Path:
        return self.iteration_dir(arm, i) / TRAIN_RECORD

    def test_answers(self, arm: str, i: int) -> Path:
        return self.iteration_dir(arm, i) / TEST_ANSWERS

    def curriculum_dir(self, arm: str) -> Path:
        return self.arm_dir(arm) / "curriculum"

    def curriculum_logs(self, arm: str, i: int) -> list[str]:
        """The curriculum logs a prompts stage hashes into its record (relative; missing ones are skipped)."""
        return [f"{self.rel(self.curriculum_dir(arm))}/{name}" for name in curriculum_log_names(i)]

    def train_scratch(self, arm: str, i: int) -> Path:
        """A training stage's crash-surviving folder (the trainer's mid-stage checkpoints, the stream log)."""
        return self.scratch_root / f"arms__{arm}__{iteration_name(i)}__train"

    # ---- judging ---------------------------------------------------------------------------------------------
    def judge_dir(self, pair: str) -> Path:
        return self.root / "judge" / pair

    def verdicts(self, a: str, b: str, i: int) -> Path:
        return self.pair_verdicts(pair_name(a, b), i)

    def pair_verdicts(self, pair: str, i: int) -> Path:
        """``judge/<pair>/iter-NN.jsonl`` for a pair folder name ``<a>-vs-<b>``."""
        return self.judge_dir(pair) / f"{iteration_name(i)}.jsonl"

    def raw_verdicts(self, a: str, b: str, i: int) -> Path:
        return self.judge_dir(pair_name(a, b)) / f"raw-{iteration_name(i)}.jsonl"

    def judged_iterations(self, pair: str) -> dict[int, Path]:
        """Iteration -> verdict file of a pair folder (``judge/<a>-vs-<b>/iter-NN.jsonl``)."""
        found = {iteration_of(p.stem): p for p in self.judge_dir(pair).glob("iter-*.jsonl")}
        return {i: p for i, p in sorted((i, p) for i, p in found.items() if i is not None)}

    # ---- multi-seed runs ---------------------------------------------------------------------------------------
    @property
    def manifest(self) -> Path:
        return self.root / MULTISEED_MANIFEST

    @property
    def shared_sft(self) -> Path:
        return self.root / "shared-sft"

    @property
    def aggregate_dir(self) -> Path:
        return self.root / "aggregate"

    @property
    def shared_policy(self) -> Path:
        """policy_0 of every seed when the seeds share their SFT (a stage ``sft/policy`` of the ``shared-sft`` run)."""
        return self.shared_sft / "policy"

    def seed_dir(self, seed: int | str) -> Path:
        return self.root / seed_name(seed)

    def seed_runs(self) -> dict[int, Path]:
        """Seed -> sub-run directory for every ``seed-<s>/`` that holds a run (has its config.json)."""
        out = {}
        for path in self.root.glob("seed-*"):
            m = _SEED.match(path.name)
            if m and path.is_dir() and (path / "config.json").exists():
                out[int(m.group(1))] = path
        return dict(sorted(out.items()))

    def seed_folders(self) -> list[Path]:
        """Every ``seed-*`` folder, run or not (what ``verify`` walks)."""
        return sorted(self.root.glob("seed-*"))

    def is_multiseed(self) -> bool:
        return self.manifest.exists() or bool(self.seed_runs())


__all__ = [
    "RunLayout",
    "stage_seed",
    "stage_id",
    "judge_stage_id",
    "iteration_name",
    "iteration_of",
    "stage_iteration",
    "seed_name",
    "seed_link",
    "pair_name",
    "PROMPTS",
    "EVALUATION",
    "TEST_ANSWERS",
    "STEPS",
    "TRAIN_RECORD",
    "SFT_POLICY",
    "SFT_EVALUATION",
]
