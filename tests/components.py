"""What a test does where a system component it needs (Chromium, PostgreSQL, SLURM with MUNGE, ray[default],
psycopg2) is missing: skip on a developer's machine, fail in CI.

.ci/run installs every component, so in CI (the environment variable CI is "true" or "1", as GitHub Actions,
GitLab CI and most others set it) a missing one is a broken install, not a reason to skip: the test fails and
names the component, where a skip would have let the suite stay green with the test never run.
"""
from __future__ import annotations

import importlib
import os
from typing import NoReturn

import pytest


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("true", "1")


def missing_component(component: str, reason: str) -> NoReturn:
    """Fail the calling test in CI ("<component> is missing in CI: <reason>"), skip it elsewhere (`reason`)."""
    if in_ci():
        pytest.fail(f"{component} is missing in CI: {reason}", pytrace=False)
    pytest.skip(reason)


def require_module(module: str, component: str, reason: str):
    """`module` imported, as pytest.importorskip would, or missing_component(component, reason) where it cannot be."""
    try:
        return importlib.import_module(module)
    except ImportError as error:
        missing_component(component, f"{reason} ({error})")
