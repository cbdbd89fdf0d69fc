"""The integrations family registers no components: its adapters are imported by the user's training script
(``from aopcore_integrations.trl import TRLCurriculum``) or named in a trainer's own config (veRL's
``data.custom_cls``), not chosen in an aopcore config. The module exists so the family can register
components later through the same ``aopcore`` entry point as every other family. It adds the TRL adapter's
section to the API reference (``register_api_pages``).
"""

from aopcore import hookimpl


@hookimpl
def register_api_pages(register):
    register("trl", _trl_page)


def _trl_page() -> list[str]:
    """TRLCurriculum's section of docs/api.md (the adapter users import in their own TRL script)."""
    from aopcore.devtools.apidoc import class_section, doc_text
    from aopcore_integrations import trl

    out = ["## TRL (`aopcore_integrations.trl`)", "", doc_text(trl), ""]
    return out + class_section(trl.TRLCurriculum, "aopcore_integrations.trl.TRLCurriculum", init=True)
