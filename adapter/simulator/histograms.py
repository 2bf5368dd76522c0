"""Latency/size distributions whose histogram buckets are exact functions of time.

Observations come from a mixture of two log-normal distributions, "fast" (idle server) and
"slow" (saturated server), weighted by the load: at load ``L`` a new observation is slow with
probability ``L``. With a constant observation rate ``r`` the cumulative bucket counts since an
epoch are ``r * (F_fast(le) * (T - I) + F_slow(le) * I)``, where ``T`` is the elapsed time and
``I`` the load integral - no state, no randomness, exact for any scrape time.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class LogNormal:
    median: float
    sigma: float

    def cdf(self, x: float) -> float:
        if x <= 0:
            return 0.0
        if math.isinf(x):
            return 1.0
        return 0.5 * (1 + math.erf(math.log(x / self.median) / (self.sigma * math.sqrt(2))))

    @property
    def mean(self) -> float:
        return self.median * math.exp(self.sigma * self.sigma / 2)


@dataclass(frozen=True, slots=True)
class MixtureHistogram:
    """Bucket layout plus the fast/slow components (``buckets`` excludes +Inf)."""

    buckets: tuple[float, ...]
    fast: LogNormal
    slow: LogNormal

    def cdf(self, x: float, slow_weight: float) -> float:
        return (1 - slow_weight) * self.fast.cdf(x) + slow_weight * self.slow.cdf(x)

    def mean(self, slow_weight: float) -> float:
        return (1 - slow_weight) * self.fast.mean + slow_weight * self.slow.mean

    def cumulative(self, rate: float, elapsed: float, load_integral: float) -> tuple[list[float], float, float]:
        """(cumulative counts per finite bucket, sum, count) after ``elapsed`` seconds."""
        n_fast = rate * (elapsed - load_integral)
        n_slow = rate * load_integral
        counts = [n_fast * self.fast.cdf(le) + n_slow * self.slow.cdf(le) for le in self.buckets]
        total = n_fast + n_slow
        return counts, n_fast * self.fast.mean + n_slow * self.slow.mean, total

    def quantile(self, q: float, slow_weight: float) -> float:
        """Exact quantile of the mixture (bisection on the log scale)."""
        lo, hi = 1e-9, 1e9
        for _ in range(200):
            mid = math.sqrt(lo * hi)
            if self.cdf(mid, slow_weight) < q:
                lo = mid
            else:
                hi = mid
            if hi / lo < 1 + 1e-12:
                break
        return math.sqrt(lo * hi)

    def histogram_quantile(self, q: float, slow_weight: float) -> float:
        """What PromQL ``histogram_quantile(q, rate(..._bucket))`` returns for this mixture.

        Prometheus interpolates linearly inside the bucket holding the rank; the lower bound of
        the first bucket is 0; a rank in the +Inf bucket returns the highest finite bound.
        """
        cum = [self.cdf(le, slow_weight) for le in self.buckets] + [1.0]
        rank = q * cum[-1]
        b = next(i for i, c in enumerate(cum) if c >= rank)
        if b == len(self.buckets):
            return self.buckets[-1]
        start = 0.0 if b == 0 else self.buckets[b - 1]
        below = 0.0 if b == 0 else cum[b - 1]
        width = cum[b] - below
        if width <= 0:
            return self.buckets[b]
        return start + (self.buckets[b] - start) * ((rank - below) / width)

    def bucket_bounds(self, x: float) -> tuple[float, float]:
        """The (lower, upper] bucket bounds that contain ``x``."""
        lower = 0.0
        for le in self.buckets:
            if x <= le:
                return lower, le
            lower = le
        return lower, math.inf


# Bucket layouts of the real servers (metrics-catalog.md §c).
VLLM_TTFT_BUCKETS = (0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0,
                     7.5, 10.0, 20.0, 40.0, 80.0, 160.0, 640.0, 2560.0)
VLLM_E2E_BUCKETS = (0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0, 50.0, 60.0,
                    120.0, 240.0, 480.0, 960.0, 1920.0, 7680.0)
TGI_DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
TGI_TOKENS_BUCKETS = (1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 500.0, 1000.0, 2000.0, 4000.0)
