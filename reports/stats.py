"""Statistics for studies with few seeds. Pure functions on arrays; no MLflow, no pandas.

What a study of GAN trials can support is set by its number of seeds n, so every function here is exact or
calibrated at small n (REFERENCE.md, "Statistics for studies with few seeds"):

- `t_interval`: mean ± t_{1−α/2, n−1} · s/√n, the interval of a mean over seeds (normal errors assumed;
  95% coverage at any n ≥ 2 on normal data). With 3 seeds t = 4.30: wide, which is what three seeds can tell.
- `positive_interval`: for a positive metric (FID): the geometric mean with the t-interval of log values,
  exponentiated, so the interval stays above 0 and fits FID's spread, which grows with its level.
- `bounded_interval`: for a metric in [low, high] (classes covered, coverage): the t-interval on the logit
  of the rescaled values, mapped back, so it stays in the domain.
- `sign_flip_p`: the exact two-sided sign-flip (permutation) test of paired differences: under H0 each
  difference is symmetric about 0, so all 2^n sign assignments are equally likely; p is the share of them
  whose |sum| is at least the observed one. Its smallest value is 2/2^n (`min_exact_p`): 0.25 at n = 3,
  0.031 at n = 6. No normality assumed.
- `paired_log_ratio`: the primary comparison of two configurations: per seed log(treated) − log(control);
  the ratio exp(mean), its paired t-interval, the exact sign-flip p of the same differences, and how many
  seeds point the effect's way.
- `holm`: Holm's step-down adjustment of a family of p-values (family-wise error ≤ α).
- `clopper_pearson`: the exact binomial interval of a failure rate.
- `one_way_variance`: a one-way random-effects split of a score's variance into training seed and
  evaluation draw.
- `two_sample_permutation_test`: arms of independent runs: all C(n_a + n_b, n_a) splits of the pooled values
  (Monte Carlo above EXACT_MAX_SPLITS), two-sided on |mean difference|; smallest p 2/C(2n, n) at n vs n
  (`min_two_sample_p`): 0.1 at 3 vs 3, 0.0022 at 6 vs 6. `unpaired_log_ratio`: the ratio of geometric means
  with its Welch interval (`welch_interval`) and that test of the logs.
- `fisher_failures`: Fisher's exact test of two arms' failure counts.
- `interaction_test_2x2`: the two-way analysis of a 2 × 2 factorial on log scores: main effects and the
  interaction as ratios with intervals, F tests, a residual normality check and a Freedman–Lane permutation p.
- `expected_best_of_n` / `expected_best_curve`: the expected best score of n random-search trials (Tang et al.
  2020, without replacement; Dodge et al. 2019, with), with its spread.
- `winners_curse`: each searched configuration's search score beside its confirmed geometric mean.
- `holm_by_family`: Holm within each family of tests, the declared primary one labelled.

The percentile bootstrap is not offered: below about 20 values it covers far less than its nominal level
(75% at n = 3, 84% at n = 5).
"""
from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np

CONFIDENCE = 0.95
ALPHA = 0.05
EXACT_MAX_PAIRS = 16  # up to 2^16 sign assignments enumerated; above, a Monte Carlo estimate
MONTE_CARLO_FLIPS = 100_000
MONTE_CARLO_SEED = 0  # fixed, so a report is reproducible
LOGIT_MARGIN = 0.005  # values at a bound are pulled in by this share of the range before the logit


@dataclass(frozen=True)
class Interval:
    mean: float
    low: float
    high: float
    n: int

    @property
    def excludes_zero(self) -> bool:
        return self.n > 1 and (self.low > 0 or self.high < 0)


def _finite(values) -> np.ndarray:
    array = np.asarray(values, dtype=np.float64).ravel()
    return array[np.isfinite(array)]


def _at_least(statistics: np.ndarray, observed: float, scale: float) -> np.ndarray:
    """statistics ≥ observed, where values equal up to rounding (relative to `scale`) count as equal."""
    return statistics >= observed - 1e-9 * max(1.0, scale)


def _mean(x: np.ndarray) -> float:
    return float(x.mean()) if len(x) else math.nan


def t_quantile(n: int, confidence: float = CONFIDENCE) -> float:
    from scipy.stats import t

    return float(t.ppf(0.5 + confidence / 2, n - 1))


