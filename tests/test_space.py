import pytest

from study.space import SPACE_DIR, SpaceError, load_space, resolve_space_path

VALID = """
dataset: mnist5k
fixed: {z_dim: 16}
search_space:
  arch: {grid: [mlp, dcgan]}
  k: {grid: [1, 5]}
  g_width:
    - {grid: [32, 256], when: {arch: mlp}}
    - {grid: [8], when: {arch: dcgan}}
  d_batchnorm: {grid: [true, false], when: {arch: dcgan}}
search: grid
scheduler: fifo
seeds_per_config: 3
budget: {steps: 100, eval_every: 50}
"""


def _write(tmp_path, text, name="space.yaml"):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_grid_enumerates_conditional_parameters_and_seeds(tmp_path):
    space = load_space(_write(tmp_path, VALID))
    variants = space.grid_variants()
    mlp = [v for v in variants if v["arch"] == "mlp"]
    dcgan = [v for v in variants if v["arch"] == "dcgan"]
    assert len(mlp) == 2 * 2 and all("d_batchnorm" not in v for v in mlp)  # k x g_width
    assert len(dcgan) == 2 * 1 * 2 and all(v["g_width"] == 8 for v in dcgan)  # k x g_width x d_batchnorm
    assert space.trial_count() == 8 * 3
    assert space.name == "space" and space.search == "grid" and space.budget.evaluations == 2


