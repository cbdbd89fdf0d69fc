"""Evaluation family: judges (reward margin, any-LLM), verdict parsing, reports."""