def t_interval(values, confidence: float = CONFIDENCE) -> Interval:
    """Student-t interval of the mean of the finite `values`; NaN bounds for fewer than 2 values."""
    x = _finite(values)
    n, mean = len(x), _mean(x)
    if n < 2:
        return Interval(mean, math.nan, math.nan, n)
    half = t_quantile(n, confidence) * float(x.std(ddof=1)) / math.sqrt(n)
    return Interval(mean, mean - half, mean + half, n)


def positive_interval(values, confidence: float = CONFIDENCE) -> Interval:
    """Geometric mean of positive `values` and exp of the t-interval of their logs (non-positive values dropped)."""
    x = _finite(values)
    x = x[x > 0]
    logs = t_interval(np.log(x), confidence)
    return Interval(math.exp(logs.mean) if logs.n else math.nan, math.exp(logs.low) if logs.n > 1 else math.nan,
                    math.exp(logs.high) if logs.n > 1 else math.nan, logs.n)


def bounded_interval(values, low: float, high: float, confidence: float = CONFIDENCE) -> Interval:
    """Mean of `values` in [low, high] with a t-interval on the logit scale, mapped back into (low, high).

    Values at a bound are pulled LOGIT_MARGIN of the range inside it (the logit of a bound is infinite);
    when every value is the same the interval is that value.
    """
    x = _finite(values)
    n, mean = len(x), _mean(x)
    if n < 2:
        return Interval(mean, math.nan, math.nan, n)
    if np.all(x == x[0]):
        return Interval(mean, float(x[0]), float(x[0]), n)
    span = high - low
    share = np.clip((x - low) / span, LOGIT_MARGIN, 1 - LOGIT_MARGIN)
    logits = t_interval(np.log(share / (1 - share)), confidence)

    def back(logit: float) -> float:
        return low + span / (1 + math.exp(-logit))

    return Interval(mean, back(logits.low), back(logits.high), n)


def min_exact_p(n: int) -> float:
    """The smallest two-sided p the sign-flip test can give with n pairs: every pair on one side."""
    return 2.0 / 2 ** n if n > 0 else 1.0


def seeds_needed(comparisons: int, alpha: float = ALPHA) -> int:
    """The fewest seed pairs with which Holm across `comparisons` tests can reach alpha: 2/2^n < alpha/m."""
    n = 1
    while min_exact_p(n) * max(comparisons, 1) >= alpha:
        n += 1
    return n


def sign_flip_p(differences) -> float:
    """Exact two-sided sign-flip p of the mean of paired `differences` (Monte Carlo above EXACT_MAX_PAIRS).

    p = #{s in {−1, +1}^n : |Σ s_i d_i| ≥ |Σ d_i|} / 2^n. Zero differences count as pairs (they do not change
    the sum under any sign). NaN for no pairs.
    """
    d = _finite(differences)
    n = len(d)
    if n == 0:
        return math.nan
    observed = abs(d.sum())
    scale = float(np.abs(d).sum())  # sums equal up to rounding count as "at least"
    if n <= EXACT_MAX_PAIRS:
        signs = np.array(list(itertools.product((1.0, -1.0), repeat=n)))
        return float(np.mean(_at_least(np.abs(signs @ d), observed, scale)))
    rng = np.random.default_rng(MONTE_CARLO_SEED)
    signs = rng.choice((1.0, -1.0), size=(MONTE_CARLO_FLIPS, n))
    hits = int(np.sum(_at_least(np.abs(signs @ d), observed, scale)))
    return (hits + 1) / (MONTE_CARLO_FLIPS + 1)  # the observed assignment counts (Phipson and Smyth 2010)


def holm(p_values) -> list[float]:
    """Holm (1979) adjusted p-values in the order given: sorted p(1) ≤ … ≤ p(m),
    adjusted p(i) = max_{j ≤ i} min(1, (m − j + 1) p(j)). NaN stays NaN and does not count in m."""
    p = np.asarray(p_values, dtype=np.float64)
    adjusted = np.full(len(p), math.nan)
    finite = np.flatnonzero(np.isfinite(p))
    m = len(finite)
    running = 0.0
    for rank, index in enumerate(finite[np.argsort(p[finite], kind="stable")]):
        running = max(running, min(1.0, (m - rank) * p[index]))
        adjusted[index] = running
    return adjusted.tolist()


