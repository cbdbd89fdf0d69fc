"""Hugging Face / torch plugin family: policies, PPO (ours), TRL GRPO/RLOO, SFT, reward models, embeddings.

Importing this package is cheap: torch and transformers load only when a component is built.
"""
