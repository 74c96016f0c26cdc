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
from gan.metrics.classifier import TrainingRecipe, load_or_train_classifier  # noqa: E402

# A shorter run than the default recipe (30 epochs, 98.4%): 8 epochs reach about 96% in a few seconds.
QUICK_RECIPE = TrainingRecipe(epochs=8)


@pytest.fixture(scope="session")
def mnist5k():
    return load_dataset("mnist5k")


@pytest.fixture(scope="session")
def quick_classifier(mnist5k, tmp_path_factory):
    """The domain classifier of mnist5k, trained briefly once per test session."""
    return load_or_train_classifier(mnist5k, cache_dir=tmp_path_factory.mktemp("classifiers"), recipe=QUICK_RECIPE)


def pytest_collection_modifyitems(config, items):
    # The fast tier (`-m "not slow"`) leaves out whole modules that start Ray clusters or run studies.
    slow_modules = {"test_cluster.py", "test_fault_tolerance.py", "test_study_e2e.py", "test_reports_e2e.py",
                    "test_errored_trials.py", "test_mlflow_auth.py", "test_mlflow_ui.py"}
    for item in items:
        if item.path.name in slow_modules:
            item.add_marker(pytest.mark.slow)
