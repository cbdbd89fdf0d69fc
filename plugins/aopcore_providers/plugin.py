"""Registers Gemini (google-genai), OpenAI (and compatible servers) and Anthropic as feedback LLMs and judges."""

from __future__ import annotations

from aopcore import hookimpl
from aopcore.registry import LazyFactory
from aopcore_providers.options import AnthropicOptions, GeminiOptions, OpenAIOptions

PROVIDERS = {
    "gemini": (GeminiOptions, "Gemini via google-genai"),
    "openai": (OpenAIOptions, "OpenAI or any OpenAI-compatible server (base_url)"),
    "anthropic": (AnthropicOptions, "Anthropic Messages API"),
}


@hookimpl
def register_feedback_llms(register):
    for name, (options, doc) in PROVIDERS.items():
        register(
            name,
            LazyFactory(f"aopcore_providers.llm:{name.title().replace('Openai', 'OpenAI')}LLM", doc=doc),
            options=options,
        )


@hookimpl
def register_judges(register):
    for name, (options, doc) in PROVIDERS.items():
        register(
            name,
            LazyFactory(
                f"aopcore_providers.llm:{name.title().replace('Openai', 'OpenAI')}Judge",
                doc=f"{doc}: the paper's judge prompt",
            ),
            options=options,
        )
