"""JieKou AI (接口AI) ``seedance-v1.5-pro-i2v`` (docs/providers.md §5): the v3 async platform."""

from __future__ import annotations

import dataclasses

from seedance_pipeline.providers.v3async import V3_CAPABILITIES, V3AsyncAdapter


class JieKouAdapter(V3AsyncAdapter):
    name = "jiekou"
    env_key = "JIEKOU_API_KEY"
    default_base_url = "https://api.jiekou.ai"
    capabilities = dataclasses.replace(
        V3_CAPABILITIES,
        notes=(
            (
                "1080p",
                "JieKou's model page lists 1080p; its own ComfyUI plugin says 480p and 720p only (docs/providers.md "
                "§5.2): kept allowed, and a refusal at submit is remembered",
            ),
        ),
    )
