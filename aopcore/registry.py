"""Discovers plugins through the ``aopcore`` entry-point group and indexes what they register.

Built-ins come in through exactly this path. Each entry point is loaded and each
hook implementation called on its own, so one broken plugin is reported by name
and the others still work.

One plugin manager serves the whole process (:func:`load_plugins`, idempotent): the entry points are
read and imported once, however many commands, validations and reports ask. Every question
(:func:`load_registry`, :func:`add_plugin_commands`, :func:`call_register_hook`) is answered from a
view of it that holds exactly the plugins that call names, so a config's local plugin never leaks into
another config's registry. :func:`reset_plugins` forgets the manager (tests that install a distribution
in-process).
"""

from __future__ import annotations

import difflib
import functools
import importlib
import importlib.metadata as md
import logging
import sys
import threading
import types
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import pluggy
from pydantic import BaseModel, ConfigDict

from aopcore import hookspecs
from aopcore.errors import InputError

ENTRY_POINT_GROUP = "aopcore"
CORE_PLUGIN = "aopcore.data.builtin"  # registers builtin:NAME; entry point "core", and always loaded


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
    implementations: dict[str, dict[str, Implementation]] = field(
        default_factory=lambda: {k: {} for k in hookspecs.HOOKS}
    )
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


@functools.lru_cache(maxsize=1)
def _packages_distributions() -> Mapping[str, list[str]]:
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


_Source = tuple[str, str, str, Any]  # (plugin name, distribution, version, module)


@dataclass
class _Loaded:
    """The process's plugin manager and what loading the entry points found (see :func:`load_plugins`)."""

    pm: pluggy.PluginManager
    entry_points: dict[str, tuple[str, str]]  # plugin name -> (distribution, version), in load order
    problems: list[PluginProblem]


_loaded: _Loaded | None = None
_lock = threading.RLock()  # a plugin that asks the registry while it is imported must not deadlock


def _new_manager() -> pluggy.PluginManager:
    pm = pluggy.PluginManager(ENTRY_POINT_GROUP)
    pm.add_hookspecs(hookspecs)
    return pm


def load_plugins() -> pluggy.PluginManager:
    """The process's one plugin manager, with every installed entry point (and the core) registered.

    Idempotent: the entry points are read and imported on the first call only; later calls return the same
    manager. Plugins that a config names (``plugins = [...]``) join it through :func:`load_registry`'s
    ``extra_modules`` and are seen only by the calls that name them. :func:`reset_plugins` starts over.
    """
    global _loaded
    with _lock:
        if _loaded is None:
            _loaded = _load_entry_points()
        return _loaded.pm


def reset_plugins() -> None:
    """Forget the plugin manager: the next call reads the entry points again.

    For tests and tools that install or remove a distribution inside a running process, or that must drop
    the local plugin modules earlier calls registered. Everyday code never needs it.
    """
    global _loaded
    with _lock:
        _loaded = None