@dataclass(frozen=True)
class RatioEffect:
    """treated / control, seed by seed: exp of the mean log ratio, its 95% paired t-interval, the exact p."""

    ratio: float
    low: float
    high: float
    n: int  # seed pairs
    p: float  # exact two-sided sign-flip p of the log ratios
    n_in_direction: int  # pairs whose log ratio has the sign of the mean (for a ratio of 1: pairs != 0)

    @property
    def direction(self) -> int:
        """+1 treated higher, −1 lower, 0 no difference."""
        return 0 if self.ratio == 1 or not math.isfinite(self.ratio) else (1 if self.ratio > 1 else -1)


def _in_direction(d: np.ndarray) -> int:
    mean = d.mean() if len(d) else 0.0
    return int(np.sum(np.sign(d) == np.sign(mean))) if mean != 0 else 0


def paired_log_ratio(treated, control) -> RatioEffect:
    """Seed-paired ratio of positive values: `treated[i]` and `control[i]` share seed i. Pairs with a
    non-finite or non-positive value are dropped."""
    t, c = np.asarray(treated, dtype=np.float64), np.asarray(control, dtype=np.float64)
    keep = np.isfinite(t) & np.isfinite(c) & (t > 0) & (c > 0)
    d = np.log(t[keep]) - np.log(c[keep])
    interval = t_interval(d)
    return RatioEffect(math.exp(interval.mean) if interval.n else math.nan,
                       math.exp(interval.low) if interval.n > 1 else math.nan,
                       math.exp(interval.high) if interval.n > 1 else math.nan,
                       interval.n, sign_flip_p(d), _in_direction(d))


@dataclass(frozen=True)
class DifferenceEffect:
    """treated − control, seed by seed: mean, paired t-interval, exact sign-flip p, pairs in its direction."""

    difference: Interval
    p: float
    n_in_direction: int

    @property
    def n(self) -> int:
        return self.difference.n


def paired_difference(treated, control) -> DifferenceEffect:
    t, c = np.asarray(treated, dtype=np.float64), np.asarray(control, dtype=np.float64)
    d = (t - c)[np.isfinite(t) & np.isfinite(c)]
    return DifferenceEffect(t_interval(d), sign_flip_p(d), _in_direction(d))


def clopper_pearson(successes: int, n: int, confidence: float = CONFIDENCE) -> tuple[float, float]:
    """Exact binomial interval of a proportion x/n: Beta(α/2; x, n − x + 1) to Beta(1 − α/2; x + 1, n − x)."""
    from scipy.stats import beta

    if n == 0:
        return math.nan, math.nan
    alpha = 1 - confidence
    low = 0.0 if successes == 0 else float(beta.ppf(alpha / 2, successes, n - successes + 1))
    high = 1.0 if successes == n else float(beta.ppf(1 - alpha / 2, successes + 1, n - successes))
    return low, high


@dataclass(frozen=True)
class VarianceSplit:
    """A one-way random-effects split of a score's variance: groups = training seeds, replicates = draws."""

    seeds: int
    draws: int  # evaluation draws per seed (balanced design)
    seed_variance: float  # σ²_seed = max(0, (MS_between − MS_within) / draws)
    draw_variance: float  # σ²_draw = MS_within
    grand_mean: float

    @property
    def seed_share(self) -> float:
        """σ²_seed / (σ²_seed + σ²_draw): the intraclass correlation, the share of variance due to the seed."""
        total = self.seed_variance + self.draw_variance
        return self.seed_variance / total if total > 0 else math.nan


def one_way_variance(scores) -> VarianceSplit:
    """Method-of-moments (ANOVA) estimates from a seeds × draws array (rows with a non-finite value dropped).

    MS_between = r Σ_i (ȳ_i − ȳ)² / (s − 1), MS_within = Σ_ij (y_ij − ȳ_i)² / (s (r − 1));
    E[MS_between] = σ²_draw + r σ²_seed and E[MS_within] = σ²_draw.
    """
    y = np.asarray(scores, dtype=np.float64)
    y = y[np.all(np.isfinite(y), axis=1)] if y.ndim == 2 else y.reshape(0, 0)
    seeds, draws = y.shape if y.size else (0, 0)
    if seeds < 2 or draws < 2:
        return VarianceSplit(seeds, draws, math.nan, math.nan, float(y.mean()) if y.size else math.nan)
    seed_means = y.mean(axis=1)
    ms_between = draws * float(np.sum((seed_means - y.mean()) ** 2)) / (seeds - 1)
    ms_within = float(np.sum((y - seed_means[:, None]) ** 2)) / (seeds * (draws - 1))
    return VarianceSplit(seeds, draws, max(0.0, (ms_between - ms_within) / draws), ms_within, float(y.mean()))