def test_shipped_spaces_all_parse_and_resolve_by_bare_name(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # from any working directory
    shipped = sorted(p.name for p in SPACE_DIR.glob("*.yaml"))
    assert {"balance.yaml", "learning_rates.yaml", "k_steps.yaml", "dcgan.yaml", "smoke.yaml"} <= set(shipped)
    for name in shipped:
        assert resolve_space_path(name) == SPACE_DIR / name
        load_space(name)
    assert resolve_space_path("smoke") == SPACE_DIR / "smoke.yaml"


@pytest.mark.parametrize("text,message", [
    ("dataset: [unclosed", "not valid YAML at line 1"),
    ("- just\n- a list", "must be a YAML mapping"),
    ("datset: mnist5k\nbudget: {steps: 1, eval_every: 1}", "unknown key 'datset' in the space (did you mean 'dataset'?)"),
    ("dataset: mnist6k\nbudget: {steps: 1, eval_every: 1}", "dataset must be one of"),
    ("fixed: {lr_gen: 0.1}\nbudget: {steps: 1, eval_every: 1}", "unknown key 'lr_gen' in fixed (did you mean 'lr_g'?)"),
    ("search_space: {lr_g: {logunif: [1, 2]}}\nbudget: {steps: 1, eval_every: 1}", "did you mean 'loguniform'"),
    ("search_space: {lr_g: {uniform: [0.1, 0.01]}}\nbudget: {steps: 1, eval_every: 1}", "low 0.1 > high 0.01"),
    ("search_space: {lr_g: {loguniform: [0, 0.01]}}\nbudget: {steps: 1, eval_every: 1}", "bounds must be > 0 on a log scale"),
    ("search_space: {arch: {choice: [mlp, resnet]}}\nbudget: {steps: 1, eval_every: 1}", "arch must be one of mlp, dcgan"),
    ("search_space: {k: {int: [1, 5]}}\nsearch: grid\nbudget: {steps: 1, eval_every: 1}", "search: grid needs choice or grid values"),
    ("search_space: {k: {grid: [1, 5]}}\nbudget: {steps: 1, eval_every: 1}", "'k' uses grid, which needs search: grid"),
    ("search_space: {k: {qrandint: [1, 6, 2]}}\nbudget: {steps: 1, eval_every: 1}", "multiple of q"),
    ("search_space: {ngf: {choice: [1]}}\nbudget: {steps: 1, eval_every: 1}", "unknown key 'ngf' in search_space"),
    ("search_space: {d_batchnorm: {choice: [true], when: {arch: dcgan}}}\nbudget: {steps: 1, eval_every: 1}",
     "condition on 'arch', which is not searched before it"),
    ("budget: {steps: 10}", "budget needs eval_every"),
    ("budget: {steps: 10, epochs: 1, eval_every: 1}", "exactly one of steps or epochs"),
    ("scheduler: hyperband\nbudget: {steps: 1, eval_every: 1}", "scheduler must be one of asha, pbt, fifo"),
    ("metric: fdi\nbudget: {steps: 1, eval_every: 1}", "metric 'fdi' is not reported"),
    ("resources: {cpus_per_trial: 0}\nbudget: {steps: 1, eval_every: 1}", "cpus_per_trial must be > 0"),
    ("evaluation: {metrics: [inception_scor]}\nbudget: {steps: 1, eval_every: 1}", "evaluation.metrics entry must be one of"),
    ("scheduler: pbt\nsearch: random\nsearch_space: {g_width: {choice: [8, 16]}}\nbudget: {steps: 1, eval_every: 1}",
     "pbt needs at least one searched parameter it can mutate"),
])
def test_bad_spaces_give_one_line_naming_the_file_and_problem(tmp_path, text, message):
    path = _write(tmp_path, text)
    with pytest.raises(SpaceError) as info:
        load_space(path)
    assert message in str(info.value)
    assert str(path) in str(info.value) and "\n" not in str(info.value)


def test_missing_space_file_lists_the_shipped_ones():
    with pytest.raises(SpaceError, match="no such file, and no shipped space of that name .*balance.yaml"):
        resolve_space_path("nonexistent.yaml")
    with pytest.raises(SpaceError, match="no such file"):
        resolve_space_path("/tmp/definitely/not/here.yaml")


def run_cli(args, capsys) -> tuple[int, list[str]]:
    """`python -m study.run ARGS` in this process: (exit status, lines on stderr)."""
    from study.run import main

    capsys.readouterr()
    status = main(args)
    return status, capsys.readouterr().err.strip().splitlines()


@pytest.mark.parametrize("args,message", [
    (["--space", "missing.yaml"], "no such file"),
    (["--space", "BAD"], "unknown key 'schedular'"),
    (["--space", "GOOD", "--address", "127.0.0.1:1"], "Ray cluster at 127.0.0.1:1 is unreachable"),
    (["--space", "GOOD", "--tracking-uri", "http://127.0.0.1:1"], "MLflow tracking server http://127.0.0.1:1 is unreachable"),
    (["--space", "GOOD", "--tracking-uri", "/tmp/mlruns"], "plain file stores are refused"),
    (["--space", "GOOD", "--num-samples", "0"], "--num-samples must be >= 1"),
    (["--space", "GOOD", "--gpus-per-trial", "1.5"], "gpus_per_trial must be a fraction in [0, 1] or a whole number"),
    (["--space", "CIFAR"], "data set 'cifar10' not found under"),
    (["--space", "GOOD", "--resume"], "--resume: no MLflow store at sqlite:///"),
])
def test_cli_bad_input_exits_2_with_one_line_before_ray_starts(tmp_path, monkeypatch, capsys, args, message):
    import ray

    monkeypatch.chdir(tmp_path)
    _write(tmp_path, VALID, "GOOD")
    _write(tmp_path, "schedular: asha\nbudget: {steps: 1, eval_every: 1}\n", "BAD")
    _write(tmp_path, f"dataset: cifar10\ndata_root: {tmp_path / 'data'}\nbudget: {{steps: 1, eval_every: 1}}\n", "CIFAR")
    args = [str(tmp_path / a) if a in ("GOOD", "BAD", "CIFAR") else a for a in args]
    status, lines = run_cli(args, capsys)
    assert status == 2, lines
    assert len(lines) == 1 and message in lines[0], lines
    assert not ray.is_initialized()
    assert not (tmp_path / "ray_results").exists() and not (tmp_path / "mlflow.db").exists()
