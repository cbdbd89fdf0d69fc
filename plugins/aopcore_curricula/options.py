"""Option models of the curricula family: pure pydantic, so listing and validating plugins imports nothing heavy."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from aopcore.options import DataSpecOption, PreflightContext, split_scheme

BUILTIN_POOL = Path(__file__).parent / "data" / "candidate-pool.jsonl"


def load_pool(spec: str) -> list:
    """The pool curriculum's candidates: ``builtin``, a JSONL file, or any registered data source (``testbed:pool``)."""
    from aopcore.records import load_questions

    if spec == "builtin":
        return load_questions(BUILTIN_POOL)
    if split_scheme(spec)[0] is None:
        return load_questions(spec)
    from aopcore.data.sources import load_source

    return load_source(spec, Path.cwd())


class _Opts(BaseModel):
    model_config = ConfigDict(extra="forbid")


class _CategoryWording(_Opts):
    keywords: dict[str, list[str]] = Field(
        default_factory=dict,
        description='Keywords per category, e.g. {cooking = ["knife skills", "meal prep"]}. Vanilla asks for '
        "questions per (category, keyword); score-based curricula describe categories with them when labelling questions. "
        "Default: the packaged keywords of the 18 SHP categories; any other category uses its own name (a warning says so).",
    )
    category_wording: str | None = Field(
        None,
        description="Where the feedback LLM is told a category's questions are asked, with {category}. Default: the paper's "
        '"the Reddit forum r/{category}" for the 18 SHP categories, \'an online forum about "{category}"\' for any other.',
    )

    @model_validator(mode="after")
    def _wording_names_category(self):
        if self.category_wording is not None and "{category}" not in self.category_wording:
            raise ValueError("category_wording must contain {category}")
        return self


class VanillaGenerationOptions(_CategoryWording):
    questions_per_call: int = Field(10, ge=1, description="Questions asked for per (category, keyword) call.")
    keywords_per_category: int | None = Field(
        None, ge=1, description="Use at most this many keywords per category (default: all)."
    )
    oversample: float = Field(
        1.5, ge=1.0, description="Generate this many times the target before de-duplicating down to it."
    )
    max_rounds: int = Field(4, ge=1, description="Rounds of calls before giving up on reaching the target.")
    prompt_style: Literal["paper", "compact"] = Field(
        "paper", description="paper: the full instructions; compact: a one-line request small local models follow."
    )
    n_clusters: int = Field(11, ge=1, description="KMeans clusters for de-duplication (paper: 11).")
    pca_components: int = Field(32, ge=1, description="PCA dimensions before clustering.")


class ScoreBasedOptions(_CategoryWording):
    samples_per_category: int = Field(
        15, ge=1, description="Evaluation samples per category shown in one call (paper: 15)."
    )
    draws: int = Field(
        40,
        ge=1,
        description="Random draws of samples, one feedback call each (paper: 40). All are made, in batches of "
        "parallel_calls; only if the budget is not met then are more drawn, up to draws * max_draws_factor, in "
        "rounds sized from the yield so far (the calls the missing questions need at it, times 1.5, at most "
        "parallel_calls).",
    )
    questions_per_call: int = Field(50, ge=1, description="Questions asked for per call (paper: 50).")
    max_draws_factor: float = Field(
        3.0, ge=1.0, description="Give up after draws * this many calls (rounded down) without meeting the budget."
    )
    parallel_calls: int = Field(
        8, ge=1, description="Calls sent to the feedback LLM together (providers run them concurrently)."
    )
    max_answer_chars: int = Field(400, ge=20, description="Answers are cut to this length in the prompt.")
    max_similarity: float = Field(
        0.92, gt=0, le=1, description="Reject a question this similar (cosine) to one generated before."
    )
    targeting: Literal["llm", "per-category"] = Field(
        "llm",
        description="llm: the feedback LLM picks the weak domains and labels each question (the paper). "
        "per-category: aopcore picks a weak domain per call; for small feedback models.",
    )
    prompt_style: Literal["paper", "compact"] = Field(
        "paper",
        description="paper: the paper's prompt with every sample; compact (needs per-category targeting): a few "
        "scored examples and a one-line request, for small local models.",
    )
    weak_categories: int = Field(
        3, ge=1, description="per-category targeting: rotate over this many weakest domains of each draw."
    )
    unlabeled: Literal["nearest", "drop"] = Field(
        "nearest",
        description="llm targeting: a question without a valid domain gets the "
        "nearest domain of its draw by embedding (needs an embedder), or is dropped.",
    )
    answers: Literal["none", "writer"] = Field(
        "none",
        description="writer: the feedback LLM writes a reference answer with each question (kept in the prompt's "
        "metadata as `answer`, a column of the trainer's rows for a verifiable reward); a question without one is dropped "
        "and counted. A session's `solve` function, when given, decides every answer instead.",
    )

    @model_validator(mode="after")
    def _compact_needs_targets(self) -> ScoreBasedOptions:
        if self.prompt_style == "compact" and self.targeting != "per-category":
            raise ValueError("prompt_style 'compact' needs targeting = 'per-category'")
        return self


