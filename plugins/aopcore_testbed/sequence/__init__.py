"""The testbed's sequence tier: reasoning-gym tasks at two difficulty levels each, answered in several sampled tokens
by a small character-level GPT-2 (``testbed-seq``), scored by each task's own scorer (docs/testbed.md)."""
