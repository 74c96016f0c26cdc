"""The names study/ writes and reports/ reads come from gan.names, and match what a run reports."""
import ast
from pathlib import Path

import torch

from gan import names
from gan.evaluation import METRIC_NAMES, METRICS, evaluate, reported_metric_names

ROOT = Path(__file__).resolve().parents[1]


def test_every_metric_the_report_reads_is_a_name_a_run_reports():
    from reports import metrics_read

    reported = set(names.EVALUATION_METRICS) | set(names.TRAINING_METRICS)
    assert metrics_read() <= reported, metrics_read() - reported


def test_evaluation_reports_exactly_the_names_it_declares(mnist5k, quick_classifier):
    class Replay:  # a "generator" that replays real digits, with D's outputs fixed
        def sample(self, num_samples, seed):
            return mnist5k.train.images[:num_samples]

        def discriminator_probabilities(self, images):
            return torch.full((len(images),), 0.5)

        def training_reals(self, num_images):
            return mnist5k.train.images[:num_images]

    values = evaluate(Replay(), mnist5k.validation, mnist5k.validation, METRIC_NAMES, 300, 0, quick_classifier, 10)
    declared = {output for metric in METRICS.values() for output in metric.outputs}
    assert set(values) == declared and declared <= set(names.EVALUATION_METRICS)
    assert set(reported_metric_names(METRIC_NAMES)) == declared | set(names.TRAINING_METRICS)


def _string_literals(path: Path) -> set[str]:
    return {node.value for node in ast.walk(ast.parse(path.read_text()))
            if isinstance(node, ast.Constant) and isinstance(node.value, str)}


def test_no_module_outside_gan_names_spells_a_metric_or_tag_name():
    spelled_once = set(names.EVALUATION_METRICS) | set(names.TRAINING_METRICS) | {
        names.ROLE_TAG, names.STATUS_TAG, names.REGIME_TAG, names.TRIAL_ID_TAG, names.PARENT_TAG,
        names.FINAL_PREFIX, names.REFERENCE_PREFIX, names.CAPACITY_RATIO_LOG2}
    for package in ("gan", "study", "reports"):
        for path in (ROOT / package).rglob("*.py"):
            if path.name == "names.py":
                continue
            # metric names double as gan.evaluation's metric keys ("fid", "parzen", ...), which are not metrics
            spelled = _string_literals(path) & spelled_once - set(METRIC_NAMES)
            assert not spelled, f"{path.relative_to(ROOT)} spells {sorted(spelled)}: import them from gan.names"