class EvaOptions(ScoreBasedOptions):
    candidates_factor: float = Field(3.0, ge=1.0, description="Candidates generated per prompt kept.")
    samples_per_prompt: int = Field(4, ge=2, description="Answers sampled from the current policy per candidate.")
    selection: str = Field(
        "reward_gap",
        pattern="^(reward_gap|reward_std)$",
        description="Informativeness: max-min or std of the sampled rewards.",
    )


class PoolOptions(_Opts):
    pool: Annotated[str, DataSpecOption(keep=("builtin",))] = Field(
        "builtin",
        description="Candidate prompts: a JSONL file (id, text, category; relative to the config file) or any data source "
        "(e.g. testbed:pool); builtin: 1,080 questions over the 18 SHP categories.",
    )
    temperature: float = Field(0.5, gt=0, description="Category weight = exp(-(mean reward - lowest) / temperature).")
    similarity_weight: float = Field(
        2.0, ge=0, description="How strongly to prefer candidates similar to high-scoring held-out questions."
    )
    top_fraction: float = Field(0.25, gt=0, le=1, description="Held-out questions counted as high-scoring.")

    def preflight(self, ctx: PreflightContext) -> list[str]:
        """The pool must hold every prompt the arm trains on: iterations x records_per_iteration, in the experiment's categories."""
        from aopcore.errors import InputError

        try:
            pool = load_pool(self.pool)
        except InputError as exc:
            return [f"pool: {p}" for p in exc.problems]
        usable = sum(q.category in set(ctx.categories) for q in pool) if ctx.categories else len(pool)
        if usable < ctx.total_records:
            return [
                f"pool: holds {usable} prompts in the experiment's categories; {ctx.iterations} iterations x "
                f"{ctx.records_per_iteration} records_per_iteration need {ctx.total_records}"
            ]
        return []


class LearnabilityOptions(_Opts):
    pool: Annotated[str, DataSpecOption(keep=("builtin",))] = Field(
        "builtin",
        description="Candidate prompts: a JSONL file or any data source (e.g. testbed:pool); builtin: the packaged "
        "1,080 SHP-category questions. Ignored when `generate_with` names a curriculum.",
    )
    generate_with: str | None = Field(
        None,
        description='Generated candidates instead of a pool: this curriculum (e.g. "aop") '
        "is asked for budget x candidates_factor prompts each iteration.",
    )
    generate_options: dict = Field(
        default_factory=dict, description="Options of `generate_with` (as its [arms.NAME] section)."
    )
    candidates_factor: float = Field(
        3.0, ge=1.0, description="With `generate_with`: candidates generated per prompt trained."
    )
    draw_from: Literal["candidates", "planned"] = Field(
        "candidates",
        description="Per step, sample from every candidate (candidates) or only from the iteration's plan (planned).",
    )
    success_threshold: float = Field(0.5, description="A completion passes when its reward is at least this.")
    prior_strength: float = Field(
        2.0,
        gt=0,
        description="Pseudo-trials of the prior: an unseen prompt's pass rate is its "
        "category's (observed rollouts, shrunk towards the category's held-out accuracy).",
    )
    explore: float = Field(
        0.1, ge=0, description="Added to every weight, as a multiple of the mean weight: no prompt starves."
    )


class DynamicFilterOptions(_Opts):
    wrap: str = Field("vanilla", description="The wrapped curriculum (any registered name) that chooses the prompts.")
    wrap_options: dict = Field(default_factory=dict, description="Its options (as its [arms.NAME] section).")
    max_extra_fraction: float = Field(
        0.5,
        ge=0,
        le=1,
        description="Cap on filtering: dropped groups stay below this share "
        "of the groups reported, and a draw skips at most this share of its prompts.",
    )
    window: int = Field(
        2,
        ge=1,
        description="GRESO-style prediction (for any group size): a prompt whose last `window` "
        "rewards were all equal is predicted to give no signal.",
    )
    skip_probability: float = Field(
        0.8,
        ge=0,
        le=1,
        description="Chance of skipping a prompt predicted to give no signal "
        "(below 1, so a prompt the policy may forget is still tried).",
    )
    success_threshold: float = Field(
        0.5, description="A completion passes when its reward is at least this (pass rates)."
    )


class CategoryBanditOptions(_Opts):
    pool: Annotated[str, DataSpecOption(keep=("builtin",))] = Field(
        "builtin", description="Candidate prompts: a JSONL file or any data source (e.g. testbed:pool)."
    )
    temperature: float = Field(0.2, gt=0, description="Softmax temperature over the categories' values.")
    learning_rate: float = Field(
        0.3, gt=0, le=1, description="Q <- (1 - rate) Q + rate * mean |advantage| (SEC's alpha)."
    )


# ---------------------------------------------------------------------------- the literature's curricula


