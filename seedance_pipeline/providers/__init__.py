"""Provider adapters: one module per provider, each a translator between our request and its wire."""

from __future__ import annotations

from seedance_pipeline.providers.base import ProviderAdapter
from seedance_pipeline.providers.jiekou import JieKouAdapter
from seedance_pipeline.providers.modelark import ModelArkAdapter
from seedance_pipeline.providers.novita import NovitaAdapter
from seedance_pipeline.providers.runpod import RunPodAdapter
from seedance_pipeline.providers.vibedream import VibeDreamAdapter
from seedance_pipeline.providers.wavespeed import WaveSpeedAdapter

ADAPTER_CLASSES: dict[str, type[ProviderAdapter]] = {
    cls.name: cls
    for cls in (RunPodAdapter, WaveSpeedAdapter, JieKouAdapter, NovitaAdapter, VibeDreamAdapter, ModelArkAdapter)
}
PROVIDERS: tuple[str, ...] = tuple(ADAPTER_CLASSES)


def get_adapter(name: str, **options) -> ProviderAdapter:
    try:
        cls = ADAPTER_CLASSES[name]
    except KeyError:
        raise ValueError(f"unknown provider {name!r}; choose one of {', '.join(PROVIDERS)}") from None
    # Without options, as the adapter's own settings configure it (ModelArk's region and model).
    return cls(**options) if options else cls.from_env()
