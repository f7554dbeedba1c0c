"""The code location's resources, built from the environment (``core/settings.py`` names every variable)."""

from seedance_pipeline.ledger.budget import SpendPolicy
from seedance_pipeline.providers.resource import SeedanceProviders
from seedance_pipeline.storage.resource import SeedanceStorage


def resources(
    storage: SeedanceStorage | None = None, providers: SeedanceProviders | None = None, spend: SpendPolicy | None = None
) -> dict[str, SeedanceStorage | SeedanceProviders | SpendPolicy]:
    """The three resources, each the one given or else the one the environment configures."""
    return {
        "storage": storage or SeedanceStorage.from_env(),
        "providers": providers or SeedanceProviders.from_env(),
        "spend": spend or SpendPolicy.from_env(),
    }
