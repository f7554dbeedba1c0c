"""JieKou AI (接口AI) ``seedance-v1.5-pro-i2v`` (docs/providers.md §5): the v3 async platform."""

from __future__ import annotations

from seedance_pipeline.providers.v3async import V3AsyncAdapter


class JieKouAdapter(V3AsyncAdapter):
    name = "jiekou"
    env_key = "JIEKOU_API_KEY"
    default_base_url = "https://api.jiekou.ai"
