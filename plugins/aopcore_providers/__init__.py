"""Remote LLM providers (Gemini, OpenAI and compatible servers, Anthropic) as FeedbackLLM and Judge."""
