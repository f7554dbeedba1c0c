"""Novita AI ``seedance-v1.5-pro-i2v`` (docs/providers.md §5): the v3 async platform."""

from __future__ import annotations

import dataclasses

from seedance_pipeline.providers.v3async import V3_CAPABILITIES, V3AsyncAdapter


class NovitaAdapter(V3AsyncAdapter):
    name = "novita"
    env_key = "NOVITA_API_KEY"
    default_base_url = "https://api.novita.ai"
    capabilities = dataclasses.replace(
        V3_CAPABILITIES,
        notes=(
            (
                "1080p",
                "Novita's model page lists 1080p; integrators quote its API docs as 480p and 720p only "
                "(docs/providers.md §5.2): unverified, kept allowed, and a refusal at submit is remembered",
            ),
        ),
    )