# ---------------------------------------------------------------------------------------------------------
# Independent arms, failure counts, the 2 × 2 factorial, random search and its confirmation, families of tests
# ---------------------------------------------------------------------------------------------------------

EXACT_MAX_SPLITS = 1_000_000  # up to C(n1 + n2, n1) splits enumerated; above, a Monte Carlo estimate
MONTE_CARLO_PERMUTATIONS = 100_000
INTERACTION_PERMUTATIONS = 10_000
PRIMARY, SECONDARY = "primary", "secondary"


@dataclass(frozen=True)
class PermutationTest:
    """A two-sample permutation test of mean(a) − mean(b)."""

    difference: float  # mean(a) − mean(b)
    p: float  # two-sided, on |mean(a) − mean(b)|
    splits: int  # C(n_a + n_b, n_a): all ways to deal the pooled values into the two arms
    exact: bool  # all splits enumerated (else `draws` random permutations)
    floor: float  # the smallest p these values could give (exact: the share of splits at the most extreme |difference|)
    draws: int = 0  # Monte Carlo permutations when not exact


def min_two_sample_p(n_a: int, n_b: int) -> float:
    """The smallest two-sided p of the exact two-sample test with distinct values: 2/C(2n, n) when n_a = n_b = n
    (the split and its mirror are equally extreme), else 1/C(n_a + n_b, n_a). 0.1 at 3 vs 3, 2/924 at 6 vs 6."""
    if n_a < 1 or n_b < 1:
        return 1.0
    return (2.0 if n_a == n_b else 1.0) / math.comb(n_a + n_b, n_a)


def _split_sums(values: np.ndarray, n_a: int, chunk: int = 100_000):
    """Yield, chunk by chunk, Σ of the values dealt to arm a, for every n_a-subset of positions (lexicographic)."""
    combinations = itertools.combinations(range(len(values)), n_a)
    while True:
        block = np.fromiter(itertools.chain.from_iterable(itertools.islice(combinations, chunk)), dtype=np.int64)
        if block.size == 0:
            return
        yield values[block.reshape(-1, n_a)].sum(axis=1)


def _permutation_hits(values: np.ndarray, statistic, observed: float, scale: float, draws: int, seed: int) -> int:
    """How many of `draws` random orderings of `values` (rows of a block, generator seeded with `seed`) give
    `statistic(block)` at least `observed`."""
    rng = np.random.default_rng(seed)
    hits, done = 0, 0
    while done < draws:
        block = min(10_000, draws - done)
        shuffled = rng.permuted(np.broadcast_to(values, (block, len(values))), axis=1)  # block × len(values)
        hits += int(np.sum(_at_least(statistic(shuffled), observed, scale)))
        done += block
    return hits


