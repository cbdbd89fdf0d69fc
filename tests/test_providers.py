"""Each real provider SDK against a local server speaking its wire format, with injected faults."""
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from fake_providers import FakeProviderServer

from aopcore import JudgeItem, RuntimeFailure
from aopcore.ledger import StageMeter

SECRET = "sk-test-SECRET-value-1234567890"
PROVIDERS = ["openai", "anthropic", "gemini"]


@pytest.fixture
def server():
    with FakeProviderServer(hang_s=2.5) as s:
        yield s


def make(provider: str, server: FakeProviderServer, tmp_path: Path, judge: bool = False, **options):
    from aopcore_providers import llm
    from aopcore_providers.plugin import PROVIDERS as OPTS

    os.environ["AOPCORE_TEST_KEY"] = SECRET
    settings = dict(model="test-model", api_key_env="AOPCORE_TEST_KEY", base_url=server.base_url(provider), timeout=1.0,
                    backoff_base=0.05, max_retries=3, cache_path=str(tmp_path / "cache.sqlite"))
    opts = OPTS[provider][0](**{**settings, **options})
    cls = getattr(llm, {"openai": "OpenAI", "anthropic": "Anthropic", "gemini": "Gemini"}[provider] + ("Judge" if judge else "LLM"))
    return cls(opts)


@pytest.mark.parametrize("provider", PROVIDERS)
def test_faults_are_retried_or_reported_and_nothing_is_lost(provider, server, tmp_path):
    llm = make(provider, server, tmp_path, price_input_per_mtok=1.0, price_output_per_mtok=2.0)
    prompts = ["plain 2 questions", "FAULT:429:2 two rate limits", "FAULT:500:1 one server error", "FAULT:hang:1 one hang",
               "FAULT:badjson:1 one broken body", "FAULT:empty:0 empty content", "FAULT:blocked:0 safety"]
    start = time.monotonic()
    with StageMeter("test") as meter:
        out = llm.complete(prompts)
    elapsed = time.monotonic() - start
    assert len(out) == len(prompts)
    for text in out[:5]:
        assert text.startswith("1. How do I handle situation")
    assert out[5] == "" and out[6] == ""
    assert server.attempts["FAULT:429:2 two rate limits"] == 3
    assert server.attempts["FAULT:500:1 one server error"] == 2
    assert server.attempts["FAULT:hang:1 one hang"] == 2
    assert server.attempts["FAULT:badjson:1 one broken body"] == 2
    assert elapsed >= 0.4  # Retry-After: 0.2 honoured twice
    assert set(llm.calls.failures) == {"empty response", f"blocked: {'SAFETY' if provider == 'gemini' else 'refusal' if provider == 'anthropic' else 'content_filter'}"}
    assert meter.counts["feedback_calls"] == 7 and meter.counts["retries"] == 5
    assert meter.counts["cost_usd"] == pytest.approx(7 * (11 * 1.0 + 7 * 2.0) / 1e6, rel=0.3)
    # everything that succeeded is cached: a second run pays for nothing
    before = sum(server.attempts.values())
    with StageMeter("again") as meter2:
        assert llm.complete(prompts) == out
    assert sum(server.attempts.values()) == before and meter2.counts["cached_calls"] == 7


@pytest.mark.parametrize("provider", PROVIDERS)
def test_auth_failure_fails_fast_without_leaking_the_key(provider, server, tmp_path):
    llm = make(provider, server, tmp_path)
    start = time.monotonic()
    with pytest.raises(RuntimeFailure) as err:
        llm.complete(["FAULT:401:9 bad key"])
    assert time.monotonic() - start < 5
    assert "401" in str(err.value) and "AOPCORE_TEST_KEY" in str(err.value) and SECRET not in str(err.value)
    assert server.attempts["FAULT:401:9 bad key"] == 1


@pytest.mark.parametrize("provider", PROVIDERS)
def test_persistent_failure_is_reported_not_raised(provider, server, tmp_path):
    llm = make(provider, server, tmp_path, max_retries=1)
    out = llm.complete(["FAULT:500:99 always down", "fine 1 questions"])
    assert out[0] == "" and out[1].startswith("1.")
    assert any("HTTP 500" in k for k in llm.calls.failures)
    assert server.attempts["FAULT:500:99 always down"] == 2


@pytest.mark.parametrize("provider", PROVIDERS)
def test_concurrency_reaches_the_configured_limit(provider, tmp_path):
    with FakeProviderServer(latency=0.3) as slow:
        llm = make(provider, slow, tmp_path, concurrency=5, cache=False)
        llm.complete([f"q{i} 1 questions" for i in range(15)])
        assert slow.max_in_flight == 5


def test_request_rate_limit_spaces_calls(server, tmp_path):
    llm = make("openai", server, tmp_path, requests_per_minute=120, cache=False, concurrency=8)
    start = time.monotonic()
    llm.complete([f"r{i} 1 questions" for i in range(6)])
    assert time.monotonic() - start >= 2.0  # 2 per second after a one-second burst


@pytest.mark.parametrize("provider", PROVIDERS)
def test_judge_verdicts_through_provider(provider, server, tmp_path):
    judge = make(provider, server, tmp_path, judge=True)
    items = [JudgeItem("1", "q?", "GOOD answer", "meh"), JudgeItem("2", "q?", "meh", "GOOD"), JudgeItem("3", "q?", "x", "y")]
    assert [v.choice for v in judge.judge(items)] == ["A", "B", "C"]


def test_key_goes_only_to_the_server(server, tmp_path, caplog):
    llm = make("openai", server, tmp_path)
    llm.complete(["FAULT:500:1 leak check", "FAULT:empty:0 leak check 2"])
    assert any(SECRET in h for h in server.auth_headers)
    assert SECRET.encode() not in (tmp_path / "cache.sqlite").read_bytes()
    assert SECRET not in caplog.text


SCRIPT = textwrap.dedent('''
    import os, sys
    sys.path.insert(0, {tests!r})
    from test_providers import make
    from fake_providers import FakeProviderServer
    class S:  # points at the test's server
        def base_url(self, provider): return {url!r}
    llm = make("openai", S(), __import__("pathlib").Path({tmp!r}), concurrency=4)
    llm.complete([f"resume {{i}} 1 questions" for i in range(6)] + ["FAULT:hang:1 never finishes"])
''')


def test_no_paid_call_repeats_after_a_crash(tmp_path):
    with FakeProviderServer(hang_s=60) as server:
        script = SCRIPT.format(tests=str(Path(__file__).parent), url=server.base_url("openai"), tmp=str(tmp_path))
        proc = subprocess.Popen([sys.executable, "-c", script], env={**os.environ, "AOPCORE_TEST_KEY": SECRET})
        deadline = time.time() + 60
        while sum(v for k, v in server.attempts.items() if k.startswith("resume")) < 6 or server.attempts["FAULT:hang:1 never finishes"] < 1:
            assert time.time() < deadline and proc.poll() is None
            time.sleep(0.05)
        time.sleep(0.5)  # the six finished responses are committed to the cache as they arrive
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        server.hang_s = 0
        rerun = subprocess.run([sys.executable, "-c", script], env={**os.environ, "AOPCORE_TEST_KEY": SECRET}, timeout=120)
        assert rerun.returncode == 0
        assert all(server.attempts[f"resume {i} 1 questions"] == 1 for i in range(6))
        assert server.attempts["FAULT:hang:1 never finishes"] == 2