def _load_entry_points() -> _Loaded:
    pm = _new_manager()
    problems: list[PluginProblem] = []
    sources: list[_Source] = []
    for ep in sorted(md.entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
        dist = ep.dist.name if ep.dist else "(unknown)"
        version = ep.dist.version if ep.dist else ""
        try:
            sources.append((ep.name, dist, version, ep.load()))
        except Exception as exc:  # a broken plugin must not break the others
            problems.append(PluginProblem(ep.name, dist, f"{type(exc).__name__}: {exc}"))
    loaded: dict[str, tuple[str, str]] = {}
    for plugin_name, dist, version, module in sources:
        if pm.is_registered(module) or pm.has_plugin(plugin_name):
            continue
        try:
            pm.register(module, name=plugin_name)
        except Exception as exc:
            problems.append(PluginProblem(plugin_name, dist, f"{type(exc).__name__}: {exc}"))
            continue
        loaded[plugin_name] = (dist, version)
    core = importlib.import_module(CORE_PLUGIN)
    if not pm.is_registered(core):  # an install that predates the core's entry point (or names its old module)
        pm.register(core, name="core" if not pm.has_plugin("core") else CORE_PLUGIN)
    return _Loaded(pm, loaded, problems)


@dataclass(frozen=True)
class _View:
    """The plugins one call asked for, in the order the old fresh-manager-per-call code registered them."""

    pm: pluggy.PluginManager
    order: dict[str, str]  # name in the manager -> name shown (the module path a config gave)
    origin: dict[str, tuple[str, str]]  # name shown -> (distribution, version)

    def hookimpls(self, hook_name: str) -> list[tuple[str, Any]]:
        """``(name shown, hook function)`` of every selected plugin implementing ``hook_name``, in order."""
        position = {name: i for i, name in enumerate(self.order)}
        impls = [i for i in getattr(self.pm.hook, hook_name).get_hookimpls() if i.plugin_name in position]
        impls.sort(key=lambda i: position[i.plugin_name])
        return [(self.order[i.plugin_name], i.function) for i in impls]


def _register_extra(
    pm: pluggy.PluginManager,
    module: types.ModuleType,
    name: str,
    dist: str,
    protected: set[str],
    problems: list[PluginProblem],
) -> str | None:
    """Register a config-named module with the shared manager; returns its name there, None if it failed."""
    if pm.is_registered(module):
        return pm.get_name(module)
    if pm.has_plugin(name):
        if name in protected:  # an entry point of that name wins, as it always has
            return None
        pm.unregister(name=name)  # a stale module of that name (re-imported from another folder)
    try:
        pm.register(module, name=name)
    except Exception as exc:
        problems.append(PluginProblem(name, dist, f"{type(exc).__name__}: {exc}"))
        return None
    return name


def _select(
    extra_modules: Iterable[str | types.ModuleType], entry_points: bool, problems: list[PluginProblem]
) -> _View:
    """The cached manager, plus the extra modules registered into it; the view keeps only what this call names."""
    pm = load_plugins()
    assert _loaded is not None
    order: dict[str, str] = {}
    origin: dict[str, tuple[str, str]] = {}
    if entry_points:
        problems.extend(_loaded.problems)
        for name, dist_version in _loaded.entry_points.items():
            order[name] = name
            origin[name] = dist_version
    for mod in extra_modules:
        shown = mod if isinstance(mod, str) else mod.__name__
        try:
            module = importlib.import_module(mod) if isinstance(mod, str) else mod
        except Exception as exc:
            problems.append(PluginProblem(shown, "(config)", f"{type(exc).__name__}: {exc}"))
            continue
        dist, version = _module_dist(module)
        registered = _register_extra(pm, module, shown, dist, set(_loaded.entry_points), problems)
        if registered is not None and registered not in order and shown not in origin:
            order[registered] = shown
            origin[shown] = (dist, version)
    core = pm.get_name(importlib.import_module(CORE_PLUGIN))
    assert core is not None  # load_plugins registers the core's sources, entry points or not
    if core not in order:  # entry points off: the core's sources are always there
        order[core] = "core"
        origin["core"] = _module_dist(sys.modules[CORE_PLUGIN])
    return _View(pm, order, origin)


def load_registry(extra_modules: Iterable[str | types.ModuleType] = (), *, entry_points: bool = True) -> Registry:
    """Index every plugin: installed entry points plus modules named in a config or passed in.

    The plugin manager is the process's one (:func:`load_plugins`); the registry is fresh on every call, so a
    caller may change it (tests do) without touching anyone else's.
    """
    registry = Registry()
    view = _select(extra_modules, entry_points, registry.problems)

    for kind, hook_name in hookspecs.HOOKS.items():
        for plugin_name, function in view.hookimpls(hook_name):
            dist, version = view.origin.get(plugin_name, ("(unknown)", ""))

            def register(
                name: str,
                factory: Any,
                *,
                options: Any = None,
                description: str | None = None,
                _kind: str = kind,
                _plugin: str = plugin_name,
                _dist: str = dist,
                _ver: str = version,
            ) -> None:
                model = options or getattr(factory, "Options", None) or NoOptions
                if not (isinstance(model, type) and issubclass(model, BaseModel)):
                    raise TypeError(f"options for {_kind} {name!r} must be a pydantic model class")
                existing = registry.implementations[_kind].get(name)
                if existing is not None:
                    registry.problems.append(
                        PluginProblem(
                            _plugin, _dist, f"{_kind} {name!r} already registered by {existing.plugin}; ignored"
                        )
                    )
                    return
                doc = description or (factory.__doc__ or "").strip().splitlines()[0:1]
                registry.implementations[_kind][name] = Implementation(
                    _kind, name, factory, model, _plugin, _dist, _ver, doc if isinstance(doc, str) else "".join(doc)
                )

            try:
                function(register=register)
            except Exception as exc:
                registry.problems.append(
                    PluginProblem(plugin_name, dist, f"{hook_name} failed: {type(exc).__name__}: {exc}")
                )
    return registry


def add_plugin_commands(
    subparsers: Any, extra_modules: Iterable[str | types.ModuleType] = (), *, entry_points: bool = True
) -> list[PluginProblem]:
    """Let every plugin add its subcommands to the CLI; a plugin whose hook fails is reported, the rest still load."""
    problems: list[PluginProblem] = []
    view = _select(extra_modules, entry_points, problems)
    for plugin_name, function in view.hookimpls("register_commands"):
        try:
            function(subparsers=subparsers)
        except Exception as exc:
            dist = view.origin.get(plugin_name, ("(unknown)", ""))[0]
            problems.append(PluginProblem(plugin_name, dist, f"register_commands failed: {type(exc).__name__}: {exc}"))
    return problems


def call_register_hook(hook_name: str, register: Callable[..., None], extra_modules: Iterable[str] = ()) -> None:
    """Call every plugin's ``hook_name(register=register)`` (installed plugins plus ``extra_modules``).

    For the hooks whose registrations are not components (writers, environment notes, model aliases). A hook
    that fails is logged and skipped: a broken plugin must not cost what the others registered. A config's
    local plugin may not be importable where a report is rebuilt, so its load failure is logged at debug level.
    """
    log = logging.getLogger("aopcore")
    problems: list[PluginProblem] = []
    view = _select(list(extra_modules), True, problems)
    for plugin_name, function in view.hookimpls(hook_name):
        try:
            function(register=register)
        except Exception as exc:  # noqa: BLE001
            log.warning("plugin %s: %s failed: %s: %s", plugin_name, hook_name, type(exc).__name__, exc)
    for p in problems:
        log.log(
            logging.DEBUG if p.distribution == "(config)" else logging.WARNING,
            "plugin %s (%s) failed to load: %s",
            p.plugin,
            p.distribution,
            p.error,
        )


def registered_pairs(hook_name: str, extra_modules: Iterable[str] = ()) -> list[tuple[str, Any]]:
    """Every ``(name, fn)`` plugins registered through a ``register(name, fn)`` hook (``register_report_writers``,
    ``register_aggregate_writers``, ``register_environment_notes``); see :func:`call_register_hook`."""
    pairs: list[tuple[str, Any]] = []
    call_register_hook(hook_name, lambda name, fn: pairs.append((name, fn)), extra_modules)
    return pairs


def ensure_path(path: str) -> None:
    """Make a config's plugin search path importable (for local, unpackaged plugins)."""
    if path not in sys.path:
        sys.path.insert(0, path)
