"""For plugin authors and bug reports: the plugin scaffold and its templates, the generated API and configuration references, the shipped examples, ``aopcore env``."""
