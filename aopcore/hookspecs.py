"""Plugin hooks. A plugin module implements any of these and calls ``register(name, factory)``.

``factory(options)`` builds the component from its validated options model,
declared as ``factory.Options`` (a pydantic model) or passed as
``register(name, factory, options=Model)``.
"""
from __future__ import annotations

from typing import Any, Protocol

import pluggy

hookspec = pluggy.HookspecMarker("aopcore")
hookimpl = pluggy.HookimplMarker("aopcore")


class Register(Protocol):
    def __call__(self, name: str, factory: Any, *, options: Any = None, description: str | None = None) -> None: ...


@hookspec
def register_trainers(register: Register) -> None:
    """Register PolicyTrainer implementations."""


@hookspec
def register_reward_models(register: Register) -> None:
    """Register RewardModel implementations."""


@hookspec
def register_curricula(register: Register) -> None:
    """Register PromptCurriculum implementations."""


@hookspec
def register_feedback_llms(register: Register) -> None:
    """Register FeedbackLLM implementations (the model that writes prompts)."""


@hookspec
def register_judges(register: Register) -> None:
    """Register Judge implementations."""


@hookspec
def register_embedders(register: Register) -> None:
    """Register Embedder implementations."""


@hookspec
def register_commands(subparsers: Any) -> None:
    """Add subcommands to the ``aopcore`` CLI.

    ``subparsers`` is the CLI's ``argparse`` subparsers object: add a parser and give it
    ``set_defaults(func=handler)``, where ``handler(args) -> int`` returns the exit status and raises
    ``InputError`` for bad input (printed as one line, exit 2). Import heavy dependencies inside the
    handler, not at module level: every ``aopcore`` invocation builds the parser.
    """


# kind -> hook name; the kinds are also the config section names.
HOOKS = {
    "trainer": "register_trainers",
    "reward": "register_reward_models",
    "curriculum": "register_curricula",
    "feedback": "register_feedback_llms",
    "judge": "register_judges",
    "embedder": "register_embedders",
}
