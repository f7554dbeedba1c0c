"""Where a provider's requests go: one rule, used by the ``providers`` resource and by ``generate``.

In order:
1. the provider's base URL setting (``SEEDANCE_<PROVIDER>_BASE_URL``) when set, with its key when one is set;
2. the provider's real API when its key is set (``RUNPOD_API_KEY``, ...);
3. otherwise nowhere real: the pipeline sends it to the built-in simulator and says "simulated" on every
   result; ``generate`` refuses unless asked for ``--simulator`` (a one-off clip is never simulated silently).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from seedance_pipeline.providers import get_adapter

# The built-in simulator (and a base URL that needs no key, e.g. a simulator started by hand) takes any
# non-empty key: this one is sent where none is configured.
SIMULATOR_KEY = "simulator-key"


@dataclass(frozen=True)
class Route:
    provider: str
    base_url: str | None  # None: no real access configured (the built-in simulator)
    api_key: str | None = field(default=None, repr=False)

    @property
    def simulated(self) -> bool:
        return self.base_url is None

    @property
    def key(self) -> str:
        """The key sent: the configured one, else the placeholder a keyless server accepts."""
        return self.api_key or SIMULATOR_KEY


def route(provider: str, *, api_key: str | None, base_url: str | None) -> Route:
    if base_url:
        return Route(provider, base_url, api_key or None)
    if api_key:
        return Route(provider, get_adapter(provider).base_url, api_key)
    return Route(provider, None)
