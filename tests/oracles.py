"""Independent references the statistics tests check the reports against: written plainly, by enumeration or by
hand, sharing no code with reports/stats.py."""
from __future__ import annotations

import itertools


def brute_force_two_sample_p(a, b) -> tuple[float, int]:
    """(p, number of splits): every split of the pooled values into groups of len(a) and len(b), the share whose
    |difference of means| reaches the observed one (two-sided)."""
    a, b = [float(x) for x in a], [float(x) for x in b]
    pooled = a + b
    observed = abs(sum(a) / len(a) - sum(b) / len(b))
    hits = total = 0
    for chosen in itertools.combinations(range(len(pooled)), len(a)):
        arm_a = [pooled[i] for i in chosen]
        arm_b = [pooled[i] for i in range(len(pooled)) if i not in chosen]
        hits += abs(sum(arm_a) / len(arm_a) - sum(arm_b) / len(arm_b)) >= observed - 1e-12
        total += 1
    return hits / total, total


def holm_by_hand(p: list[float]) -> list[float]:
    """Holm (1979): sort, multiply the i-th smallest by (m − i + 1), carry the running maximum, cap at 1."""
    order = sorted(range(len(p)), key=lambda i: p[i])
    adjusted, running = [0.0] * len(p), 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (len(p) - rank) * p[i]))
        adjusted[i] = running
    return adjusted
