"""Run names spell the remedies' keys, short, when they vary."""
from study.run_names import naming_parameters, trial_run_name


def test_remedy_keys_are_spelled_short_when_they_vary():
    grid = [{"d_width": 32, "d_spectral_norm": False, "r1_gamma": 0.0},
            {"d_width": 32, "d_spectral_norm": True, "r1_gamma": 0.0},
            {"d_width": 32, "d_spectral_norm": False, "r1_gamma": 1.0}]
    searched = naming_parameters([{"arch": "dcgan", "g_width": 8, "k": 1, **point} for point in grid])
    assert searched == ("d_spectral_norm", "r1_gamma")
    params = {"arch": "dcgan", "g_width": 8, "d_width": 32, "d_spectral_norm": True, "r1_gamma": 0.0,
              "g_ema_decay": 0.999, "seed": 2}
    assert trial_run_name(params, [*searched, "g_ema_decay"]) == "dcgan g8 d32 k1 sn_d=on r1=0 ema=0.999 s2"
