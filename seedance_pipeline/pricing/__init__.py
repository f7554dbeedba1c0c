"""Cost estimates from one price table (``prices.yaml``), overridable with ``SEEDANCE_PRICES_FILE``."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict

from seedance_pipeline.core import model_spec, settings


class Rate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    usd: float
    resolution: str | None = None
    audio: bool | None = None
    tier: Literal["default", "flex"] | None = None


class ProviderPrices(BaseModel):
    model_config = ConfigDict(extra="forbid")
    unit: Literal["usd_per_second", "usd_per_million_tokens"]
    assumption: bool
    source: str
    rates: list[Rate]


class PriceTable(BaseModel):
    model_config = ConfigDict(extra="forbid")
    providers: dict[str, ProviderPrices]


@dataclass(frozen=True)
class CostEstimate:
    usd: float
    unit: str
    rate_usd: float
    quantity: float  # seconds or tokens
    assumption: bool
    source: str


class NoPrice(LookupError):
    pass


def tokens(width: int, height: int, duration_s: int) -> float:
    """The observed token count (docs/providers.md §2.4): width x height padded to 16 x (24·d + 1) frames / 1024.
    ByteDance's published formula (x 24·d, unpadded) is 0.8-1.6 % low; a provider's reported charge wins anyway."""
    return width * model_spec.billed_height(height) * model_spec.billed_frames(duration_s) / 1024


@lru_cache(maxsize=8)
def _load(override: str | None) -> PriceTable:
    base = yaml.safe_load(resources.files(__package__).joinpath("prices.yaml").read_text())
    if override:
        with open(override, encoding="utf-8") as fh:
            extra = yaml.safe_load(fh) or {}
        base["providers"].update(extra.get("providers") or {})
    return PriceTable.model_validate(base)


def price_table() -> PriceTable:
    return _load(settings.PRICES_FILE.read())


def estimate(
    provider: str,
    *,
    resolution: str,
    duration_s: int,
    generate_audio: bool,
    width: int,
    height: int,
    service_tier: str | None = None,
) -> CostEstimate:
    return _estimate(
        settings.PRICES_FILE.read(), provider, resolution, duration_s, generate_audio, width, height, service_tier
    )


@lru_cache(maxsize=4096)
def _estimate(
    override: str | None,
    provider: str,
    resolution: str,
    duration_s: int,
    generate_audio: bool,
    width: int,
    height: int,
    service_tier: str | None,
) -> CostEstimate:
    """One estimate per shape (a plan of the whole catalog prices each clip, mostly of a few shapes)."""
    prices, rate = _rate(override, provider, resolution, generate_audio, service_tier or "default")
    quantity = float(duration_s) if prices.unit == "usd_per_second" else tokens(width, height, duration_s)
    divisor = 1.0 if prices.unit == "usd_per_second" else 1e6
    return CostEstimate(
        usd=round(rate.usd * quantity / divisor, 6),
        unit=prices.unit,
        rate_usd=rate.usd,
        quantity=quantity,
        assumption=prices.assumption,
        source=prices.source,
    )


def _rate(
    override: str | None, provider: str, resolution: str, generate_audio: bool, tier: str
) -> tuple[ProviderPrices, Rate]:
    """The provider's prices and the rate that applies (called once per shape: ``_estimate`` is cached)."""
    prices = _load(override).providers.get(provider)
    if prices is None:
        raise NoPrice(f"no prices for provider {provider}")

    def matches(rate: Rate) -> bool:
        return (
            (rate.resolution in (None, resolution))
            and (rate.audio in (None, generate_audio))
            and (rate.tier in (None, tier))
        )

    rate = next((r for r in prices.rates if matches(r)), None)
    if rate is None:
        raise NoPrice(f"no {provider} price for {resolution}, audio={generate_audio}, tier={tier}")
    return prices, rate
