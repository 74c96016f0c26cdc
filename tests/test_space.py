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
    # a repeated key: PyYAML would keep the last value silently
    ("search: grid\nsearch_space:\n  k: {grid: [1, 2]}\n  k: {grid: [5]}\nbudget: {steps: 1, eval_every: 1}",
     "not valid YAML at line 4: key 'k' repeated (first at line 3)"),
    ("budget: {steps: 1, eval_every: 1}\nseed: 1\nseed: 2", "not valid YAML at line 3: key 'seed' repeated (first at line 2)"),
    # every value of a choice and both bounds of every range, checked against the parameter's domain
    ("search_space: {d_dropout: {uniform: [0.1, 1.5]}}\nbudget: {steps: 1, eval_every: 1}",
     "search_space.d_dropout.uniform high bound 1.5: d_dropout must be in [0, 1), got 1.5"),
    ("search_space: {d_dropout: {uniform: [-0.5, 0.5]}}\nbudget: {steps: 1, eval_every: 1}",
     "search_space.d_dropout.uniform low bound -0.5: d_dropout must be in [0, 1)"),
    ("search_space: {lr_g: {loguniform: [1.0e-4, .inf]}}\nbudget: {steps: 1, eval_every: 1}", "high bound inf: lr_g must be > 0"),
    ("search_space: {k: {choice: [1, 2, 0]}}\nbudget: {steps: 1, eval_every: 1}", "k.choice value 0: k must be >= 1, got 0"),
    ("search_space: {k: {int: [0, 100000]}}\nbudget: {steps: 1, eval_every: 1}", "k.int low bound 0: k must be >= 1"),
    # a small integer range is checked value by value: momentum_ramp_end is 0 or above momentum_ramp_start
    ("fixed: {momentum_ramp_start: 3}\nsearch_space: {momentum_ramp_end: {int: [0, 6]}}\nbudget: {steps: 1, eval_every: 1}",
     "momentum_ramp_end.int value 1: momentum_ramp_end must be > momentum_ramp_start (3) or 0"),
    ("fixed: {momentum_ramp_start: 4}\nsearch_space: {momentum_ramp_end: {qrandint: [0, 8, 2]}}\nbudget: {steps: 1, eval_every: 1}",
     "momentum_ramp_end.qrandint value 2:"),
    ("search_space: {k: {uniform: [1, 5]}}\nbudget: {steps: 1, eval_every: 1}", "k is an integer; use int or qrandint"),
    # with the fixed values: simultaneous updates need k = 1
    ("fixed: {updates: simultaneous}\nsearch_space: {k: {choice: [1, 2]}}\nbudget: {steps: 1, eval_every: 1}",
     "k.choice value 2: updates: simultaneous makes one D and one G update per minibatch: k must be 1"),
    # Tune's num_samples would repeat the grid: identical trials with our explicit seeds
    ("search: grid\nnum_samples: 3\nsearch_space: {k: {grid: [1, 2]}}\nbudget: {steps: 1, eval_every: 1}",
     "num_samples does not apply to search: grid"),
    # an ablation's arms: a non-empty mapping of names to overrides of `fixed`, each a valid configuration
    ("arms: {}\nbudget: {steps: 1, eval_every: 1}", "arms must be a non-empty mapping of arm names to overrides"),
    ("arms: [recipe]\nbudget: {steps: 1, eval_every: 1}", "arms must be a non-empty mapping of arm names to overrides"),
    ("arms: {1: {}}\nbudget: {steps: 1, eval_every: 1}", "arms: an arm's name must be a non-empty string, got 1"),
    ("arms: {a: [g_batchnorm]}\nbudget: {steps: 1, eval_every: 1}", "'arms.a' must be a mapping"),
    ("arms: {a: {}, no BN: {g_batchnom: false}}\nbudget: {steps: 1, eval_every: 1}",
     "unknown key 'g_batchnom' in arms.no BN (did you mean 'g_batchnorm'?)"),
    ("arms: {a: {}, b: {leaky_slope: -0.2}}\nbudget: {steps: 1, eval_every: 1}",
     "arms.b: leaky_slope must be >= 0, got -0.2"),
    ("arms: {a: {}, b: {g_batchnorm: 0}}\nbudget: {steps: 1, eval_every: 1}", "arms.b: g_batchnorm must be true or false"),
    ("arms: {a: {}, b: {seed: 3}}\nbudget: {steps: 1, eval_every: 1}", "arms.b: an arm cannot set seed"),
    ("fixed: {beta1: 0.5}\narms: {a: {}, b: {beta1: 0.5}}\nbudget: {steps: 1, eval_every: 1}",
     "arms 'a' and 'b' make the same configuration"),
    ("arms:\n  a: {}\n  a: {k: 2}\nbudget: {steps: 1, eval_every: 1}", "not valid YAML at line 3: key 'a' repeated"),
    ("arms: {a: {}, b: {k: 2}}\nreference_arm: c\nbudget: {steps: 1, eval_every: 1}",
     "reference_arm 'c' is not an arm (arms: a, b)"),
    ("reference_arm: a\nbudget: {steps: 1, eval_every: 1}", "reference_arm names an arm, but the space has no arms"),
    ("arms: {a: {}, b: {k: 2}}\nsearch: optuna\nsearch_space: {lr_g: {choice: [0.001]}}\nbudget: {steps: 1, eval_every: 1}",
     "arms need search: grid (every arm runs on every seed), got search: optuna"),
    ("arms: {a: {}, b: {k: 2}}\nsearch_space: {k: {grid: [1, 3]}}\nbudget: {steps: 1, eval_every: 1}",
     "arms.b overrides 'k', which search_space searches"),
    # each arm with each grid point: simultaneous updates need k = 1
    ("arms: {a: {}, b: {updates: simultaneous}}\nsearch_space: {k: {grid: [1, 2]}}\nbudget: {steps: 1, eval_every: 1}",
     "arms.b with grid point {'k': 2}: updates: simultaneous makes one D and one G update per minibatch"),
])
def test_bad_spaces_give_one_line_naming_the_file_and_problem(tmp_path, text, message):
    path = _write(tmp_path, text)
    with pytest.raises(SpaceError) as info:
        load_space(path)
    assert message in str(info.value)
    assert str(path) in str(info.value) and "\n" not in str(info.value)


