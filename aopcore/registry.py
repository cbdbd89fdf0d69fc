"""Discovers plugins through the ``aopcore`` entry-point group and indexes what they register.

Built-ins come in through exactly this path. Each entry point is loaded and each
hook implementation called on its own, so one broken plugin is reported by name
and the others still work.
"""
from __future__ import annotations

import difflib
import functools
import importlib
import importlib.metadata as md
import sys
import types
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import pluggy
from pydantic import BaseModel, ConfigDict

from aopcore import hookspecs
from aopcore.errors import InputError

ENTRY_POINT_GROUP = "aopcore"
CORE_PLUGIN = "aopcore.data"  # registers builtin:NAME; entry point "core", and always loaded


class NoOptions(BaseModel):
    """Options model for implementations that take none."""

    model_config = ConfigDict(extra="forbid")


@dataclass(frozen=True)
class Implementation:
    kind: str
    name: str
    factory: Any
    options: type[BaseModel]
    plugin: str
    distribution: str
    version: str
    description: str = ""

    def build(self, options: BaseModel | dict[str, Any] | None = None) -> Any:
        if not isinstance(options, BaseModel):
            options = self.options.model_validate(options or {})
        return self.factory(options)


class LazyFactory:
    """A factory that imports its class only when a component is built.

    Lets a plugin register heavy implementations (torch, provider SDKs) while
    ``aopcore plugins`` and ``aopcore validate`` stay fast and work without them.
    """

    def __init__(self, target: str, *, doc: str = "", requires: tuple[str, ...] = ()) -> None:
        self.target = target
        self.__doc__ = doc
        self.requires = requires

    def load(self) -> Any:
        module, _, attr = self.target.partition(":")
        return getattr(importlib.import_module(module), attr)

    def __call__(self, options: BaseModel) -> Any:
        return self.load()(options)


@dataclass(frozen=True)
class PluginProblem:
    plugin: str
    distribution: str
    error: str


@dataclass
class Registry:
    implementations: dict[str, dict[str, Implementation]] = field(default_factory=lambda: {k: {} for k in hookspecs.HOOKS})
    problems: list[PluginProblem] = field(default_factory=list)

    def get(self, kind: str, name: str) -> Implementation:
        try:
            return self.implementations[kind][name]
        except KeyError:
            raise InputError(self.unknown_message(kind, name)) from None

    def names(self, kind: str) -> list[str]:
        return sorted(self.implementations[kind])

    def unknown_message(self, kind: str, name: str) -> str:
        close = difflib.get_close_matches(name, self.names(kind), n=3, cutoff=0.5)
        hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        known = ", ".join(self.names(kind)) or "none installed"
        broken = [p.plugin for p in self.problems]
        extra = f" (plugins that failed to load: {', '.join(broken)})" if broken else ""
        return f"unknown {kind} plugin {name!r}{hint} (installed: {known}){extra}"

    def all(self) -> Iterable[Implementation]:
        for kind in hookspecs.HOOKS:
            yield from sorted(self.implementations[kind].values(), key=lambda i: i.name)


def _new_manager() -> pluggy.PluginManager:
    pm = pluggy.PluginManager(ENTRY_POINT_GROUP)
    pm.add_hookspecs(hookspecs)
    return pm


@functools.lru_cache(maxsize=1)
def _packages_distributions() -> dict[str, list[str]]:
    return md.packages_distributions()  # scans every installed file list: about a second, so once per process


def _module_dist(module: types.ModuleType) -> tuple[str, str]:
    top = module.__name__.split(".")[0]
    if top == "aopcore":
        try:
            return "aopcore", md.version("aopcore")
        except md.PackageNotFoundError:
            return "(local)", ""
    dists = _packages_distributions().get(top, [])
    if dists:
        name = dists[0]
        try:
            return name, md.version(name)
        except md.PackageNotFoundError:
            pass
    return "(local)", ""


