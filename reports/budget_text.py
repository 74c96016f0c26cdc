"""A study's training budget: the parent run's `budget` parameter (JSON) and how a reader says it.

    {"steps": 2500, "epochs": null, "eval_every": 400.0, "per_arch": {"mlp": {"steps": 10000, ...}}}
    -> "MLP 10,000 generator steps, evaluated every 1,250; DCGAN 2,500, every 400"

The study writes the parameter (`budget_param`); the report's header and the parent run's description say it
(`budget_text`). A budget of its own applies to its architecture, the study's own budget to every other one.
"""
from __future__ import annotations

import json

from gan.config import ARCHITECTURES


def budget_param(budget) -> dict:
    """A gan.run.Budget as the JSON the parent run's `budget` parameter holds."""
    own = {"steps": budget.steps, "epochs": budget.epochs, "eval_every": budget.eval_every}
    if budget.per_arch:
        own["per_arch"] = {arch: budget_param(arch_budget) for arch, arch_budget in budget.per_arch}
    return own


def _number(value: float) -> str:
    return format(value, ",.6g")  # 10000 -> 10,000; 400.0 -> 400; 0.5 -> 0.5


def _unit(budget: dict) -> str:
    return "generator steps" if budget.get("steps") is not None else "epochs"


def _phrase(budget: dict, short: bool) -> str:
    """'10,000 generator steps, evaluated every 1,250', or '2,500, every 400' after a phrase in the same unit."""
    total = budget["steps"] if budget.get("steps") is not None else budget["epochs"]
    every = _number(budget["eval_every"])
    if budget.get("steps") is None:
        every += " epoch" if budget["eval_every"] == 1 else " epochs"
    if short:
        return f"{_number(total)}, every {every}"
    return f"{_number(total)} {_unit(budget)}, evaluated every {every}"


def budget_text(budget: dict | str | None) -> str:
    """The budget in words, from `budget_param`'s dict or its JSON; '?' when the study logged none."""
    if isinstance(budget, str):
        try:
            budget = json.loads(budget)
        except json.JSONDecodeError:
            return budget  # written by hand or by another tool: shown as it is
    if not isinstance(budget, dict):
        return "?"
    own = budget.get("per_arch") or {}
    if not own:
        return _phrase(budget, short=False)
    order = [arch for arch in ARCHITECTURES if arch in own] + [arch for arch in own if arch not in ARCHITECTURES]
    parts = [(arch.upper(), own[arch]) for arch in order]
    parts += [(arch.upper(), budget) for arch in ARCHITECTURES if arch not in own]
    phrases, unit = [], None
    for label, arch_budget in parts:
        phrases.append(f"{label} {_phrase(arch_budget, short=_unit(arch_budget) == unit)}")
        unit = _unit(arch_budget)
    return "; ".join(phrases)
