"""One request per prompt for each provider SDK; retries are the call layer's job, so SDK retries are off."""
from __future__ import annotations

import os

from aopcore import InputError
from aopcore_providers.calls import CallError, Completion, Session
from aopcore_providers.options import ProviderOptions


def api_key(options: ProviderOptions) -> str:
    key = os.environ.get(options.api_key_env)
    if not key:
        raise InputError(f"environment variable {options.api_key_env} is not set (the API key is read from it)")
    return key


def openai_send(options: ProviderOptions, key: str) -> Session:
    import openai
    from openai.types.chat import ChatCompletion

    client = openai.AsyncOpenAI(api_key=key, base_url=options.base_url, timeout=options.timeout, max_retries=0)

    async def send(prompt: str) -> Completion:
        messages = ([{"role": "system", "content": options.system}] if options.system else []) + [{"role": "user", "content": prompt}]
        body = {"model": options.model, "messages": messages, "max_tokens": options.max_tokens}
        if options.temperature is not None:
            body["temperature"] = options.temperature
        # the SDK's documented low-level request: its transport, auth, typed errors and typed response, without
        # re-validating a body built here (that re-validation is a quarter of the client's CPU per call)
        resp = await client.post("/chat/completions", body=body, cast_to=ChatCompletion)
        if not resp.choices:
            raise CallError("openai: response without choices", None, True)
        choice = resp.choices[0]
        usage = resp.usage
        blocked = "content_filter" if choice.finish_reason == "content_filter" else None
        return Completion(choice.message.content or "", usage.prompt_tokens if usage else 0, usage.completion_tokens if usage else 0, blocked)

    return send, client.close


def anthropic_send(options: ProviderOptions, key: str) -> Session:
    import anthropic
    from anthropic.types import Message

    client = anthropic.AsyncAnthropic(api_key=key, base_url=options.base_url, timeout=options.timeout, max_retries=0)

    async def send(prompt: str) -> Completion:
        body: dict = {"model": options.model, "max_tokens": options.max_tokens, "messages": [{"role": "user", "content": prompt}]}
        if options.system:
            body["system"] = options.system
        if options.temperature is not None:  # no longer a named argument of messages.create in anthropic>=2
            body["temperature"] = options.temperature
        resp = await client.post("/v1/messages", body=body, cast_to=Message)  # low-level path, as for OpenAI
        text = "".join(getattr(block, "text", "") for block in resp.content if getattr(block, "type", "") == "text")
        blocked = "refusal" if resp.stop_reason == "refusal" else None
        return Completion(text, resp.usage.input_tokens, resp.usage.output_tokens, blocked)

    return send, client.close


def gemini_send(options: ProviderOptions, key: str) -> Session:
    from google import genai
    from google.genai import types

    http = types.HttpOptions(base_url=options.base_url, timeout=int(options.timeout * 1000),
                             retry_options=types.HttpRetryOptions(attempts=1))
    client = genai.Client(api_key=key, http_options=http)
    config = types.GenerateContentConfig(temperature=options.temperature, max_output_tokens=options.max_tokens,
                                         system_instruction=options.system)

    async def send(prompt: str) -> Completion:
        resp = await client.aio.models.generate_content(model=options.model, contents=prompt, config=config)
        usage = resp.usage_metadata
        tokens_in = (usage.prompt_token_count or 0) if usage else 0
        tokens_out = (usage.candidates_token_count or 0) if usage else 0
        feedback = resp.prompt_feedback
        if feedback is not None and feedback.block_reason:
            return Completion("", tokens_in, tokens_out, str(getattr(feedback.block_reason, "value", feedback.block_reason)))
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
