"""The one call layer every provider goes through.

Bounded concurrency (asyncio), client-side request and token rate limits, retries
with exponential backoff and jitter on 429/5xx/timeouts/malformed replies
(honouring Retry-After), fail-fast on 400/401/403, a persistent response cache
that also coalesces identical requests in flight, and a usage/cost ledger.
Backends only translate one prompt into one request.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import email.utils
import logging
import random
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from aopcore import RuntimeFailure, record_usage
from aopcore.storage.llmcache import IN_FLIGHT, Abandoned, ResponseCache, cache_key
from aopcore_providers.options import ProviderOptions

log = logging.getLogger("aopcore")

RETRYABLE_STATUS = {408, 409, 425, 429, 500, 502, 503, 504, 529}
FATAL_STATUS = {400, 401, 403, 404, 422}


@dataclass
class Completion:
    text: str
    input_tokens: int = 0
    output_tokens: int = 0
    blocked: str | None = None  # e.g. "SAFETY": the provider refused; not retried


@dataclass
class CallError(Exception):
    """A backend's failure, classified: retry it or not, and how long the server asked us to wait."""

    message: str
    status: int | None = None
    retryable: bool = True
    retry_after: float | None = None

    def __str__(self) -> str:
        return self.message


def parse_retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        parsed = email.utils.parsedate_to_datetime(value)
        return max(0.0, parsed.timestamp() - time.time()) if parsed else None


def classify(exc: BaseException, provider: str) -> CallError:
    """Map any SDK or transport exception to a CallError (status, retryable, Retry-After)."""
    if isinstance(exc, CallError):
        return exc
    if isinstance(exc, (asyncio.TimeoutError, TimeoutError)):
        return CallError(f"{provider}: request timed out", None, True)
    status = getattr(exc, "status_code", None) or getattr(exc, "code", None)
    status = status if isinstance(status, int) else None
    response = getattr(exc, "response", None)
    headers = getattr(response, "headers", None) or {}
    retry_after = parse_retry_after(headers.get("retry-after")) if hasattr(headers, "get") else None
    name = type(exc).__name__
    if status is None:
        # connection problems, timeouts and unparseable bodies surface as SDK- or transport-specific exceptions;
        # anything else (a TypeError, say) is a bug or a bad request and must not be retried
        chain = [type(e).__name__ for e in (exc, exc.__cause__, exc.__context__) if e is not None]
        transient = (
            isinstance(exc, ValueError)
            and "json" in str(exc).lower()
            or any(t in n for n in chain for t in TRANSIENT_NAMES)
        )
        return CallError(f"{provider}: {name}: {str(exc)[:200]}", None, transient)
    if status in FATAL_STATUS:
        return CallError(f"{provider}: HTTP {status} ({name}): {str(exc)[:300]}", status, False)
    return CallError(
        f"{provider}: HTTP {status} ({name})", status, status in RETRYABLE_STATUS or status >= 500, retry_after
    )


class RateLimiter:
    """Token buckets for requests and tokens per minute (None: unlimited), with a burst of one second's worth."""

    def __init__(self, requests_per_minute: float | None, tokens_per_minute: float | None) -> None:
        self.limits = {"requests": requests_per_minute, "tokens": tokens_per_minute}
        self.level = {k: max(1.0, v / 60.0) if v else 0.0 for k, v in self.limits.items()}
        self.stamp = time.monotonic()
        self.lock = asyncio.Lock()

    async def acquire(self, tokens: float) -> None:
        async with self.lock:  # one waiter at a time keeps the order fair
            need = {"requests": 1.0, "tokens": tokens}
            while True:
                now = time.monotonic()
                elapsed, self.stamp = now - self.stamp, now
                wait = 0.0
                for kind, per_minute in self.limits.items():
                    if per_minute is None:
                        continue
                    cap = max(1.0, per_minute / 60.0, need[kind])
                    self.level[kind] = min(cap, self.level[kind] + elapsed * per_minute / 60.0)
                    if self.level[kind] < need[kind]:
                        wait = max(wait, (need[kind] - self.level[kind]) * 60.0 / per_minute)
                if wait <= 0:
                    for kind, per_minute in self.limits.items():
                        if per_minute is not None:
                            self.level[kind] -= need[kind]
                    return
                await asyncio.sleep(wait)


Send = Callable[[str], Awaitable[Completion]]
Session = tuple[Send, Callable[[], Awaitable[None]]]  # (send one prompt, close the client)

TRANSIENT_NAMES = (
    "Timeout",
    "Connection",
    "Connect",
    "ResponseValidation",
    "Decode",
    "RemoteProtocol",
    "ReadError",
    "WriteError",
)


