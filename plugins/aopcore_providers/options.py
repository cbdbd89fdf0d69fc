"""Options of the provider backends: pure pydantic, so validation needs no SDK installed."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from aopcore.options import OutputPath


class ProviderOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", protected_namespaces=())
    model: str = Field(description="Model name at the provider.")
    api_key_env: str = Field(
        description="Environment variable that holds the API key (the key itself never goes in a config)."
    )
    base_url: str | None = Field(
        None, description="Override the endpoint (OpenAI-compatible servers: vLLM, llama.cpp, Ollama)."
    )
    temperature: float | None = Field(
        0.7, ge=0, description="Sampling temperature; None leaves the provider's default."
    )
    max_tokens: int = Field(2048, ge=1, description="Maximum tokens generated per call.")
    system: str | None = Field(None, description="Optional system instruction.")
    timeout: float = Field(120.0, gt=0, description="Seconds before one request is abandoned and retried.")
    concurrency: int = Field(8, ge=1, description="Requests in flight at once.")
    requests_per_minute: float | None = Field(None, gt=0, description="Client-side request rate limit.")
    tokens_per_minute: float | None = Field(
        None, gt=0, description="Client-side token rate limit (prompt estimate + max_tokens)."
    )
    max_retries: int = Field(6, ge=0, description="Retries on 429, 5xx, timeouts and malformed responses.")
    backoff_base: float = Field(1.0, gt=0, description="First retry delay in seconds; doubles each retry, with jitter.")
    backoff_max: float = Field(
        60.0, gt=0, description="Longest delay between retries (a longer Retry-After is honoured)."
    )
    cache: bool = Field(True, description="Reuse responses to identical requests; turn off to pay for fresh samples.")
    cache_path: OutputPath | None = Field(
        None,
        description="Cache file (relative to the config file); default ~/.cache/aopcore/llm-cache.sqlite (or $AOPCORE_CACHE).",
    )
    price_input_per_mtok: float = Field(0.0, ge=0, description="USD per million prompt tokens, for the cost ledger.")
    price_output_per_mtok: float = Field(
        0.0, ge=0, description="USD per million generated tokens, for the cost ledger."
    )


class GeminiOptions(ProviderOptions):
    model: str = "gemini-2.5-pro"
    api_key_env: str = "GEMINI_API_KEY"


class OpenAIOptions(ProviderOptions):
    model: str = "gpt-4o"
    api_key_env: str = "OPENAI_API_KEY"


class AnthropicOptions(ProviderOptions):
    model: str = "claude-sonnet-4-5"
    api_key_env: str = "ANTHROPIC_API_KEY"
    temperature: float | None = Field(
        None, ge=0, description="Unset by default: recent Claude models fix their own sampling."
    )
