"""A two-stage study: search, then confirm (a space with `confirm:`; Lucic et al. 2018's protocol, REFERENCE.md).

Stage 1, the search (random or Optuna): one seed per configuration, early stopping allowed (ASHA). The best of its
single-seed scores is optimistic: it was chosen partly for its noise (the winner's curse).

Stage 2, the confirmation, started by the driver once the search has ended: the `top` K best configurations by
search score and the reference configuration (`against`, e.g. the recipe's) are trained again on N fresh seeds each
(seeds the search did not use: `confirm_seeds`), at the full budget, with no early stopping: a second Tune run (a
grid over the K + 1 configurations x N seeds, FIFO scheduler) under the same MLflow parent run. reports.search tests
each confirmed configuration against the reference and sets its search score beside its confirmed one.

A trial's search score and the ranking rule (`rank_search_results`), best first:
  1. trials that trained their full budget (status completed) and did not fail: by their final score
     (final/<metric>, the test split), the study's `mode` deciding which end is best;
  2. then trials the scheduler stopped early (ASHA): by their last score during training (validation split, an
     earlier step), so a stopped trial is confirmed only when fewer than K complete trials are there to choose;
  3. last, trials that diverged or failed (gan.outcome), or that have no finite score.
  An errored trial measured nothing and is never chosen. Ties keep the search's trial order. A configuration counts
  once (its best trial), and a configuration equal to the reference is not chosen: the reference runs anyway.

MLflow: the parent run is tagged names.DESIGN_TAG = names.DESIGN_SEARCH_CONFIRM; every child carries
names.STAGE_TAG (STAGE_SEARCH or STAGE_CONFIRM); a confirmation child also carries names.CONFIRM_RANK_TAG ("1".."K",
or names.CONFIRM_REFERENCE) and, except the reference's, names.SEARCH_SCORE_TAG (the search score of the
configuration it confirms).

`--resume` resumes the stage the study was in: interrupted in the search, the search goes on and the confirmation
then starts as usual; interrupted in the confirmation (its Tune run `<study's Tune directory>-confirm` exists), the
search's results are read back, the same configurations are chosen again (the rule is deterministic) and the
confirmation goes on. The study is complete when both stages are.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from gan import names
from gan.outcome import FAILED
from study.outcome import TrialOutcome, trial_score
from study.preflight import UsageError
from study.run_names import config_id
from study.space import StudySpace
from study.tune_config import GRID_PARAMS, TrialSettings, trial_params

CONFIRM_SEED_OFFSET = 1000  # the confirmation's seeds start here above the study's seed
CONFIRM_RUN_SUFFIX = "-confirm"  # the confirmation's Tune run: the study's Tune directory + this suffix
# parent-run parameters of a two-stage study (proposed for gan.names): its `confirm:` settings, and once the
# confirmation has started its Tune directory, seeds and configurations
CONFIRM_PARAM = "confirm"
CONFIRM_RUN_PATH_PARAM, CONFIRM_SEEDS_PARAM = "confirm_tune_run_path", "confirm_seeds"
CONFIRM_CONFIGURATIONS_PARAM = "confirm_configurations"

COMPLETE, STOPPED, LAST = 0, 1, 2  # the ranking's tiers (see the module docstring)


# --- seeds ----------------------------------------------------------------------------------------------------

def search_seeds(space: StudySpace) -> list[int]:
    """The seeds the search stage trains with: the study's seed plus each seed index (one, with `confirm`)."""
    return [space.seed + index for index in range(space.seeds_per_config)]


def confirm_base_seed(space: StudySpace) -> int:
    """The confirmation's first seed: past every seed of the search (CONFIRM_SEED_OFFSET above the study's)."""
    return space.seed + max(CONFIRM_SEED_OFFSET, space.seeds_per_config)


def confirm_seeds(space: StudySpace) -> list[int]:
    """The confirmation's fresh seeds, the same N for every confirmed configuration and the reference."""
    return [confirm_base_seed(space) + index for index in range(space.confirm.seeds)]


# --- the search's results and the choice of configurations ------------------------------------------------------

@dataclass(frozen=True)
class SearchResult:
    """One search trial as the ranking sees it."""

    params: dict[str, Any]  # the searched parameters' values
    status: str  # names.COMPLETED, STOPPED_EARLY, DIVERGED_STATUS, ERRORED or RUNNING
    score: float | None  # final/<metric> when it has one, else its last <metric> (study.outcome.trial_score)
    score_key: str | None  # which of the two `score` is
    failed: bool = False  # gan.outcome says its score measures nothing

    @property
    def tier(self) -> int:
        if self.score is None or self.failed or self.status not in (names.COMPLETED, names.STOPPED_EARLY):
            return LAST
        return COMPLETE if self.status == names.COMPLETED else STOPPED


def search_results(outcomes: list[TrialOutcome], space: StudySpace, settings: TrialSettings) -> list[SearchResult]:
    """The search stage's trials (study.outcome.TrialOutcome, in the search's order) as SearchResults."""
    results = []
    for outcome in outcomes:
        params = trial_params(outcome.config, settings)
        scored = trial_score(outcome.metrics, space.metric)
        results.append(SearchResult({name: params[name] for name in space.param_names if name in params},
                                    outcome.status, scored[1] if scored else None, scored[0] if scored else None,
                                    outcome.metrics.get(names.OUTCOME) == FAILED))
    return results