class MoppsOptions(_Opts):
    pool: Annotated[str, DataSpecOption(keep=("builtin",))] = Field(
        "builtin", description="Candidate prompts: a JSONL file or any data source (e.g. testbed:pool)."
    )
    target: float = Field(
        0.5, gt=0, lt=1, description="Success rate aimed at: a draw keeps the candidates whose sampled rate is nearest."
    )
    candidates_factor: float = Field(
        16.0,
        ge=1.0,
        description="Candidates drawn uniformly per prompt kept, before Thompson sampling picks (MoPPS's ts_ratio, 16).",
    )
    decay: float = Field(
        1.0,
        gt=0,
        le=1,
        description="Posterior decay per update: alpha <- decay alpha + (1 - decay) prior + successes (MoPPS's "
        "bandit_decay_ratio; 1 keeps every observation).",
    )
    prior_alpha: float = Field(1.0, gt=0, description="Beta prior's alpha (MoPPS: 1).")
    prior_beta: float = Field(1.0, gt=0, description="Beta prior's beta (MoPPS: 1).")
    success_threshold: float = Field(0.5, description="A completion succeeds when its reward is at least this.")


class SpeedOptions(_Opts):
    pool: Annotated[str, DataSpecOption(keep=("builtin",))] = Field(
        "builtin", description="Candidate prompts: a JSONL file or any data source (e.g. testbed:pool)."
    )
    n_init: int = Field(
        4, ge=2, description="Screening answers sampled per candidate (SPEED's N_init, 4); booked as choosing compute."
    )
    keep_factor: float = Field(
        4.0,
        ge=1.0,
        description="Screened-in prompts kept per prompt of the plan; the training steps deal them in order, so "
        "with keep_factor = passes every episode gets a prompt not trained on before in the iteration.",
    )
    screen_batch: int | None = Field(
        None, ge=1, description="Candidates screened per round (default: the budget); rounds stop once enough pass."
    )
    max_screen_fraction: float = Field(
        1.0, gt=0, le=1, description="Screen at most this share of the pool per iteration."
    )
    success_threshold: float = Field(0.5, description="A completion succeeds when its reward is at least this.")


class AdaRFTOptions(_Opts):
    pool: Annotated[str, DataSpecOption(keep=("builtin",))] = Field(
        "builtin", description="Candidate prompts: a JSONL file or any data source (e.g. testbed:pool)."
    )
    eta: float = Field(
        50.0, gt=0, description="Step size of the target difficulty (AdaRFT's eta, 50 on a 0-100 scale)."
    )
    alpha: float = Field(2.0, gt=0, description="Sensitivity of the update to the reward (AdaRFT's alpha, 2).")
    beta: float = Field(
        0.5, ge=0, le=1, description="Target reward: the target difficulty rises above it, falls below (AdaRFT's beta)."
    )
    initial_target: float | None = Field(
        None,
        ge=0,
        le=100,
        description="Starting target difficulty (0-100); default: the easiest difficulty in the pool.",
    )
    difficulties: dict[str, float] = Field(
        default_factory=dict,
        description="Difficulty (0-100) per category instead of the default, 100 x (1 - the start policy's held-out "
        "accuracy in the category), measured once at iteration 1 and kept.",
    )

    @field_validator("difficulties")
    @classmethod
    def _difficulty_scale(cls, value: dict[str, float]) -> dict[str, float]:
        bad = [f"{c} = {d}" for c, d in value.items() if not 0 <= d <= 100]
        if bad:
            raise ValueError(f"{bad[0]} is off the 0-100 difficulty scale")
        return value


class SwSOptions(_Opts):
    weakness_from: Literal["rollouts", "evaluation"] = Field(
        "rollouts",
        description="rollouts: the problems failed in training (earlier iterations' per-step rollouts; the start "
        "policy's held-out answers at iteration 1), as SwS does; evaluation: the current held-out answers every iteration.",
    )
    fail_threshold: float = Field(0.5, gt=0, le=1, description="A problem is failed when its pass rate is below this.")
    examples_per_call: int = Field(5, ge=1, description="Failed problems shown in one concept or generation call.")
    concepts_per_call: int = Field(
        3, ge=0, description="Concepts asked for per weak category (SwS's concept extraction); 0 skips the step."
    )
    questions_per_call: int = Field(20, ge=1, description="New problems asked for per generation call.")
    candidates_factor: float = Field(
        2.0, ge=1.0, description="Problems synthesised per prompt kept, before the difficulty filter."
    )
    filter_samples: int = Field(
        4,
        ge=0,
        description="Answers sampled per synthesised problem to keep those the policy solves sometimes (SwS's "
        "difficulty filter; booked as choosing compute); 0 skips it.",
    )
    max_calls_factor: float = Field(
        4.0, ge=1.0, description="Give up after this many times the generation calls the allocation needs."
    )
    max_similarity: float = Field(
        0.99, gt=0, le=1, description="Reject a problem this similar (cosine, with an embedder) to one seen before."
    )
    category_wording: str | None = Field(
        None, description="Where the problems are asked, with {category} (default: as the score-based curricula)."
    )

    @model_validator(mode="after")
    def _wording_names_category(self) -> SwSOptions:
        if self.category_wording is not None and "{category}" not in self.category_wording:
            raise ValueError("category_wording must contain {category}")
        return self
