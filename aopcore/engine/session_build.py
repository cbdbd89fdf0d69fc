"""How a :class:`~aopcore.CurriculumSession` is assembled: from a config file, from plugin options, and the
policy ``generate`` function it is given (only the keywords that function takes are passed)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from aopcore import contracts
from aopcore.errors import InputError
from aopcore.records import EvalRecord, Question
from aopcore.storage.fingerprint import describe


def session_arguments(
    path: Path | str, *, arm: str | None, state_dir: Path | str | None, overrides: Sequence[str], roles: Sequence[str]
) -> tuple[Any, dict[str, Any]]:
    """(the curriculum, the other keyword arguments of CurriculumSession) from an ``aopcore run`` config."""
    from aopcore.engine.build import LazyComponent, resolve
    from aopcore.engine.config import SessionConfig

    file = Path(path)
    plan = resolve(file, list(overrides), model=SessionConfig)
    exp = plan.config.experiment
    arms = list(plan.arms)
    if arm is None:
        if len(arms) != 1:
            raise InputError(
                f"{file}: arms: the config has {len(arms)} arms ({', '.join(arms)}); "
                "pass arm=NAME to choose the session's curriculum"
            )
        arm = arms[0]
    if arm not in plan.arms:
        raise InputError(f"{file}: arms: no arm {arm!r} (arms: {', '.join(arms)})")
    if exp.seeds:
        raise InputError(f"{file}: experiment.seeds: a curriculum session runs one seed; set seed = N")
    impl, opts = plan.arms[arm]
    snapshot = plan.snapshot()
    described = {"curriculum": snapshot["arms"][arm]}
    components: dict[str, Any] = {}
    for role in roles:
        if role in plan.components:
            components[role] = LazyComponent(*plan.components[role])
            described[role] = snapshot[role]
    out = Path(exp.output_dir) if Path(exp.output_dir).is_absolute() else plan.base_dir / exp.output_dir
    keep = {
        "source": "session",
        "config": str(file),
        "arm": arm,
        "data": snapshot.get("data"),
        "experiment": {
            k: snapshot["experiment"].get(k) for k in ("name", "seed", "iterations", "records_per_iteration", "passes")
        },
    }
    return impl.build(opts), dict(
        heldout=plan.questions("heldout"),
        state_dir=state_dir or out / exp.name,
        budget=exp.records_per_iteration,
        categories=plan.config.data.categories,
        seed=exp.seed,
        rounds=exp.iterations,
        name=arm,
        base_dir=plan.base_dir,
        passes=exp.passes,
        _registry=plan.registry,
        _described=described,
        _snapshot=keep,
        **components,
    )


def validated_options(impl: Any, options: Any, where: str, base_dir: Path, registry: Any) -> BaseModel:
    if isinstance(options, BaseModel):
        if not isinstance(options, impl.options):
            raise InputError(
                f"{where}: {type(options).__name__} is not {impl.name}'s options ({impl.options.__name__})"
            )
        return options
    from aopcore.options import validation_context

    try:
        return impl.options.model_validate(
            options or {}, context=validation_context(base_dir, set(registry.names("data")))
        )
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            key = ".".join(str(p) for p in err["loc"] if not (isinstance(p, str) and p.startswith("~")))
            msg = "unknown key" if err["type"] == "extra_forbidden" else err["msg"]
            lines.append(f"{where}{'.' + key if key else ''}: {msg}")
        raise InputError(*lines) from None


def eval_record(value: Any, k: int) -> EvalRecord:
    if isinstance(value, EvalRecord):
        return value
    if isinstance(value, dict):
        try:
            return EvalRecord(**value)
        except TypeError as exc:
            raise InputError(f"session.next_prompts: evaluation[{k}]: {exc}") from None
    raise InputError(f"session.next_prompts: evaluation[{k}] is a {type(value).__name__}, not an aopcore.EvalRecord")


def fn_name(fn: Any) -> str:
    return getattr(fn, "__qualname__", type(fn).__name__)


def call_generate(
    generate: Callable[..., Sequence[str]], texts: list[str], *, seed: int, sample: bool
) -> Sequence[str]:
    """``generate(texts)``, passing ``seed`` and ``sample`` only to a function that takes them."""
    kwargs = {k: v for k, v in (("seed", seed), ("sample", sample)) if contracts.accepts_keyword(generate, k)}
    return generate(texts, **kwargs)


def policy_generate(generate: Callable[..., Sequence[str]], default_seed: int) -> Callable[..., list[str]]:
    def bound(texts: Sequence[str], sample: bool = False, seed: int = default_seed) -> list[str]:
        return list(call_generate(generate, list(texts), seed=seed, sample=sample))

    return bound


def heldout_questions(
    heldout: Sequence[Question] | str | Path | dict[str, Any], base_dir: Path, registry: Callable[[], Any]
) -> list[Question]:
    """The session's held-out questions: given, or read from a data spec or a column mapping
    ``{"source": ..., "text": "COLUMN", ...}`` (``registry()`` is asked only then)."""
    if isinstance(heldout, (str, Path, dict)):
        from aopcore.data.sources import in_python_terms, load_source

        try:
            questions = load_source(
                heldout if isinstance(heldout, dict) else str(heldout), base_dir, registry=registry()
            )
        except InputError as exc:
            raise InputError(*[f"session.heldout: {in_python_terms(p)}" for p in exc.problems]) from None
    else:
        questions = list(heldout or [])
    bad = [q for q in questions if not isinstance(q, Question)]
    if bad:
        raise InputError(f"session.heldout: {type(bad[0]).__name__} is not an aopcore.Question")
    if not questions:
        raise InputError("session.heldout: no held-out questions")
    return questions


def session_component(
    role: str,
    value: Any,
    options: Any,
    *,
    lazy: bool,
    described: dict[str, Any],
    base_dir: Path,
    registry: Callable[[], Any],
) -> tuple[Any, Any]:
    """(the component, its description for the fingerprint) from an object, a callable or a plugin name
    (``registry()`` is asked only for a name; ``lazy``: built when first used)."""
    if role in described:  # from_config: built already, described by its configuration
        return value, described[role]
    if value is None:
        return None, None
    if not isinstance(value, str):
        obj = contracts.adapt(role, value)
        return obj, describe(obj)
    plugins = registry()
    impl = plugins.implementations[role].get(value)
    if impl is None:
        raise InputError(f"session.{role}: {plugins.unknown_message(role, value)}")
    model = validated_options(
        impl, options, f"session.{'options' if role == 'curriculum' else role}", base_dir, plugins
    )
    key = "curriculum" if role == "curriculum" else "plugin"
    description = {key: impl.name, **model.model_dump(mode="json")}
    if lazy:
        from aopcore.engine.build import LazyComponent

        return LazyComponent(impl, model), description
    return impl.build(model), description


def bind_lazy(built: dict[str, Any]) -> None:
    """Components that use others (e.g. a judge on a reward model) get them when built: each lazily built plugin
    among ``built`` is bound to all of them."""
    for obj in built.values():
        if obj is not None and callable(getattr(type(obj), "declared", None)):  # a lazily built plugin
            obj.bind(built)
