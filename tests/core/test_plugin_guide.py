"""docs/plugins.md's testing example runs as written against a freshly scaffolded plugin."""

from pathlib import Path

from helpers import run_cli


def test_the_plugin_guide_test_snippet_passes_against_a_fresh_scaffold(tmp_path: Path):
    """docs/plugins.md's `aopcore.testing` example runs as written against `aopcore new-plugin curriculum focus`."""
    import os
    import re
    import subprocess
    import sys

    guide = (Path(__file__).parents[2] / "docs" / "plugins.md").read_text()
    section = guide.split("## Testing with `aopcore.testing`", 1)[1]
    snippet = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    assert "def test_" in snippet
    pkg = tmp_path / "pkg"
    assert run_cli("new-plugin", "curriculum", "focus", "--dir", str(pkg)).returncode == 0
    (pkg / "tests" / "test_from_the_guide.py").write_text(snippet)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/test_from_the_guide.py"],
        cwd=pkg,
        env={**env, "PYTHONPATH": str(pkg)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 passed" in result.stdout