def two_sample_permutation_test(a, b, max_exact_splits: int = EXACT_MAX_SPLITS,
                                draws: int = MONTE_CARLO_PERMUTATIONS,
                                seed: int = MONTE_CARLO_SEED) -> PermutationTest:
    """Two-sided permutation test of a difference in means of two arms of independent runs (non-finite dropped).

    H0: the arms' values are exchangeable (same distribution; runs independent), so each of the
    C(n_a + n_b, n_a) ways to deal the pooled values into arms of sizes n_a and n_b is equally likely.
    Statistic |mean(a) − mean(b)|; exact p = #{splits with |difference| ≥ observed} / C(n_a + n_b, n_a), all
    splits enumerated while their number ≤ `max_exact_splits`. Beyond, `draws` random permutations from a
    generator seeded with `seed`: p = (1 + #{≥ observed}) / (1 + draws) (Phipson and Smyth 2010), and the floor
    is 1/(1 + draws). For log FID, the test of the ratio of geometric means. No normality assumed, but equal
    spread under H0: it tests equal distributions, not only equal means. NaN p when an arm is empty.
    """
    x, y = _finite(a), _finite(b)
    n_a, n_b = len(x), len(y)
    if n_a == 0 or n_b == 0:
        return PermutationTest(math.nan, math.nan, 0, True, math.nan)
    pooled = np.concatenate([x, y])
    total = float(pooled.sum())
    scale = float(np.abs(pooled).sum())
    splits = math.comb(n_a + n_b, n_a)

    def difference(sum_a: np.ndarray) -> np.ndarray:
        return np.abs(sum_a / n_a - (total - sum_a) / n_b)

    observed_difference = float(x.mean() - y.mean())
    observed = abs(observed_difference)
    if splits <= max_exact_splits:
        differences = np.concatenate([difference(sums) for sums in _split_sums(pooled, n_a)])
        p = float(np.mean(_at_least(differences, observed, scale)))
        floor = float(np.mean(_at_least(differences, float(differences.max()), scale)))
        return PermutationTest(observed_difference, p, splits, True, floor)
    hits = _permutation_hits(pooled, lambda shuffled: difference(shuffled[:, :n_a].sum(axis=1)), observed, scale,
                             draws, seed)
    return PermutationTest(observed_difference, (hits + 1) / (draws + 1), splits, False, 1 / (draws + 1), draws)


def welch_interval(a, b, confidence: float = CONFIDENCE) -> Interval:
    """Welch's interval of mean(a) − mean(b) for independent samples with possibly unequal variances:
    d ± t_{1−α/2, ν} · se, se² = s_a²/n_a + s_b²/n_b, ν = se⁴ / [(s_a²/n_a)²/(n_a − 1) + (s_b²/n_b)²/(n_b − 1)]
    (Welch–Satterthwaite). Normal errors assumed; `n` is n_a + n_b. NaN bounds unless each arm has 2 values."""
    from scipy.stats import t

    x, y = _finite(a), _finite(b)
    n_a, n_b = len(x), len(y)
    d = _mean(x) - _mean(y) if n_a and n_b else math.nan
    if n_a < 2 or n_b < 2:
        return Interval(d, math.nan, math.nan, n_a + n_b)
    va, vb = float(x.var(ddof=1)) / n_a, float(y.var(ddof=1)) / n_b
    se = math.sqrt(va + vb)
    if se == 0:
        return Interval(d, d, d, n_a + n_b)
    nu = (va + vb) ** 2 / (va ** 2 / (n_a - 1) + vb ** 2 / (n_b - 1))
    half = float(t.ppf(0.5 + confidence / 2, nu)) * se
    return Interval(d, d - half, d + half, n_a + n_b)


@dataclass(frozen=True)
class UnpairedRatioEffect:
    """treated / control between independent runs: the ratio of geometric means, its Welch interval, the
    permutation test of the same log values."""

    ratio: float
    low: float
    high: float
    n_treated: int
    n_control: int
    test: PermutationTest

    @property
    def p(self) -> float:
        return self.test.p


def unpaired_log_ratio(treated, control, confidence: float = CONFIDENCE) -> UnpairedRatioEffect:
    """Ratio of geometric means of positive values from independent runs (non-positive and non-finite dropped):
    exp(mean log treated − mean log control), exp of the Welch interval of the logs (log-normal scores
    assumed), and the exact (or Monte Carlo) two-sample permutation p of the logs. For arms that share no
    randomness (different architectures): pairing by seed is declared by the design, not chosen here."""
    t_, c = _finite(treated), _finite(control)
    logs_t, logs_c = np.log(t_[t_ > 0]), np.log(c[c > 0])
    interval = welch_interval(logs_t, logs_c, confidence)
    return UnpairedRatioEffect(math.exp(interval.mean), math.exp(interval.low), math.exp(interval.high),
                               len(logs_t), len(logs_c), two_sample_permutation_test(logs_t, logs_c))


@dataclass(frozen=True)
class FailureComparison:
    """Failures of two arms and Fisher's exact two-sided p of the difference in failure rates."""

    failures_a: int
    n_a: int
    failures_b: int
    n_b: int
    p: float

    @property
    def rate_a(self) -> float:
        return self.failures_a / self.n_a if self.n_a else math.nan

    @property
    def rate_b(self) -> float:
        return self.failures_b / self.n_b if self.n_b else math.nan


