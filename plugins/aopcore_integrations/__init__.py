"""aopcore's curricula inside trainers aopcore does not own: TRL (:mod:`aopcore_integrations.trl`) and veRL
(:mod:`aopcore_integrations.verl`).

The loop-agnostic part (:class:`aopcore.CurriculumSession`, :mod:`aopcore.steps`) is in the torch-free core;
the adapters here speak each trainer's own extension points. Importing this package imports no trainer: each
adapter module imports its trainer library when used.
"""
