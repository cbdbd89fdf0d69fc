"""The checks that run before any stage, for an experiment and for a curriculum session, in one place.

Every problem is one line naming where it is (``arms.aop: ...``, ``session.rounds: ...``); all are raised
together as one :class:`~aopcore.errors.InputError` (the CLI prints them and exits with status 2). A config file
is checked earlier by :mod:`aopcore.engine.build`, which names ``file:line: key``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from aopcore import contracts
from aopcore.capabilities import chooses_per_step, needs_iterations, required_components, trains_from_stream
from aopcore.engine.collaborators import ROLES, Collaborators
from aopcore.engine.settings import ExperimentSettings
from aopcore.errors import InputError
from aopcore.records import Prompt


def is_folder_name(name: str) -> bool:
    """An arm or session name becomes a folder of the run directory: one plain name."""
    return bool(name) and "/" not in name and "\\" not in name and not name.startswith(".")


def raise_problems(problems: list[str]) -> None:
    if problems:
        raise InputError(*problems)


ARM_NAME = "arm names must be plain folder names"


def judging_problems(
    pairs: Sequence[Sequence[str]] | None, iterations: Sequence[int] | None, arms: Sequence[str], runs: int | None
) -> list[tuple[str, str]]:
    """(key, problem) for a judging plan: each judged arm exists and differs from its partner, each judged iteration
    is run (``runs`` iterations; None when unknown). For a config file (``file:line: key``) and an experiment."""
    out = []
    for pair in pairs or []:
        for arm in pair:
            if arm not in arms:
                out.append(("evaluation.pairs", f"unknown arm {arm!r} (arms: {', '.join(arms) or 'none'})"))
        if len(pair) == 2 and pair[0] == pair[1]:
            out.append(("evaluation.pairs", f"the pair [{pair[0]!r}, {pair[1]!r}] compares an arm with itself"))
    if runs is not None:
        out += [
            ("evaluation.iterations", f"{i} is outside 1..{runs} (experiment.iterations)")
            for i in iterations or []
            if not 1 <= i <= runs
        ]
    return out


def experiment_problems(settings: ExperimentSettings, parts: Collaborators) -> list[str]:
    """What keeps an Experiment from running, one line per problem (components, arms, judging, data)."""
    problems = []
    for role in ROLES:  # before any stage: one line per problem
        if parts.component(role) is not None:
            problems += contracts.check_component(role, parts.component(role))
    for arm, curriculum in parts.arms.items():
        problems += contracts.check_component("curriculum", curriculum, f"arms.{arm}")
    if not parts.arms:
        problems.append("experiment has no arms")
    problems += [f"arms.{arm}: {ARM_NAME}" for arm in parts.arms if not is_folder_name(arm)]
    for arm, curriculum in parts.arms.items():
        needs = required_components(curriculum)
        if "feedback" in needs and parts.feedback is None:
            problems.append(f"arms.{arm}: curriculum needs a [feedback] LLM and none is configured")
        if "embedder" in needs and parts.embedder is None:
            problems.append(f"arms.{arm}: curriculum needs an [embedder] and none is configured")
        if chooses_per_step(curriculum) and not trains_from_stream(parts.trainer):
            problems.append(
                f"arms.{arm}: curriculum {type(curriculum).__name__} chooses every training step's prompts "
                f"(selector), and {contracts.component_name('trainer', parts.trainer)} takes no stream "
                "(its train() has no `stream` keyword): use a trainer that does (ppo, grpo, rloo) or a curriculum "
                "that chooses per iteration"
            )
    judging = settings.judging
    arms = list(parts.arms)
    problems += [
        f"{key}: {problem}"
        for key, problem in judging_problems(judging.pairs, judging.iterations, arms, settings.budget.iterations)
    ]
    if not parts.heldout:
        problems.append("data.heldout: no held-out questions")
    return problems


def session_setting_problems(
    *, budget: Any, rounds: Any, name: str, options: Any, curriculum: Any, solve: Any = None
) -> list[str]:
    """A CurriculumSession's own settings, checked before any component is built."""
    problems: list[str] = []
    if not isinstance(budget, int) or isinstance(budget, bool) or budget < 1:
        problems.append(f"session.budget: {budget!r} is not a positive number of prompts per round")
    if rounds is not None and (not isinstance(rounds, int) or isinstance(rounds, bool) or rounds < 1):
        problems.append(f"session.rounds: {rounds!r} is not a positive number of rounds (or None: open-ended)")
    if not is_folder_name(name):
        problems.append(f"session.name: {name!r} is not a plain folder name")
    if options is not None and not isinstance(curriculum, str):
        problems.append("session.options: options go with a curriculum plugin name; an object carries its own")
    if solve is not None and not callable(solve):
        problems.append(f"session.solve: {type(solve).__name__} is not a function solve(question) -> answer or None")
    return problems


def session_problems(curriculum: Any, components: Mapping[str, Any], rounds: int | None) -> list[str]:
    """A CurriculumSession's curriculum and components (``components``: feedback, embedder, reward)."""
    problems = contracts.check_component("curriculum", curriculum, "session.curriculum")
    for role, obj in components.items():
        if obj is not None:
            problems += contracts.check_component(role, obj, f"session.{role}")
    columns = contracts.reward_columns_problem(components.get("reward"), "session.reward")
    if columns:
        problems.append(columns)
    needs = required_components(curriculum)
    for need in ("feedback", "embedder"):
        if need in needs and components.get(need) is None:
            problems.append(
                f"session.curriculum: curriculum needs {'an' if need[0] in 'aeiou' else 'a'} {need} "
                f"and the session has none (pass {need}=...)"
            )
    if rounds is None and needs_iterations(curriculum):
        problems.append(
            f"session.rounds: {type(curriculum).__name__} writes one pool for every round and splits it, "
            "so it needs the number of rounds; rounds=None (open-ended) is for curricula that choose every round"
        )
    return problems


def chosen_prompts_problem(prompts: Sequence[Any], budget: int, *, where: str, who: str, when: str) -> str | None:
    """What is wrong with the prompts a curriculum chose for one iteration (or round), or None: exactly ``budget``
    :class:`~aopcore.Prompt` objects, no id twice. For the experiment and the session alike (a RuntimeFailure there)."""
    if len(prompts) != budget:
        return f"{where}: {who} returned {len(prompts)} prompts for {when}, budget is {budget}"
    if any(not isinstance(p, Prompt) for p in prompts):
        return f"{where}: {when}: prompts must be aopcore.Prompt objects"
    ids = [p.id for p in prompts]
    if len(set(ids)) != len(ids):
        return f"{where}: {who} returned duplicate prompt ids at {when}"
    return None
