"""``providers``: the Dagster resource over the provider layer: keys, routing (``routing.py``), engine clients
per run, and the built-in simulator, started on first use when a provider has no real access."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

import dagster as dg
import httpx
from pydantic import Field, PrivateAttr

from seedance_pipeline.core import settings
from seedance_pipeline.core.errors import SeedanceError
from seedance_pipeline.providers import ADAPTER_CLASSES, PROVIDERS, get_adapter
from seedance_pipeline.providers.engine import ClientSettings, ProviderClient
from seedance_pipeline.providers.routing import Route, route


class SeedanceProviders(dg.ConfigurableResource):
    """Provider API access. Keys come from the environment via ``EnvVar`` and are never shown."""

    api_keys: dict[str, str] = Field(
        default={},
        description="Provider name -> API key, each an EnvVar of the provider's key variable (RUNPOD_API_KEY, ...): "
        "resolved when a run starts, never stored in config or shown.",
    )
    base_urls: dict[str, str] = Field(
        default={}, description="Provider name -> API root (SEEDANCE_<PROVIDER>_BASE_URL); else the real API."
    )
    max_in_flight: dict[str, int] = Field(
        default={},
        description=f"Provider name -> tasks one run keeps in flight there (default {settings.DEFAULT_MAX_IN_FLIGHT}).",
    )
    simulator_latency_s: float = Field(default=2.0, description="Seconds a task takes at the built-in simulator.")
    simulator_url: str | None = Field(
        default=None, description="A simulator already running (`seedance-pipeline simulate`), instead of starting one."
    )
    expected_latency_s: float = Field(
        default=settings.DEFAULT_EXPECTED_LATENCY_S,
        description="Poll-schedule prior for providers reached by key or base URL (SEEDANCE_EXPECTED_LATENCY_S).",
    )
    throttle_deadline_s: float = Field(
        default=settings.DEFAULT_THROTTLE_DEADLINE_S,
        description="How long a clip waits out a provider answering 429 when no other provider can take it "
        "(SEEDANCE_THROTTLE_DEADLINE_S).",
    )
    client_settings: dict[str, float] = Field(
        default={}, description="Engine overrides: ClientSettings fields, e.g. read_timeout_s."
    )

    _simulator = PrivateAttr(default=None)

    @classmethod
    def from_env(cls, **overrides: Any) -> SeedanceProviders:
        """Keys as ``EnvVar`` (resolved by Dagster, never stored in config), the rest from ``core/settings.py``."""
        keys = {p: dg.EnvVar(ADAPTER_CLASSES[p].env_key) for p in PROVIDERS if _has_key(p)}
        urls = {p: url for p in PROVIDERS if (url := settings.base_url(p).read())}
        caps = {p: setting.read() for p in PROVIDERS if (setting := settings.max_in_flight(p)).is_set()}
        found: dict[str, Any] = {"api_keys": keys, "base_urls": urls, "max_in_flight": caps}
        if simulator_url := settings.SIMULATOR_URL.read():
            found["simulator_url"] = simulator_url
        if settings.EXPECTED_LATENCY_S.is_set():
            found["expected_latency_s"] = settings.EXPECTED_LATENCY_S.read()
        if settings.THROTTLE_DEADLINE_S.is_set():
            found["throttle_deadline_s"] = settings.THROTTLE_DEADLINE_S.read()
        return cls(**{**found, **overrides})

    def api_key(self, provider: str) -> str | None:
        key = self.api_keys.get(provider)
        # Inside a run Dagster has resolved the EnvVar already; outside one (the CLI), it is resolved here.
        return (key.get_value() if isinstance(key, dg.EnvVar) else key) or None

    def route(self, provider: str) -> Route:
        return route(provider, api_key=self.api_key(provider), base_url=self.base_urls.get(provider))

    def configured(self) -> list[str]:
        """Providers with real access; when there is none, every provider (all simulated)."""
        real = [p for p in PROVIDERS if not self.route(p).simulated]
        return real or list(PROVIDERS)

    @property
    def simulator(self):
        """The built-in simulator, started on first use (loopback, free port)."""
        if self._simulator is None:
            try:
                from seedance_pipeline.simulator.config import ProviderSimConfig, SimConfig
                from seedance_pipeline.simulator.server import SimulatorServer
            except ImportError as exc:
                raise SeedanceError(
                    f"no API key or base URL is set for {', '.join(p for p in PROVIDERS if self.route(p).simulated)}, "
                    "and the built-in simulator that would stand in for them is not installed "
                    f"({exc.name} is missing: pip install 'seedance-pipeline[simulator]')"
                ) from None

            timing = ProviderSimConfig(latency_min_s=self.simulator_latency_s, latency_max_s=self.simulator_latency_s)
            self._simulator = SimulatorServer(SimConfig(providers={p: timing for p in PROVIDERS}))
        return self._simulator

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        self.close()

    def close(self) -> None:
        if self._simulator is not None:
            self._simulator.stop()
            self._simulator = None

    def settings_for(self, route: Route) -> ClientSettings:
        latency = self.simulator_latency_s if route.simulated else self.expected_latency_s
        return ClientSettings(
            **{
                "expected_latency_s": latency,
                "max_in_flight": self.max_in_flight.get(route.provider, settings.DEFAULT_MAX_IN_FLIGHT),
                "throttle_deadline_s": self.throttle_deadline_s,
                **self.client_settings,
            }
        )

    def simulator_base(self) -> str:
        return (self.simulator_url or self.simulator.base_url).rstrip("/")

    def make_client(self, provider: str, **kw) -> ProviderClient:
        where = self.route(provider)
        base_url = f"{self.simulator_base()}/{provider}" if where.simulated else where.base_url
        return ProviderClient(
            get_adapter(provider), where.key, base_url=base_url, settings=self.settings_for(where), **kw
        )

    @asynccontextmanager
    async def clients(self, providers: list[str], **kw) -> AsyncIterator[dict[str, ProviderClient]]:
        """One client per provider for the current event loop; closed on exit."""
        async with AsyncExitStack() as stack:
            yield {p: await stack.enter_async_context(self.make_client(p, **kw)) for p in providers}

    def host_image(self, name: str, data: bytes) -> str:
        """A URL for a local image, for URL-only providers when they are simulated (loopback only)."""
        if self.simulator_url is None:
            return self.simulator.put_asset(name, data)
        resp = httpx.put(f"{self.simulator_base()}/_sim/assets/{name}", content=data, timeout=30)
        resp.raise_for_status()
        return self.simulator_base() + resp.json()["path"]


def _has_key(provider: str) -> bool:
    return bool(os.environ.get(ADAPTER_CLASSES[provider].env_key))
