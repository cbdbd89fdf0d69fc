"""aopcore: RLHF with on-policy prompt curricula (Always-On-Policy prompts).

The public API: the protocols, the records, the hook marker and the Experiment.
"""

from aopcore._moved import package_getattr as __getattr__  # noqa: F401 - old module paths still import
from aopcore.contracts import FeedbackFunction, JudgeFunction, RewardFunction
from aopcore.engine.experiment import (
    Budget,
    Experiment,
    ExperimentResult,
    ExperimentSettings,
    JudgingPlan,
    stage_seed,
)
from aopcore.engine.multiseed import MultiSeedResult, run_seeds
from aopcore.engine.session import CurriculumSession
from aopcore.errors import AopcoreError, InputError, RuntimeFailure
from aopcore.hookspecs import hookimpl
from aopcore.ledger import record_usage
from aopcore.progress import enable_console_progress
from aopcore.protocols import (
    CurriculumContext,
    Embedder,
    FeedbackLLM,
    Judge,
    PolicyTrainer,
    PromptCurriculum,
    RewardModel,
)
from aopcore.records import (
    EvalRecord,
    JudgeItem,
    Prompt,
    Provenance,
    Question,
    TrainStats,
    Verdict,
)

__version__ = "0.1.0"

__all__ = [
    "AopcoreError",
    "Budget",
    "CurriculumContext",
    "CurriculumSession",
    "Embedder",
    "EvalRecord",
    "Experiment",
    "ExperimentResult",
    "ExperimentSettings",
    "FeedbackLLM",
    "InputError",
    "Judge",
    "JudgeItem",
    "JudgingPlan",
    "MultiSeedResult",
    "PolicyTrainer",
    "Prompt",
    "PromptCurriculum",
    "Provenance",
    "Question",
    "RewardModel",
    "RuntimeFailure",
    "TrainStats",
    "Verdict",
    "hookimpl",
    "record_usage",
    "run_seeds",
    "stage_seed",
    "enable_console_progress",
    "RewardFunction",
    "FeedbackFunction",
    "JudgeFunction",
]
