"""Prompt pipeline and curricula: vanilla, SOP, AOP (the paper) and eva, pool (beyond it)."""
