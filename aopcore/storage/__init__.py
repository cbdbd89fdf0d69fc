"""What persists: the run directory (its layout, atomic writes, integrity hashes, lock, fingerprint) and the LLM response cache."""
