"""The backends that ship with the plugin; others come through the
``pytest_modelopt_finetune_backend`` hook."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ...config import Settings
    from ..jobs import Backend

BUILTIN = ("openai", "local", "export")
FREE = frozenset({"local", "export"})  # launching these costs nothing: no confirmation


def builtin_backend(name: str, settings: Settings) -> Backend | None:
    """A shipped backend by name, configured from the settings; None for any other name."""
    if name == "openai":
        from .openai_api import OpenAIBackend  # each backend loads when chosen (start-up cost)

        return OpenAIBackend(base_url=settings.base_url, timeout=settings.timeout)
    if name == "local":
        from .local.backend import LocalBackend  # each backend loads when chosen

        return LocalBackend(lora=settings.finetune.lora, max_steps=settings.finetune.max_steps)
    if name == "export":
        from .export import ExportBackend  # each backend loads when chosen

        return ExportBackend()
    return None
