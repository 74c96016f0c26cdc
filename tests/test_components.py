"""tests/components.py: a missing system component fails its test in CI and skips it elsewhere."""
import pytest

from components import in_ci, missing_component, require_module


@pytest.mark.parametrize("value", ["true", "TRUE", "True", "1"])
def test_missing_component_fails_in_ci_naming_the_component(monkeypatch, value):
    monkeypatch.setenv("CI", value)
    with pytest.raises(pytest.fail.Exception) as failed:
        missing_component("Chromium", "chromium is not installed")
    assert str(failed.value) == "Chromium is missing in CI: chromium is not installed"
    assert failed.value.pytrace is False


@pytest.mark.parametrize("value", [None, "", "false", "0", "yes"])
def test_missing_component_skips_outside_ci(monkeypatch, value):
    if value is None:
        monkeypatch.delenv("CI", raising=False)
    else:
        monkeypatch.setenv("CI", value)
    assert not in_ci()
    with pytest.raises(pytest.skip.Exception) as skipped:
        missing_component("PostgreSQL", "PostgreSQL's server programs are not installed")
    assert str(skipped.value) == "PostgreSQL's server programs are not installed"


def test_require_module_returns_an_installed_module(monkeypatch):
    monkeypatch.setenv("CI", "true")
    import json

    assert require_module("json", "json", "never missing") is json


def test_require_module_fails_in_ci_and_skips_elsewhere_on_a_missing_module(monkeypatch):
    missing = "gan_study_no_such_module"
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match=r"^psycopg2 is missing in CI: needs psycopg2-binary \("):
        require_module(missing, "psycopg2", "needs psycopg2-binary")
    monkeypatch.delenv("CI")
    with pytest.raises(pytest.skip.Exception, match=r"^needs psycopg2-binary \(No module named"):
        require_module(missing, "psycopg2", "needs psycopg2-binary")