def fisher_failures(failures_a: int, n_a: int, failures_b: int, n_b: int) -> FailureComparison:
    """Fisher's exact test of the 2 × 2 table [[failures_a, n_a − failures_a], [failures_b, n_b − failures_b]].

    Conditional on the margins, failures_a is hypergeometric under H0 (equal failure probability, runs
    independent); two-sided p = Σ P(table) over the tables no more probable than the observed one
    (`scipy.stats.fisher_exact`). 8 of 8 against 0 of 8: p = 2/C(16, 8) = 1.6e-4. NaN for an empty arm.
    """
    from scipy.stats import fisher_exact

    if not (0 <= failures_a <= n_a and 0 <= failures_b <= n_b):
        raise ValueError(f"failures must lie in [0, n]: {failures_a} of {n_a}, {failures_b} of {n_b}")
    if n_a == 0 or n_b == 0:
        return FailureComparison(failures_a, n_a, failures_b, n_b, math.nan)
    table = [[failures_a, n_a - failures_a], [failures_b, n_b - failures_b]]
    return FailureComparison(failures_a, n_a, failures_b, n_b, float(fisher_exact(table).pvalue))


@dataclass(frozen=True)
class FactorEffect:
    """One effect of a 2 × 2 factorial on log scores: its ratio on the score's scale with a t-interval, and
    the F test (1 and `df_error` degrees of freedom)."""

    ratio: float
    low: float
    high: float
    f: float
    p: float
    df_error: int


@dataclass(frozen=True)
class Factorial2x2:
    """Two-way analysis of a 2 × 2 factorial on log scores. Cells are [first level][second level]."""

    first: FactorEffect  # level 1 vs 0 of the first factor, averaged over the second (geometric-mean ratio)
    second: FactorEffect  # level 1 vs 0 of the second factor, averaged over the first
    interaction: FactorEffect  # (second's ratio at first = 1) / (second's ratio at first = 0)
    n_per_cell: tuple[int, int, int, int]  # cells 00, 01, 10, 11
    residual_normality_p: float  # Shapiro–Wilk p of the residuals from the cell means
    permutation_p: float  # Freedman–Lane permutation p of the interaction F
    permutations: int


# Contrasts over the cell means ȳ00, ȳ01, ȳ10, ȳ11 (effect coding)
_FIRST = np.array([-0.5, -0.5, 0.5, 0.5])
_SECOND = np.array([-0.5, 0.5, -0.5, 0.5])
_INTERACTION = np.array([1.0, -1.0, -1.0, 1.0])


