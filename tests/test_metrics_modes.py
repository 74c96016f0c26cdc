"""Mode counting on Stacked MNIST against constructed labels, closed forms and PacGAN's own counting loop."""
import itertools
import math
from math import log

import numpy as np
import pytest
import torch

from gan.metrics.modes import expected_modes_covered, mode_numbers, modes_covered_and_kl


def every_triple(times: int) -> torch.Tensor:
    """Each of the 1,000 digit triples `times` times: N x 3 channel labels."""
    return torch.tensor(list(itertools.product(range(10), repeat=3))).repeat(times, 1)


def pacgan_count(labels: np.ndarray) -> tuple[int, float]:
    """PacGAN's log_metrics (stacked_MNIST_experiments/.../model.py): a dict of label tuples, p over the modes
    seen padded with zeros to 1,000, KL(p ‖ 1/1000) summed over p != 0."""
    counts = {}
    for result in map(tuple, labels):
        counts[result] = counts.get(result, 0) + 1
    p = np.zeros(1000)
    p[:len(counts)] = list(counts.values())
    p = p / p.sum()
    return len(counts), sum(pi * log(pi / (1 / 1000)) for pi in p if pi != 0)


def test_every_mode_equally_often_covers_1000_with_zero_kl():
    covered, kl = modes_covered_and_kl(every_triple(26))  # 26,000 samples, as the protocol
    assert covered == 1000 and kl == pytest.approx(0.0, abs=1e-12)


def test_one_mode_covers_1_with_kl_ln_1000():
    covered, kl = modes_covered_and_kl(torch.tensor([[3, 1, 4]]).repeat(26_000, 1))
    assert covered == 1 and kl == pytest.approx(math.log(1000), rel=1e-12)


def test_k_equally_likely_modes_give_kl_ln_1000_over_k():
    labels = every_triple(1)[:250].repeat(4, 1)  # 250 modes, 4 samples each
    covered, kl = modes_covered_and_kl(labels)
    assert covered == 250 and kl == pytest.approx(math.log(1000 / 250), rel=1e-12)


def test_matches_pacgans_counting_on_skewed_random_labels():
    rng = np.random.default_rng(0)
    # a generator that favours low digits in channel 0 and never draws 9 in channel 2
    labels = np.stack([rng.choice(10, 5000, p=np.arange(10, 0, -1) / 55), rng.integers(0, 10, 5000),
                       rng.integers(0, 9, 5000)], axis=1)
    covered, kl = modes_covered_and_kl(torch.from_numpy(labels))
    expected_covered, expected_kl = pacgan_count(labels)
    assert covered == expected_covered and covered <= 900
    assert kl == pytest.approx(expected_kl, rel=1e-12)


def test_a_mode_is_covered_by_a_single_sample():
    labels = torch.cat([torch.tensor([[0, 0, 0]]).repeat(999, 1), torch.tensor([[9, 9, 9]])])
    assert modes_covered_and_kl(labels)[0] == 2


def test_mode_numbers_read_the_channels_as_digits():
    assert mode_numbers(torch.tensor([[3, 1, 4], [0, 0, 9], [9, 0, 0]])).tolist() == [314, 9, 900]
    assert mode_numbers(torch.tensor([[7]])).tolist() == [7]  # one channel: the class itself
    with pytest.raises(ValueError, match=r"\[0, 10\)"):
        mode_numbers(torch.tensor([[1, 10, 2]]))


def test_expected_coverage_of_a_uniform_generator():
    assert expected_modes_covered(0, 1000) == 0 and expected_modes_covered(1, 1000) == pytest.approx(1.0)
    assert expected_modes_covered(26_000, 1000) == pytest.approx(1000, abs=1e-6)
    # simulation: uniform draws of 2,000 samples cover 1000·(1 − 0.999^2000) ≈ 864.9 modes on average
    rng = np.random.default_rng(1)
    simulated = [modes_covered_and_kl(torch.from_numpy(rng.integers(0, 10, (2000, 3))))[0] for _ in range(40)]
    expected = expected_modes_covered(2000, 1000)
    assert expected == pytest.approx(1000 * (1 - 0.999**2000), rel=1e-12)
    assert abs(np.mean(simulated) - expected) < 4 * np.std(simulated) / np.sqrt(len(simulated))