class CallLayer:
    """Runs a batch of prompts through ``send`` with every safety net, returning one text per prompt."""

    def __init__(
        self, provider: str, options: ProviderOptions, send_factory: Callable[[], Session], *, purpose: str = "feedback"
    ) -> None:
        self.provider = provider
        self.options = options
        self.send_factory = send_factory
        self.purpose = purpose
        self.cache = ResponseCache(options.cache_path) if options.cache else None
        self.failures: Counter[str] = Counter()
        self.max_in_flight = 0

    def _key(self, prompt: str) -> str:
        o = self.options
        params = {"temperature": o.temperature, "max_tokens": o.max_tokens, "system": o.system, "base_url": o.base_url}
        return cache_key(self.provider, o.model, prompt, params)

    def complete(self, prompts: Sequence[str]) -> list[str]:
        keys = [self._key(p) for p in prompts]
        done = self.cache.get_many(keys) if self.cache is not None else {}
        todo = [i for i, k in enumerate(keys) if k not in done]
        if len(todo) < len(prompts):
            record_usage(cached_calls=len(prompts) - len(todo))
        if not todo:
            return [done[k] for k in keys]
        if self.cache is None:  # no cache, no coalescing: identical prompts are independent samples
            for i, text in zip(todo, self._run_async([prompts[i] for i in todo], [keys[i] for i in todo])):
                done[keys[i]] = text
            return [done[k] for k in keys]
        prompt_of = {keys[i]: prompts[i] for i in todo}
        owned, joined = IN_FLIGHT.claim(keys[i] for i in todo)
        # identical prompts in this batch, and prompts another caller is sending right now, are not sent again
        coalesced = len(todo) - len(owned)
        try:
            settled = self.cache.get_many(
                list(owned)
            )  # answered by a caller that finished between our lookup and our claim
            for key, text in settled.items():
                done[key] = text
                IN_FLIGHT.resolve(key, text)
            send = [k for k in owned if k not in settled]
            if send:
                for key, text in zip(send, self._run_async([prompt_of[k] for k in send], send)):
                    done[key] = text
        finally:
            IN_FLIGHT.abandon(owned)  # whatever this caller did not answer (it raised), others send themselves
        again = []
        for key, future in joined.items():
            try:
                done[key] = future.result()
            except Abandoned:
                again.append(key)
        if again:  # the caller that was sending these failed: send them here, as if we had been first
            coalesced -= len(again)
            for key, text in zip(again, self._run_async([prompt_of[k] for k in again], again)):
                done[key] = text
        if coalesced:
            record_usage(coalesced_calls=coalesced)
        return [done[k] for k in keys]

    def _run_async(self, prompts: list[str], keys: list[str]) -> list[str]:
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return asyncio.run(self._batch(prompts, keys))
        with concurrent.futures.ThreadPoolExecutor(1) as pool:  # called from inside an event loop (e.g. a notebook)
            return pool.submit(asyncio.run, self._batch(prompts, keys)).result()

    async def _batch(self, prompts: list[str], keys: list[str]) -> list[str]:
        send, close = self.send_factory()  # clients bind to the running event loop, so build them here
        sem = asyncio.Semaphore(self.options.concurrency)
        limiter = RateLimiter(self.options.requests_per_minute, self.options.tokens_per_minute)
        in_flight = 0

        async def one(prompt: str, key: str) -> str:
            nonlocal in_flight
            async with sem:
                in_flight += 1
                self.max_in_flight = max(self.max_in_flight, in_flight)
                try:
                    return await self._call(send, limiter, prompt, key)
                finally:
                    in_flight -= 1

        tasks = [asyncio.ensure_future(one(p, k)) for p, k in zip(prompts, keys)]
        try:
            return list(await asyncio.gather(*tasks))
        except BaseException:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            raise
        finally:
            await close()

    async def _call(self, send: Send, limiter: RateLimiter, prompt: str, key: str) -> str:
        o = self.options
        estimate = len(prompt) / 4 + o.max_tokens
        last: CallError | None = None
        for attempt in range(o.max_retries + 1):
            await limiter.acquire(estimate)
            try:
                result = await asyncio.wait_for(send(prompt), timeout=o.timeout + 5.0)
            except Exception as exc:  # noqa: BLE001 - every failure is classified below
                last = classify(exc, self.provider)
                if not last.retryable:
                    raise RuntimeFailure(
                        f"{last.message} — not retried; check the model name, request and the key in ${o.api_key_env}"
                    ) from None
                if attempt == o.max_retries:
                    break
                delay = (
                    last.retry_after
                    if last.retry_after is not None
                    else min(o.backoff_max, o.backoff_base * 2**attempt) * (1 + random.random() / 2)
                )
                log.debug("%s: %s; retry %d in %.1fs", self.provider, last.message, attempt + 1, delay)
                record_usage(retries=1)
                await asyncio.sleep(delay)
                continue
            self._account(result)
            if result.blocked:
                self.failures[f"blocked: {result.blocked}"] += 1
                record_usage(blocked_calls=1)
            elif not result.text.strip():
                self.failures["empty response"] += 1
                record_usage(empty_calls=1)
            if self.cache is not None:
                self.cache.put(
                    key, result.text, {"provider": self.provider, "model": o.model, "blocked": result.blocked}
                )
                IN_FLIGHT.resolve(key, result.text)  # after the cache holds it, so a later caller finds it there
            return result.text
        assert last is not None
        if self.cache is not None:
            IN_FLIGHT.resolve(key, "")  # whoever waits for this request shares its failure instead of paying again
        self.failures[last.message] += 1
        record_usage(failed_calls=1)
        log.warning(
            "%s: giving up after %d attempts: %s (the item is counted as failed)",
            self.provider,
            o.max_retries + 1,
            last.message,
        )
        return ""

    def _account(self, c: Completion) -> None:
        o = self.options
        cost = (c.input_tokens * o.price_input_per_mtok + c.output_tokens * o.price_output_per_mtok) / 1e6
        usage = {"prompt_tokens": c.input_tokens, "tokens_generated": c.output_tokens, "cost_usd": cost}
        usage[f"{self.purpose}_calls"] = 1
        record_usage(**usage)
