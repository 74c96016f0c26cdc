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
from gan.metrics.classifier import load_or_train_classifier  # noqa: E402


@pytest.fixture(scope="session")
def mnist5k():
    return load_dataset("mnist5k")


@pytest.fixture(scope="session")
def quick_classifier(mnist5k):
    """The domain classifier of mnist5k: the shipped weights, the same network on every machine (no training)."""
    return load_or_train_classifier(mnist5k)


def pytest_collection_modifyitems(config, items):
    # The fast tier (`-m "not slow"`) leaves out whole modules that start Ray clusters or run studies.
    slow_modules = {"test_cluster.py", "test_fault_tolerance.py", "test_study_e2e.py", "test_reports_e2e.py",
                    "test_errored_trials.py", "test_mlflow_auth.py", "test_mlflow_ui.py"}
    for item in items:
        if item.path.name in slow_modules:
            item.add_marker(pytest.mark.slow)
