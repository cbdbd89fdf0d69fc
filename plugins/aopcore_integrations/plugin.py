"""The integrations family registers no components: its adapters are imported by the user's training script
(``from aopcore_integrations.trl import TRLCurriculum``) or named in a trainer's own config (veRL's
``data.custom_cls``), not chosen in an aopcore config. The module exists so the family can register
components later through the same ``aopcore`` entry point as every other family.
"""
