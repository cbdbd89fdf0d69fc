"""Each real provider SDK against a local server speaking its wire format, with injected faults."""

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from aopcore import JudgeItem, Question, RuntimeFailure
from aopcore.engine.judging import judge_pair
from aopcore.ledger import StageMeter

from helpers.fake_providers import FakeProviderServer

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
    settings = dict(
        model="test-model",
        api_key_env="AOPCORE_TEST_KEY",
        base_url=server.base_url(provider),
        timeout=1.0,
        backoff_base=0.05,
        max_retries=3,
        cache_path=str(tmp_path / "cache.sqlite"),
    )
    opts = OPTS[provider][0](**{**settings, **options})
    cls = getattr(
        llm,
        {"openai": "OpenAI", "anthropic": "Anthropic", "gemini": "Gemini"}[provider] + ("Judge" if judge else "LLM"),
    )
    return cls(opts)


@pytest.mark.parametrize("provider", PROVIDERS)
def test_faults_are_retried_or_reported_and_nothing_is_lost(provider, server, tmp_path):
    llm = make(provider, server, tmp_path, price_input_per_mtok=1.0, price_output_per_mtok=2.0)
    prompts = [
        "plain 2 questions",
        "FAULT:429:2 two rate limits",
        "FAULT:500:1 one server error",
        "FAULT:hang:1 one hang",
        "FAULT:badjson:1 one broken body",
        "FAULT:empty:0 empty content",
        "FAULT:blocked:0 safety",
    ]
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
    assert set(llm.calls.failures) == {
        "empty response",
        f"blocked: {'SAFETY' if provider == 'gemini' else 'refusal' if provider == 'anthropic' else 'content_filter'}",
    }
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
    items = [
        JudgeItem("1", "q?", "GOOD answer", "meh"),
        JudgeItem("2", "q?", "meh", "GOOD"),
        JudgeItem("3", "q?", "x", "y"),
    ]
    assert [v.choice for v in judge.judge(items)] == ["A", "B", "C"]


def test_key_goes_only_to_the_server(server, tmp_path, caplog):
    llm = make("openai", server, tmp_path)
    llm.complete(["FAULT:500:1 leak check", "FAULT:empty:0 leak check 2"])
    assert any(SECRET in h for h in server.auth_headers)
    assert SECRET.encode() not in (tmp_path / "cache.sqlite").read_bytes()
    assert SECRET not in caplog.text


SCRIPT = textwrap.dedent("""
    import os, sys
    sys.path[:0] = {paths!r}  # this folder (test_providers) and the tests root (helpers)
    from test_providers import make
    from helpers.fake_providers import FakeProviderServer
    class S:  # points at the test's server
        def base_url(self, provider): return {url!r}
    llm = make("openai", S(), __import__("pathlib").Path({tmp!r}), concurrency=4)
    llm.complete([f"resume {{i}} 1 questions" for i in range(6)] + ["FAULT:hang:1 never finishes"])
""")


def test_no_paid_call_repeats_after_a_crash(tmp_path):
    with FakeProviderServer(hang_s=60) as server:
        script = SCRIPT.format(
            paths=[str(Path(__file__).parent), str(Path(__file__).resolve().parents[1])],
            url=server.base_url("openai"),
            tmp=str(tmp_path),
        )
        proc = subprocess.Popen([sys.executable, "-c", script], env={**os.environ, "AOPCORE_TEST_KEY": SECRET})
        deadline = time.time() + 60
        while (
            sum(v for k, v in server.attempts.items() if k.startswith("resume")) < 6
            or server.attempts["FAULT:hang:1 never finishes"] < 1
        ):
            assert time.time() < deadline and proc.poll() is None
            time.sleep(0.05)
        time.sleep(0.5)  # the six finished responses are committed to the cache as they arrive
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        server.hang_s = 0
        rerun = subprocess.run(
            [sys.executable, "-c", script], env={**os.environ, "AOPCORE_TEST_KEY": SECRET}, timeout=120
        )
        assert rerun.returncode == 0
        assert all(server.attempts[f"resume {i} 1 questions"] == 1 for i in range(6))
        assert server.attempts["FAULT:hang:1 never finishes"] == 2


