"""The report's budget row and the parent run's description say the training budget in words, not JSON."""
import json

from gan.run import Budget
from reports.budget_text import budget_param, budget_text
from reports.load import load_study
from reports.tables import header
from study_store import Trial, fill_study

BALANCE = Budget(steps=2500, epochs=None, eval_every=400,
                 per_arch=(("mlp", Budget(steps=10_000, epochs=None, eval_every=1250)),))


def test_a_budget_of_its_own_names_its_architecture_and_the_study_budget_every_other_one():
    assert budget_text(budget_param(BALANCE)) == \
        "MLP 10,000 generator steps, evaluated every 1,250; DCGAN 2,500, every 400"


def test_one_budget_for_every_architecture_in_steps_or_in_epochs():
    assert budget_text(budget_param(Budget(steps=40, epochs=None, eval_every=20))) == \
        "40 generator steps, evaluated every 20"
    assert budget_text(budget_param(Budget(steps=None, epochs=20, eval_every=0.5))) == \
        "20 epochs, evaluated every 0.5 epochs"
    # a unit that changes between architectures is spelled out again
    mixed = Budget(steps=None, epochs=2, eval_every=1,
                   per_arch=(("mlp", Budget(steps=300, epochs=None, eval_every=100)),))
    assert budget_text(budget_param(mixed)) == "MLP 300 generator steps, evaluated every 100; DCGAN 2 epochs, " \
                                               "evaluated every 1 epoch"


def test_the_parameter_as_logged_reads_back_and_a_missing_one_is_a_question_mark():
    assert budget_text(json.dumps(budget_param(BALANCE))) == budget_text(budget_param(BALANCE))
    assert budget_text(None) == "?"


def test_the_report_header_budget_row_is_the_text(tmp_path):
    trial = Trial(params={"arch": "mlp", "g_width": 8, "d_width": 8}, final={"fid": 10.0})
    uri, _, parent_id = fill_study(tmp_path, "budget", [trial], with_grids=False,
                                   parent_params={"budget": json.dumps(budget_param(BALANCE))})
    rows = dict(header(load_study(uri, "budget", parent_id)))
    assert rows["budget"] == "MLP 10,000 generator steps, evaluated every 1,250; DCGAN 2,500, every 400"
