"""A trial's outcome: failure first, convergence only for runs that learned.

    diverged         a loss or parameter became non-finite (gan.convergence);
    failed           trained to the end but collapsed or stuck, decided from its own final metrics:
                     - final FID above FAILED_FID_SHARE (10%) of FID(test split, uniform noise): its samples are
                       closer to noise than a tenth of the way from data (on mnist5k: noise 1,549, every run that
                       covered all 10 classes scored < 110, and the collapsed ones 300-1,600);
                     - or fewer than FAILED_CLASSES_SHARE (90%) of the data's classes covered (a dropped digit);
                     - or, on Stacked MNIST, fewer than FAILED_MODES_SHARE (half) of its modes covered (PacGAN's
                       unpacked DCGAN at D = ¼ G covers ~30 of 1,000);
                     - or D at a dead equilibrium: D(x) ≥ 0.99 on held-out reals and D(G(z)) ≤ 0.01 (D rejects
                       every fake with certainty: the generator's gradient vanishes and training has stopped);
    converged        the validation score improved < 10% over the last quarter (gan.convergence);
    still_improving  otherwise.

A collapsed run also stops improving, so without the failure rule it would count as converged. Each rule reads
only metrics the run has; a rule whose metric is missing does not fire.
"""
from __future__ import annotations

import math

from gan import names
from gan.convergence import CONVERGED, DIVERGED, STILL_IMPROVING

FAILED = "failed"
OUTCOMES = (FAILED, DIVERGED, CONVERGED, STILL_IMPROVING)
FAILED_FID_SHARE = 0.10
FAILED_CLASSES_SHARE = 0.90
FAILED_MODES_SHARE = 0.50
DEAD_D_REAL, DEAD_D_FAKE = 0.99, 0.01


def failure_reason(final: dict[str, float], fid_noise: float | None, num_classes: int,
                   num_modes: int | None = None) -> str | None:
    """Why a run that trained to the end failed (one line), or None. `final`: its final metrics, unprefixed."""
    fid = final.get(names.FID)
    if fid is not None and fid_noise and math.isfinite(fid_noise) and (not math.isfinite(fid)
                                                                       or fid > FAILED_FID_SHARE * fid_noise):
        return f"final FID {fid:.4g} > {FAILED_FID_SHARE:g} x FID(test, noise) {fid_noise:.4g}"
    classes = final.get(names.CLASSES_COVERED)
    if classes is not None and classes < FAILED_CLASSES_SHARE * num_classes:
        return f"{classes:g} of {num_classes} classes covered"
    modes = final.get(names.MODES_COVERED)
    if modes is not None and num_modes and modes < FAILED_MODES_SHARE * num_modes:
        return f"{modes:g} of {num_modes} modes covered"
    d_real, d_fake = final.get(names.EVAL_D_REAL), final.get(names.EVAL_D_FAKE)
    if d_real is not None and d_fake is not None and d_real >= DEAD_D_REAL and d_fake <= DEAD_D_FAKE:
        return f"D at a dead equilibrium: D(x) = {d_real:.3f}, D(G(z)) = {d_fake:.3f}"
    return None


def trial_outcome(convergence: str, final: dict[str, float] | None, fid_noise: float | None, num_classes: int,
                  num_modes: int | None = None) -> tuple[str, str | None]:
    """(outcome, reason): `convergence` is gan.convergence's label, `final` the final metrics (None before the
    final evaluation: the failure rule needs them)."""
    if convergence == DIVERGED:
        return DIVERGED, "a loss or parameter became non-finite"
    if final is not None:
        reason = failure_reason(final, fid_noise, num_classes, num_modes)
        if reason is not None:
            return FAILED, reason
    return convergence, None
