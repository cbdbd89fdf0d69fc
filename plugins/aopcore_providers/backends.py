"""One request per prompt for each provider SDK; retries are the call layer's job, so SDK retries are off."""

from __future__ import annotations

import os
from types import ModuleType

from aopcore import InputError, RuntimeFailure
from aopcore_providers.calls import CallError, Completion, Session
from aopcore_providers.options import ProviderOptions


def api_key(options: ProviderOptions) -> str:
    key = os.environ.get(options.api_key_env)
    if not key:
        raise InputError(f"environment variable {options.api_key_env} is not set (the API key is read from it)")
    return key


def sdk_http_module(base_client: ModuleType) -> ModuleType:
    """The HTTP library an SDK is built on (httpx, or httpx2 in recent releases): `cast_to` must be its Response class."""
    module = getattr(base_client, "httpx2", None) or getattr(base_client, "httpx", None)
    if module is None:
        raise RuntimeFailure(
            f"{base_client.__name__}: cannot find the SDK's HTTP client; this SDK version is not supported"
        )
    return module


def openai_send(options: ProviderOptions, key: str) -> Session:
    import openai
    import openai._base_client

    httpx = sdk_http_module(openai._base_client)

    client = openai.AsyncOpenAI(api_key=key, base_url=options.base_url, timeout=options.timeout, max_retries=0)

    async def send(prompt: str) -> Completion:
        messages = ([{"role": "system", "content": options.system}] if options.system else []) + [
            {"role": "user", "content": prompt}
        ]
        body = {"model": options.model, "messages": messages, "max_tokens": options.max_tokens}
        if options.temperature is not None:
            body["temperature"] = options.temperature
        # the SDK's documented low-level request (custom requests, `cast_to=httpx.Response`): its transport, auth
        # and typed HTTP errors, without re-validating a body built here or building typed models of a reply
        # read for three fields; together those were half of the client's CPU per call
        # (benchmarks/judge_throughput.py)
        raw = await client.post("/chat/completions", body=body, cast_to=httpx.Response)
        data = raw.json()
        if not data.get("choices"):
            raise CallError("openai: response without choices", None, True)
        choice = data["choices"][0]
        usage = data.get("usage") or {}
        blocked = "content_filter" if choice.get("finish_reason") == "content_filter" else None
        return Completion(
            (choice.get("message") or {}).get("content") or "",
            usage.get("prompt_tokens", 0),
            usage.get("completion_tokens", 0),
            blocked,
        )

    return send, client.close


def anthropic_send(options: ProviderOptions, key: str) -> Session:
    import anthropic
    import anthropic._base_client

    httpx = sdk_http_module(anthropic._base_client)

    client = anthropic.AsyncAnthropic(api_key=key, base_url=options.base_url, timeout=options.timeout, max_retries=0)

    async def send(prompt: str) -> Completion:
        body: dict = {
            "model": options.model,
            "max_tokens": options.max_tokens,
            "messages": [{"role": "user", "content": prompt}],
        }
        if options.system:
            body["system"] = options.system
        if options.temperature is not None:  # no longer a named argument of messages.create in anthropic>=2
            body["temperature"] = options.temperature
        data = (
            await client.post("/v1/messages", body=body, cast_to=httpx.Response)
        ).json()  # low-level path, as for OpenAI
        text = "".join(block.get("text", "") for block in data.get("content") or [] if block.get("type") == "text")
        blocked = "refusal" if data.get("stop_reason") == "refusal" else None
        usage = data.get("usage") or {}
        return Completion(text, usage.get("input_tokens", 0), usage.get("output_tokens", 0), blocked)

    return send, client.close


def gemini_send(options: ProviderOptions, key: str) -> Session:
    from google import genai
    from google.genai import types

    http = types.HttpOptions(
        base_url=options.base_url, timeout=int(options.timeout * 1000), retry_options=types.HttpRetryOptions(attempts=1)
    )
    client = genai.Client(api_key=key, http_options=http)
    config = types.GenerateContentConfig(
        temperature=options.temperature, max_output_tokens=options.max_tokens, system_instruction=options.system
    )

    async def send(prompt: str) -> Completion:
        resp = await client.aio.models.generate_content(model=options.model, contents=prompt, config=config)
        usage = resp.usage_metadata
        tokens_in = (usage.prompt_token_count or 0) if usage else 0
        tokens_out = (usage.candidates_token_count or 0) if usage else 0
        feedback = resp.prompt_feedback
        if feedback is not None and feedback.block_reason:
            return Completion(
                "", tokens_in, tokens_out, str(getattr(feedback.block_reason, "value", feedback.block_reason))
            )
        if not resp.candidates:
            raise CallError("gemini: response without candidates", None, True)
        candidate = resp.candidates[0]
        reason = str(getattr(candidate.finish_reason, "value", candidate.finish_reason or ""))
        parts = candidate.content.parts if candidate.content and candidate.content.parts else []
        text = "".join(p.text or "" for p in parts)
        blocked = reason if reason in {"SAFETY", "RECITATION", "BLOCKLIST", "PROHIBITED_CONTENT", "SPII"} else None
        return Completion(text, tokens_in, tokens_out, blocked)

    return send, client.aio.aclose


SENDERS = {"openai": openai_send, "anthropic": anthropic_send, "gemini": gemini_send}