def test_values_valid_only_with_their_conditions_or_other_searched_values_are_accepted(tmp_path):
    # g_depth 0 is a valid DCGAN depth (mlp needs >= 1): accepted under its `when`, and when arch is searched as dcgan
    conditional = _write(tmp_path, "search_space:\n  arch: {choice: [mlp, dcgan]}\n"
                                   "  g_depth: {choice: [0, 1], when: {arch: dcgan}}\nbudget: {steps: 1, eval_every: 1}")
    assert load_space(conditional).params[1].args == (0, 1)
    only_dcgan = _write(tmp_path, "search_space:\n  arch: {choice: [dcgan]}\n  g_depth: {choice: [0]}\n"
                                  "budget: {steps: 1, eval_every: 1}", "dcgan.yaml")
    assert load_space(only_dcgan).param_names == ("arch", "g_depth")
    # a YAML merge key may override on purpose: not a repeated key
    merged = _write(tmp_path, "budget: {<<: {steps: 5, eval_every: 1}, steps: 2}\n", "merged.yaml")
    assert load_space(merged).budget.steps == 2


def test_the_storage_probe_leaves_nothing_behind(tmp_path):
    from study.preflight import check_storage

    check_storage(str(tmp_path / "new" / "ray_results"))  # created, written, removed again
    assert not (tmp_path / "new").exists()
    (tmp_path / "existing").mkdir()
    check_storage(str(tmp_path / "existing"))
    assert list((tmp_path / "existing").iterdir()) == []


@pytest.mark.parametrize("content,message", [
    (b"\x7fELF\x02\x01\x01\x00\x00\x00", "not a text file (a NUL byte at offset 7)"),
    ("dataset: mnist5k  # caf\u00e9\n".encode("latin-1"), "not UTF-8 text (byte 0xe9 at offset 23)"),
    (b"dataset: mnist5k\x07\n", "not valid YAML: unacceptable character #x0007"),
])
def test_binary_or_non_utf8_space_files_give_one_line(tmp_path, content, message):
    path = tmp_path / "space.yaml"
    path.write_bytes(content)
    with pytest.raises(SpaceError) as info:
        load_space(path)
    assert message in str(info.value) and str(path) in str(info.value) and "\n" not in str(info.value)


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
    (["--space", "BINARY"], "not a text file (a NUL byte at offset 1)"),
    (["--space", "GOOD", "--num-samples", "4"], "--num-samples does not apply to search: grid"),
    (["--space", "GOOD", "--storage-path", "A_FILE/ray"], "A_FILE is a file, not a folder"),
    (["--space", "GOOD", "--storage-path", "/proc/gan-study-results"], "--storage-path /proc/gan-study-results cannot be written"),
])
def test_cli_bad_input_exits_2_with_one_line_before_ray_starts(tmp_path, monkeypatch, capsys, args, message):
    import ray

    monkeypatch.chdir(tmp_path)
    _write(tmp_path, VALID, "GOOD")
    _write(tmp_path, "schedular: asha\nbudget: {steps: 1, eval_every: 1}\n", "BAD")
    _write(tmp_path, f"dataset: cifar10\ndata_root: {tmp_path / 'data'}\nbudget: {{steps: 1, eval_every: 1}}\n", "CIFAR")
    (tmp_path / "BINARY").write_bytes(b"\x89\x00PNG")
    (tmp_path / "A_FILE").write_text("not a folder")
    args = [str(tmp_path / a) if a in ("GOOD", "BAD", "CIFAR", "BINARY") else a.replace("A_FILE", str(tmp_path / "A_FILE"))
            for a in args]
    status, lines = run_cli(args, capsys)
    assert status == 2, lines
    assert len(lines) == 1 and message in lines[0], lines
    assert not ray.is_initialized()
    assert not (tmp_path / "ray_results").exists() and not (tmp_path / "mlflow.db").exists()


def test_a_per_architecture_budget_is_parsed_and_checked(tmp_path):
    text = VALID.replace("budget: {steps: 100, eval_every: 50}",
                         "budget: {steps: 100, eval_every: 50, per_arch: {mlp: {steps: 400, eval_every: 50}}}")
    space = load_space(_write(tmp_path, text))
    assert space.budget.for_arch("mlp").steps == 400 and space.budget.for_arch("dcgan").steps == 100
    assert space.budget.evaluations == 8
    for bad, message in [("per_arch: {gan: {steps: 4, eval_every: 2}}", "unknown key 'gan' in budget.per_arch"),
                         ("per_arch: {mlp: {steps: 4}}", "budget.per_arch.mlp needs eval_every"),
                         ("per_arch: {mlp: {steps: 4, eval_every: 2, per_arch: {}}}",
                          "unknown key 'per_arch' in budget.per_arch.mlp")]:
        broken = VALID.replace("budget: {steps: 100, eval_every: 50}", f"budget: {{steps: 100, eval_every: 50, {bad}}}")
        with pytest.raises(SpaceError, match=message.replace("(", r"\(")):
            load_space(_write(tmp_path, broken))
