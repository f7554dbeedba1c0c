"""The Dagster resource that wraps the provider layer: routing, keys, clients, the built-in simulator.

Where a provider's requests go, in order (same rule as ``generate``):
1. ``SEEDANCE_<PROVIDER>_BASE_URL`` if set (with the provider's key when one is set);
2. the real API when the provider's key is set (``RUNPOD_API_KEY``, ...);
3. otherwise the built-in simulator, and every result says "simulated": the one at ``SEEDANCE_SIMULATOR_URL``
   if set (``seedance-pipeline simulate``), else one started on a free loopback port.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass

import dagster as dg
import httpx
from pydantic import PrivateAttr

from seedance_pipeline.providers import ADAPTER_CLASSES, PROVIDERS, base_url_env, get_adapter
from seedance_pipeline.providers.engine import ClientSettings, ProviderClient

SIMULATOR_KEY = "simulator-key"
SIMULATOR_URL_ENV = "SEEDANCE_SIMULATOR_URL"  # a simulator already running (``seedance-pipeline simulate``)
DEFAULT_MAX_IN_FLIGHT = 4
EXPECTED_LATENCY_ENV = "SEEDANCE_EXPECTED_LATENCY_S"


def max_in_flight_env(provider: str) -> str:
    """``SEEDANCE_MAX_IN_FLIGHT_RUNPOD`` and friends: tasks one run keeps in flight at that provider."""
    return f"SEEDANCE_MAX_IN_FLIGHT_{provider.upper()}"


def _env_cap(name: str) -> int:
    raw = os.environ[name].strip()
    if not raw.isdigit() or int(raw) < 1:
        raise ValueError(f"{name}={raw!r} is not allowed: a whole number of tasks, at least 1")
    return int(raw)


def expected_latency_from_env() -> dict[str, float]:
    """``SEEDANCE_EXPECTED_LATENCY_S``: the poll-schedule prior for real providers (first poll at 90 % of it)."""
    raw = os.environ.get(EXPECTED_LATENCY_ENV, "").strip()
    if not raw:
        return {}
    try:
        value = float(raw)
    except ValueError:
        value = 0.0
    if not value > 0:
        raise ValueError(f"{EXPECTED_LATENCY_ENV}={raw!r}: must be a number of seconds > 0")
    return {"expected_latency_s": value}


@dataclass(frozen=True)
class Route:
    provider: str
    base_url: str | None  # None: the built-in simulator (its URL is known once it runs)
    simulated: bool

    @property
    def label(self) -> str:
        return "simulated" if self.simulated else (self.base_url or "")


class SeedanceProviders(dg.ConfigurableResource):
    """Provider API access. Keys come from the environment via ``EnvVar`` and are never shown."""

    runpod_api_key: str | None = None
    wavespeed_api_key: str | None = None
    jiekou_api_key: str | None = None
    novita_api_key: str | None = None
    vibedream_api_key: str | None = None
    base_urls: dict[str, str] = {}
    max_in_flight: dict[str, int] = {}  # per-provider cap on tasks in flight (default 4)
    simulator_latency_s: float = 2.0
    simulator_url: str | None = None  # use a simulator already running there instead of starting one
    expected_latency_s: float = 60.0  # poll-schedule prior for real providers
    client_settings: dict[str, float] = {}  # engine overrides (ClientSettings fields), e.g. read_timeout_s

    _simulator = PrivateAttr(default=None)

    @classmethod
    def from_env(cls, **overrides) -> SeedanceProviders:
        keys = {
            f"{p}_api_key": dg.EnvVar(ADAPTER_CLASSES[p].env_key)
            for p in PROVIDERS
            if os.environ.get(ADAPTER_CLASSES[p].env_key)
        }
        urls = {p: os.environ[base_url_env(p)] for p in PROVIDERS if os.environ.get(base_url_env(p))}
        simulator = {"simulator_url": os.environ[SIMULATOR_URL_ENV]} if os.environ.get(SIMULATOR_URL_ENV) else {}
        caps = {p: _env_cap(max_in_flight_env(p)) for p in PROVIDERS if os.environ.get(max_in_flight_env(p))}
        return cls(
            **{
                **keys,
                "base_urls": urls,
                **simulator,
                "max_in_flight": caps,
                **expected_latency_from_env(),
                **overrides,
            }
        )

    def api_key(self, provider: str) -> str | None:
        return getattr(self, f"{provider}_api_key") or None

    def route(self, provider: str) -> Route:
        if provider in self.base_urls:
            return Route(provider, self.base_urls[provider], simulated=False)
        if self.api_key(provider):
            return Route(provider, ADAPTER_CLASSES[provider].default_base_url, simulated=False)
        return Route(provider, None, simulated=True)

    def configured(self) -> list[str]:
        """Providers with real access; when there is none, every provider (all simulated)."""
        real = [p for p in PROVIDERS if not self.route(p).simulated]
        return real or list(PROVIDERS)

    @property
    def simulator(self):
        """The built-in simulator, started on first use (loopback, free port)."""
        if self._simulator is None:
            from seedance_pipeline.simulator.config import ProviderSimConfig, SimConfig
            from seedance_pipeline.simulator.server import SimulatorServer

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
                "max_in_flight": self.max_in_flight.get(route.provider, DEFAULT_MAX_IN_FLIGHT),
                **self.client_settings,
            }
        )

    def simulator_base(self) -> str:
        return (self.simulator_url or self.simulator.base_url).rstrip("/")

    def make_client(self, provider: str, **kw) -> ProviderClient:
        route = self.route(provider)
        if route.simulated:
            base_url, key = f"{self.simulator_base()}/{provider}", SIMULATOR_KEY
        else:
            base_url, key = route.base_url, self.api_key(provider) or SIMULATOR_KEY
        return ProviderClient(get_adapter(provider), key, base_url=base_url, settings=self.settings_for(route), **kw)

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
