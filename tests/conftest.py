import os

import pytest


@pytest.fixture(autouse=True, scope="session")
def _isolated_cache(tmp_path_factory):
    """Degraded-data caches of the tests go to a temporary directory, never to ~/.cache."""
    os.environ["BNCR_CACHE"] = str(tmp_path_factory.mktemp("bncr-cache"))
    yield