def _interaction_f(y: np.ndarray, cell: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Interaction F of each row of y (draws × N) in the full cell-means model (vectorised over rows)."""
    indicator = np.eye(4)[cell]  # N × 4
    sums = y @ indicator  # draws × 4
    means = sums / counts
    sse = (y ** 2).sum(axis=1) - (sums * means).sum(axis=1)
    mse = np.maximum(sse, 0.0) / (len(cell) - 4)
    with np.errstate(divide="ignore", invalid="ignore"):  # a permutation with no residual spread: inf or NaN
        return (means @ _INTERACTION) ** 2 / (mse * float(np.sum(_INTERACTION ** 2 / counts)))


def interaction_test_2x2(cells, confidence: float = CONFIDENCE, permutations: int = INTERACTION_PERMUTATIONS,
                         seed: int = MONTE_CARLO_SEED) -> Factorial2x2:
    """Two-way analysis of a 2 × 2 factorial of positive scores (FID) on the log scale.

    `cells[i][j]`: the scores of the runs at level i of the first factor and level j of the second (non-finite
    and non-positive values dropped). Model: log y_ijk = μ + α_i + β_j + (αβ)_ij + ε, ε ~ N(0, σ²) independent.
    Each effect is a contrast c of the cell means of the logs, ĉ = Σ c_ij ȳ_ij, with se² = MSE · Σ c_ij²/n_ij,
    MSE = Σ (y_ijk − ȳ_ij)² / (N − 4), F = ĉ²/se² on 1 and N − 4 degrees of freedom, interval
    exp(ĉ ± t_{1−α/2, N−4} se). With n replicates per cell this is the classical two-way ANOVA
    (SS_AB = n Σ (ȳ_ij − ȳ_i. − ȳ_.j + ȳ..)², F on 1 and 4(n − 1) degrees of freedom); with unequal cells, the
    Type III (effect-coded) tests. The interaction ratio is [GM_11/GM_10] / [GM_01/GM_00]: how much more the
    second factor changes the score at level 1 of the first than at level 0 (1 = additive on the log scale).

    Normality check: Shapiro–Wilk p of the N residuals y − ȳ_ij (they sum to 0 in each cell, so only N − 4 are
    free: a rough check at n = 3). When it fails, use `permutation_p`: Freedman and Lane (1983) — fit the
    reduced additive model (no interaction) by least squares, permute its residuals across all N runs, add
    them back to its fitted values and recompute the interaction F; p = (1 + #{F* ≥ F}) / (1 + permutations),
    `permutations` draws from a generator seeded with `seed` (0: not computed, NaN). It assumes the errors
    are exchangeable (independent, one distribution, equal spread in every cell), not normal; it is
    approximate, because reduced-model residuals are only nearly exchangeable (Anderson and Legendre 1999
    found its level close to nominal among the permutation methods for interactions). NaN throughout when a
    cell is empty or N < 5.
    """
    from scipy.stats import f as f_distribution
    from scipy.stats import shapiro, t

    groups = [_finite(cells[i][j]) for i in (0, 1) for j in (0, 1)]
    groups = [np.log(g[g > 0]) for g in groups]
    counts = np.array([len(g) for g in groups], dtype=np.float64)
    n_per_cell = tuple(int(c) for c in counts)
    df_error = int(counts.sum()) - 4
    if np.any(counts == 0) or df_error < 1:
        empty = FactorEffect(math.nan, math.nan, math.nan, math.nan, math.nan, max(df_error, 0))
        return Factorial2x2(empty, empty, empty, n_per_cell, math.nan, math.nan, 0)
    y = np.concatenate(groups)
    cell = np.repeat(np.arange(4), counts.astype(int))
    means = np.array([g.mean() for g in groups])
    residuals = y - means[cell]
    mse = float(np.sum(residuals ** 2)) / df_error
    quantile = float(t.ppf(0.5 + confidence / 2, df_error))

    def effect(contrast: np.ndarray) -> FactorEffect:
        estimate = float(contrast @ means)
        se = math.sqrt(mse * float(np.sum(contrast ** 2 / counts)))
        f = estimate ** 2 / se ** 2 if se > 0 else (math.inf if estimate else math.nan)
        p = float(f_distribution.sf(f, 1, df_error)) if not math.isnan(f) else math.nan
        return FactorEffect(math.exp(estimate), math.exp(estimate - quantile * se), math.exp(estimate + quantile * se),
                            f, p, df_error)

    interaction = effect(_INTERACTION)
    normality = float(shapiro(residuals).pvalue) if np.ptp(residuals) > 0 else math.nan
    permutation_p = math.nan
    if permutations > 0 and math.isfinite(interaction.f):
        # Freedman–Lane: residuals of the additive model y = μ + α_i + β_j (effect coding) are permuted
        design = np.column_stack([np.ones(len(y)), np.where(cell >= 2, 0.5, -0.5), np.where(cell % 2, 0.5, -0.5)])
        fitted = design @ np.linalg.lstsq(design, y, rcond=None)[0]
        reduced = y - fitted
        hits = _permutation_hits(reduced, lambda shuffled: _interaction_f(fitted + shuffled, cell, counts),
                                 interaction.f, interaction.f, permutations, seed)
        permutation_p = (hits + 1) / (permutations + 1)
    return Factorial2x2(effect(_FIRST), effect(_SECOND), interaction, n_per_cell, normality, permutation_p,
                        permutations)


@dataclass(frozen=True)
class ExpectedBest:
    """The best score of n trials drawn from N observed ones: its expectation and standard deviation."""

    n: int
    trials: int  # N
    mean: float
    sd: float
    with_replacement: bool


def expected_best_of_n(scores, n: int, lower_is_better: bool = True,
                       with_replacement: bool = False) -> ExpectedBest:
    """Expected best of n random-search trials, estimated from the N finite `scores` of a search.

    Sort so that v(N) is the best (descending for FID: `lower_is_better`). The best of a random n-subset
    drawn without replacement is v(i) with probability w_i = C(i − 1, n − 1) / C(N, n) (position i is the
    best drawn when it is drawn and n − 1 others come from the i − 1 below it; ties broken by position, which
    does not change the value): E[best of n] = Σ_i w_i v(i), the unbiased form of Tang et al. 2020, n ≤ N;
    sd = sqrt(Σ_i w_i v(i)² − E²), the spread of the best of one such subset. `with_replacement`: Dodge
    et al. 2019's w_i = (i/N)^n − ((i − 1)/N)^n (the best of n draws from the empirical distribution, any n ≥ 1),
    which is biased toward the sample's best for n near N.
    """
    v = np.sort(_finite(scores))
    if lower_is_better:
        v = v[::-1]
    trials = len(v)
    if n < 1 or (not with_replacement and n > trials) or trials == 0:
        raise ValueError(f"expected best of n = {n} needs 1 ≤ n ≤ N = {trials} (any n ≥ 1 with replacement)")
    i = np.arange(1, trials + 1)
    if with_replacement:
        weights = (i / trials) ** n - ((i - 1) / trials) ** n
    else:
        total = math.comb(trials, n)
        weights = np.array([math.comb(k - 1, n - 1) / total for k in i])
    mean = float(weights @ v)
    return ExpectedBest(n, trials, mean, math.sqrt(max(0.0, float(weights @ (v - mean) ** 2))), with_replacement)


def expected_best_curve(scores, lower_is_better: bool = True, with_replacement: bool = False) -> list[ExpectedBest]:
    """`expected_best_of_n` for n = 1 … N: the expected best score against the number of trials."""
    trials = len(_finite(scores))
    return [expected_best_of_n(scores, n, lower_is_better, with_replacement) for n in range(1, trials + 1)]


@dataclass(frozen=True)
class ConfirmedConfiguration:
    """One searched configuration: its single-seed search score beside its scores on fresh seeds."""

    name: str
    search_rank: int  # 1 = best search score
    search_score: float
    confirmed: Interval  # geometric mean of the fresh seeds' scores with its 95% interval (n = 0: unconfirmed)

    @property
    def flattery(self) -> float:
        """search score / confirmed geometric mean. For FID (lower is better) below 1: the search flattered it."""
        return self.search_score / self.confirmed.mean if self.confirmed.n else math.nan


def winners_curse(search_scores, confirmed_scores, lower_is_better: bool = True,
                  confidence: float = CONFIDENCE) -> list[ConfirmedConfiguration]:
    """Search scores beside confirmed ones, best search score first.

    `search_scores`: {configuration: its positive search score (one seed)}; `confirmed_scores`:
    {configuration: its positive scores on fresh seeds}, for any subset of the configurations (typically the
    chosen few). The best of K single-seed scores is selected partly on its noise, so its search score is
    optimistic: with equal true scores and log-normal noise of spread σ, log(search / true) of the chosen one
    is about σ · E[min of K standard normals] (−1.54 σ at K = 10). Fresh seeds were not selected, so their
    geometric mean (`positive_interval`: exp of the t-interval of logs) is unbiased for the configuration.
    """
    order = sorted(search_scores, key=lambda name: search_scores[name], reverse=not lower_is_better)
    return [ConfirmedConfiguration(name, rank, float(search_scores[name]),
                                   positive_interval(confirmed_scores.get(name, ()), confidence))
            for rank, name in enumerate(order, start=1)]


@dataclass(frozen=True)
class AdjustedFamily:
    """One family of tests, Holm-adjusted within itself: the declared primary family, or a secondary one."""

    name: str
    role: str  # PRIMARY or SECONDARY
    p: tuple[float, ...]
    adjusted: tuple[float, ...]  # Holm within this family, in the order given


def holm_by_family(families, primary: str) -> dict[str, AdjustedFamily]:
    """Holm's adjustment applied within each family of p-values {name: [p, …]}; the family named `primary`
    (declared before the data are seen) is labelled PRIMARY — the only one whose findings are claimed — the
    others SECONDARY (shown, each controlled within itself, never claimed). Family-wise error ≤ α holds per
    family, not across them."""
    if primary not in families:
        raise ValueError(f"the primary family {primary!r} is not among {sorted(families)}")
    return {name: AdjustedFamily(name, PRIMARY if name == primary else SECONDARY,
                                 tuple(float(p) for p in values), tuple(holm(values)))
            for name, values in families.items()}
