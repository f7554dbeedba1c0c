"""The beta and preview Dagster features the definitions rely on, accepted where each is used.

Dagster warns (``BetaWarning``, ``PreviewWarning``) when one is used. The warnings are silenced only inside
``with accepting(...)``, around the definitions that use them, and the process's warning filters are left as
they were; the README ("Dagster features we rely on") lists each feature and why.
"""

import warnings
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def accepting(*categories: type[Warning]) -> Iterator[None]:
    with warnings.catch_warnings():
        for category in categories:
            warnings.simplefilter("ignore", category)
        yield
