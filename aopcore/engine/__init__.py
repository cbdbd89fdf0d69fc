"""The engine: an experiment's and a curriculum session's stages, their commit protocol, and the front doors that build them (config files, several seeds)."""
