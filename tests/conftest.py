import os

# Ray token auth must be configured the same in every process; tests run without it.
os.environ.setdefault("RAY_AUTH_MODE", "disabled")
os.environ.setdefault("RAY_DEDUP_LOGS", "0")
if "GAN_STUDY_CACHE" not in os.environ:
    # one classifier cache per test session, shared by the studies the tests start as subprocesses
    import tempfile

    os.environ["GAN_STUDY_CACHE"] = tempfile.mkdtemp(prefix="gan-study-cache-")

import pytest  # noqa: E402

from gan.data import load_dataset  # noqa: E402


@pytest.fixture(scope="session")
def mnist5k():
    return load_dataset("mnist5k")