def _plugin_manager(extra_modules: Iterable[str | types.ModuleType], entry_points: bool,
                    problems: list[PluginProblem]) -> tuple[pluggy.PluginManager, dict[str, tuple[str, str]]]:
    """Register every plugin module with a fresh manager; returns it and each plugin's (distribution, version)."""
    pm = _new_manager()
    sources: list[tuple[str, str, str, Any]] = []  # (plugin name, dist, version, module)

    if entry_points:
        for ep in sorted(md.entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
            dist = ep.dist.name if ep.dist else "(unknown)"
            version = ep.dist.version if ep.dist else ""
            try:
                sources.append((ep.name, dist, version, ep.load()))
            except Exception as exc:  # a broken plugin must not break the others
                problems.append(PluginProblem(ep.name, dist, f"{type(exc).__name__}: {exc}"))
    for mod in extra_modules:
        name = mod if isinstance(mod, str) else mod.__name__
        try:
            module = importlib.import_module(mod) if isinstance(mod, str) else mod
        except Exception as exc:
            problems.append(PluginProblem(name, "(config)", f"{type(exc).__name__}: {exc}"))
            continue
        dist, version = _module_dist(module)
        sources.append((name, dist, version, module))

    if not any(module.__name__ == CORE_PLUGIN for *_, module in sources):  # entry points off, or an install that predates it
        core = importlib.import_module(CORE_PLUGIN)
        sources.append(("core", *_module_dist(core), core))

    origin: dict[str, tuple[str, str]] = {}
    for plugin_name, dist, version, module in sources:
        if pm.is_registered(module) or pm.has_plugin(plugin_name):
            continue
        try:
            pm.register(module, name=plugin_name)
        except Exception as exc:
            problems.append(PluginProblem(plugin_name, dist, f"{type(exc).__name__}: {exc}"))
            continue
        origin[plugin_name] = (dist, version)
    return pm, origin


def load_registry(extra_modules: Iterable[str | types.ModuleType] = (), *, entry_points: bool = True) -> Registry:
    """Load every plugin: installed entry points plus modules named in a config or passed in."""
    registry = Registry()
    pm, origin = _plugin_manager(extra_modules, entry_points, registry.problems)

    for kind, hook_name in hookspecs.HOOKS.items():
        for impl in getattr(pm.hook, hook_name).get_hookimpls():
            dist, version = origin.get(impl.plugin_name, ("(unknown)", ""))

            def register(name: str, factory: Any, *, options: Any = None, description: str | None = None,
                         _kind: str = kind, _plugin: str = impl.plugin_name, _dist: str = dist, _ver: str = version) -> None:
                model = options or getattr(factory, "Options", None) or NoOptions
                if not (isinstance(model, type) and issubclass(model, BaseModel)):
                    raise TypeError(f"options for {_kind} {name!r} must be a pydantic model class")
                existing = registry.implementations[_kind].get(name)
                if existing is not None:
                    registry.problems.append(PluginProblem(_plugin, _dist, f"{_kind} {name!r} already registered by {existing.plugin}; ignored"))
                    return
                doc = description or (factory.__doc__ or "").strip().splitlines()[0:1]
                registry.implementations[_kind][name] = Implementation(
                    _kind, name, factory, model, _plugin, _dist, _ver, doc if isinstance(doc, str) else "".join(doc)
                )

            try:
                impl.function(register=register)
            except Exception as exc:
                registry.problems.append(PluginProblem(impl.plugin_name, dist, f"{hook_name} failed: {type(exc).__name__}: {exc}"))
    return registry


def add_plugin_commands(subparsers: Any, extra_modules: Iterable[str | types.ModuleType] = (), *,
                        entry_points: bool = True) -> list[PluginProblem]:
    """Let every plugin add its subcommands to the CLI; a plugin whose hook fails is reported, the rest still load."""
    problems: list[PluginProblem] = []
    pm, origin = _plugin_manager(extra_modules, entry_points, problems)
    for impl in pm.hook.register_commands.get_hookimpls():
        try:
            impl.function(subparsers=subparsers)
        except Exception as exc:
            dist = origin.get(impl.plugin_name, ("(unknown)", ""))[0]
            problems.append(PluginProblem(impl.plugin_name, dist, f"register_commands failed: {type(exc).__name__}: {exc}"))
    return problems


def registered_pairs(hook_name: str, extra_modules: Iterable[str] = ()) -> list[tuple[str, Any]]:
    """Every ``(name, fn)`` plugins registered through a ``register(name, fn)`` hook (``register_report_writers``,
    ``register_aggregate_writers``, ``register_environment_notes``). A hook that fails is logged and skipped: a broken plugin must not cost the
    formats the core writes itself. A config's local plugin may not be importable where a report is rebuilt,
    so its load failure is logged at debug level only."""
    import logging

    log = logging.getLogger("aopcore")
    problems: list[PluginProblem] = []
    pm, _ = _plugin_manager(list(extra_modules), True, problems)
    writers: list[tuple[str, Any]] = []
    for impl in getattr(pm.hook, hook_name).get_hookimpls():
        try:
            impl.function(register=lambda name, write: writers.append((name, write)))
        except Exception as exc:  # noqa: BLE001
            log.warning("plugin %s: %s failed: %s: %s", impl.plugin_name, hook_name, type(exc).__name__, exc)
    for p in problems:
        log.log(logging.DEBUG if p.distribution == "(config)" else logging.WARNING, "plugin %s (%s) failed to load: %s",
                p.plugin, p.distribution, p.error)
    return writers


def ensure_path(path: str) -> None:
    """Make a config's plugin search path importable (for local, unpackaged plugins)."""
    if path not in sys.path:
        sys.path.insert(0, path)