@pytest.mark.parametrize("provider", PROVIDERS)
def test_identical_prompts_in_one_batch_are_sent_once(provider, server, tmp_path):
    llm = make(provider, server, tmp_path)
    with StageMeter("batch") as meter:
        out = llm.complete(["twin 2 questions", "other 2 questions", "twin 2 questions", "twin 2 questions"])
    assert server.attempts["twin 2 questions"] == 1 and server.attempts["other 2 questions"] == 1
    assert out[0] == out[2] == out[3] and out[0].startswith("1. How do I handle situation")
    assert meter.counts["coalesced_calls"] == 2 and meter.counts["feedback_calls"] == 2


def test_without_a_cache_identical_prompts_stay_independent_samples(server, tmp_path):
    llm = make("openai", server, tmp_path, cache=False)
    llm.complete(["sample me 2 questions"] * 3)
    assert server.attempts["sample me 2 questions"] == 3


def _in_two_threads(first, second, server: FakeProviderServer, prompt: str):
    """Start ``first``; once its request is at the server, start ``second``; return both results."""
    results: dict[str, object] = {}

    def run(name, fn):
        try:
            results[name] = fn()
        except Exception as exc:  # noqa: BLE001 - the test inspects it
            results[name] = exc

    t1 = threading.Thread(target=run, args=("first", first))
    t1.start()
    deadline = time.time() + 10
    while server.attempts[prompt] < 1:
        assert time.time() < deadline
        time.sleep(0.01)
    t2 = threading.Thread(target=run, args=("second", second))
    t2.start()
    t1.join(30)
    t2.join(30)
    return results["first"], results["second"]


@pytest.mark.parametrize("provider", PROVIDERS)
def test_a_request_already_in_flight_is_waited_for_not_sent_again(provider, tmp_path):
    """Two components (e.g. two arms' judges) ask the same thing at the same moment: one HTTP request."""
    with FakeProviderServer(latency=0.6) as slow:
        a = make(provider, slow, tmp_path)
        b = make(provider, slow, tmp_path)
        with StageMeter("both") as meter:
            first, second = _in_two_threads(
                lambda: a.complete(["shared 2 questions"]),
                lambda: b.complete(["shared 2 questions", "own 1 questions"]),
                slow,
                "shared 2 questions",
            )
    assert slow.attempts["shared 2 questions"] == 1 and slow.attempts["own 1 questions"] == 1
    assert first[0] == second[0] and first[0].startswith("1. How do I handle situation")
    assert meter.counts["coalesced_calls"] == 1 and meter.counts["feedback_calls"] == 2


def test_a_waiter_shares_a_failure_and_resends_when_the_sender_gave_up(tmp_path):
    with FakeProviderServer(latency=0.4) as slow:
        # the sender exhausts its retries: the waiter gets the same empty answer, no second paid attempt
        a, b = make("openai", slow, tmp_path, max_retries=0), make("openai", slow, tmp_path, max_retries=0)
        first, second = _in_two_threads(
            lambda: a.complete(["FAULT:500:9 down"]), lambda: b.complete(["FAULT:500:9 down"]), slow, "FAULT:500:9 down"
        )
        assert first == second == [""] and slow.attempts["FAULT:500:9 down"] == 1
        # the sender raises (a fatal 401 on its attempt): the waiter is not left hanging, it sends the request itself
        c, d = make("openai", slow, tmp_path), make("openai", slow, tmp_path)
        first, second = _in_two_threads(
            lambda: c.complete(["FAULT:401:1 once"]), lambda: d.complete(["FAULT:401:1 once"]), slow, "FAULT:401:1 once"
        )
        assert isinstance(first, RuntimeFailure) and "401" in str(first)
        assert second[0].startswith("1. How do I handle situation") and slow.attempts["FAULT:401:1 once"] == 2


@pytest.mark.parametrize("provider", PROVIDERS)
def test_identical_answers_are_ties_without_a_judge_call(provider, server, tmp_path):
    """aop vs sop at iteration 1: the same policy, the same answers; only differing answers reach the provider."""
    judge = make(provider, server, tmp_path, judge=True)
    qs = [Question(f"q{i}", f"question {i}?", "askbaking") for i in range(4)]
    a = ["same answer", "GOOD answer", "  same again ", "meh"]
    b = ["same answer", "meh", "same again", "GOOD one"]
    with StageMeter("judge") as meter:
        verdicts = judge_pair(judge, qs, a, b, both_orders=True, seed=0)
    assert [v.choice for v in verdicts] == ["C", "A", "C", "B"]
    assert [v.identical for v in verdicts] == [True, False, True, False]
    assert sum(server.attempts.values()) == 4  # 2 differing items x 2 orders
    assert meter.counts["judge_calls"] == 4 and meter.counts["judge_calls_saved"] == 4
