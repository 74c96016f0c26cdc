"""An ablation study end to end: real Ray Tune trials, a real (sqlite) MLflow store."""
import json

import pytest
from mlflow.tracking import MlflowClient

from gan import names
from processes import run_study, study_runs

pytestmark = pytest.mark.slow

ABLATION_SPACE = """
name: tiny_ablation
dataset: mnist5k
fixed: {arch: mlp, z_dim: 8, g_width: 16, d_width: 16, g_depth: 1, d_depth: 1, batch_size: 32}
arms:
  recipe: {}
  wide D: {d_width: 32}
reference_arm: wide D
scheduler: fifo
metric: pixel_fd
mode: min
seeds_per_config: 1
budget: {steps: 20, eval_every: 10}
evaluation: {num_samples: 100, metrics: [pixel_fd], final: false}
resources: {cpus_per_trial: 1, max_concurrent: 2}
"""


def test_an_ablation_study_tags_its_design_and_logs_each_trial_s_arm(tmp_path):
    (tmp_path / "ablation.yaml").write_text(ABLATION_SPACE)
    run_study(tmp_path, str(tmp_path / "ablation.yaml"))
    parents, children = study_runs(MlflowClient(f"sqlite:///{tmp_path}/mlflow.db"))
    assert len(parents) == 1 and len(children) == 2
    parent = parents[0].data
    assert parent.tags[names.DESIGN_TAG] == names.DESIGN_ABLATION and parent.tags[names.REFERENCE_ARM_TAG] == "wide D"
    assert json.loads(parent.params["arms"]) == {"recipe": {}, "wide D": {"d_width": 32}}
    by_arm = {child.data.params[names.ARM]: child for child in children}
    assert set(by_arm) == {"recipe", "wide D"}
    assert by_arm["recipe"].info.run_name == "mlp g16 d16 k1 [recipe] s0"
    assert by_arm["wide D"].info.run_name == "mlp g16 d32 k1 [wide D] s0"
    assert by_arm["wide D"].data.params["d_width"] == "32" and by_arm["recipe"].data.params["d_width"] == "16"
    assert by_arm["recipe"].data.tags[names.CONFIG_ID_TAG] != by_arm["wide D"].data.tags[names.CONFIG_ID_TAG]
    assert all(child.data.tags[names.STATUS_TAG] == names.COMPLETED for child in children)