def rank_search_results(results: list[SearchResult], mode: str) -> list[SearchResult]:
    """Best first by the rule of the module docstring: tier, then score (`mode` min or max), then search order;
    errored trials left out."""
    sign = 1.0 if mode == "min" else -1.0
    kept = [result for result in results if result.status != names.ERRORED]
    return sorted(kept, key=lambda r: (r.tier, sign * r.score if r.score is not None else float("inf")))


@dataclass(frozen=True)
class Confirmed:
    """One configuration of the confirmation stage."""

    rank: int | None  # 1 = the best search score; None: the reference
    params: dict[str, Any]  # the searched parameters' values
    search_score: float | None = None  # its search trial's score (None for the reference)
    score_key: str | None = None  # final/<metric>, or <metric> for a trial stopped early

    @property
    def rank_tag(self) -> str:
        return names.CONFIRM_REFERENCE if self.rank is None else str(self.rank)

    def tags(self) -> dict[str, str]:
        """The MLflow tags of each of its confirmation runs."""
        tags = {names.STAGE_TAG: names.STAGE_CONFIRM, names.CONFIRM_RANK_TAG: self.rank_tag}
        if self.search_score is not None:
            tags[names.SEARCH_SCORE_TAG] = repr(float(self.search_score))
        return tags

    def words(self) -> str:
        values = " ".join(f"{name}={value:.6g}" if isinstance(value, float) else f"{name}={value}"
                          for name, value in self.params.items())
        if self.rank is None:
            return f"reference: {values}"
        return f"{self.rank}: {values} ({self.score_key} {self.search_score:.4g} in the search)"


def choose_confirmed(results: list[SearchResult], top: int, mode: str, reference: dict[str, Any]) -> list[Confirmed]:
    """The (at most) `top` best distinct configurations by `rank_search_results`, ranked 1.., then the reference."""
    chosen: list[Confirmed] = []
    for result in rank_search_results(results, mode):
        if len(chosen) == top:
            break
        if result.params == reference or any(result.params == c.params for c in chosen):
            continue
        chosen.append(Confirmed(len(chosen) + 1, dict(result.params), result.score, result.score_key))
    return [*chosen, Confirmed(None, dict(reference))]


# --- the confirmation's Tune run ------------------------------------------------------------------------------

def search_stage_tags(space: StudySpace) -> dict[str, str]:
    """The tags of every search child of a two-stage study; none for a one-stage study."""
    return {names.STAGE_TAG: names.STAGE_SEARCH} if space.confirm is not None else {}


def confirm_run_path(run_path: str) -> str:
    return run_path.rstrip("/") + CONFIRM_RUN_SUFFIX


@dataclass(frozen=True)
class ConfirmStage:
    """What the driver's second Tune run trains: each configuration on each fresh seed."""

    configurations: tuple[Confirmed, ...]  # the chosen ones by rank, then the reference
    settings: TrialSettings  # the search's, with the fresh seeds' base
    seeds: tuple[int, ...]

    @property
    def trial_count(self) -> int:
        return len(self.configurations) * len(self.seeds)

    @property
    def chosen(self) -> int:
        return len(self.configurations) - 1

    def grid_points(self) -> list[dict[str, Any]]:
        return [dict(configuration.params) for configuration in self.configurations]

    def param_space(self) -> dict[str, Any]:
        from study.tune_config import grid_param_space

        return grid_param_space(self.grid_points(), len(self.seeds))

    def tags_by_config(self) -> dict[str, dict[str, str]]:
        """{configuration id (study.run_names.config_id): its runs' tags}: how the MLflow callback tags each run."""
        return {config_id(trial_params({GRID_PARAMS: configuration.params}, self.settings)): configuration.tags()
                for configuration in self.configurations}


def confirm_stage(outcomes: list[TrialOutcome], space: StudySpace, search_settings: TrialSettings) -> ConfirmStage:
    """The confirmation a finished search (`outcomes` of its trials) calls for."""
    chosen = choose_confirmed(search_results(outcomes, space, search_settings), space.confirm.top, space.mode,
                              space.confirm.against)
    return ConfirmStage(tuple(chosen), replace(search_settings, base_seed=confirm_base_seed(space)),
                        tuple(confirm_seeds(space)))


def confirm_settings_param(space: StudySpace) -> dict[str, Any]:
    """The parent run's record of `confirm:`."""
    return {"top": space.confirm.top, "seeds": space.confirm.seeds, "against": space.confirm.against}


def check_resume(parent, space: StudySpace) -> None:
    """UsageError (one line) when `--resume` names a study whose two-stage design the space does not match."""
    import json

    two_stage = parent.data.tags.get(names.DESIGN_TAG) == names.DESIGN_SEARCH_CONFIRM
    if two_stage != (space.confirm is not None):
        started = "with" if two_stage else "without"
        raise UsageError(f"--resume: study {parent.info.run_name} was started {started} a confirmation stage "
                         f"(confirm:), but {space.path.name} {'has none' if two_stage else 'has one'}")
    logged = parent.data.params.get(CONFIRM_PARAM)
    if two_stage and logged is not None and json.loads(logged) != json.loads(json.dumps(confirm_settings_param(space))):
        raise UsageError(f"--resume: study {parent.info.run_name} was started with confirm: {logged}, but "
                         f"{space.path.name} now says {json.dumps(confirm_settings_param(space))}")
