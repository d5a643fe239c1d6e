"""95% intervals for the benchmark's rates over its clips: how far a number may move on another draw of clips.

- One attribute's accuracy is k successes in n clips: the Wilson score interval (it stays inside [0, 1] and
  is not degenerate at 0 or n successes, where the normal approximation is).
- A mean of several attributes' accuracies (e.g. "detail attributes (mean)"), whose attributes are scored
  on different subsets of the clips (the second object's only where there is one): a percentile bootstrap
  over clips, each resample drawing clips with replacement and recomputing the same statistic.

Both treat the clips as a sample from the split; the model's own sampling randomness (its seed) is not in
them, which is why the ablation also reruns one row with another seed.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterable, Sequence

import numpy as np

Z95 = 1.959963984540054  # the standard normal's 97.5% quantile


def wilson_interval(successes: int, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval of a proportion ``successes / n``; (nan, nan) for n = 0."""
    if n < 0 or not 0 <= successes <= n:
        raise ValueError(f"need 0 <= successes <= n, got {successes} of {n}")
    if n == 0:
        return (math.nan, math.nan)
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return (max(0.0, centre - half), min(1.0, centre + half))


def score_matrix(rows: Iterable[dict[str, float]], keys: Sequence[str]) -> np.ndarray:
    """float [clips, len(keys)]: each clip's score per key, NaN where the clip has no such key."""
    return np.array([[row.get(k, math.nan) for k in keys] for row in rows], dtype=float).reshape(-1, len(keys))


def mean_of_means(matrix: np.ndarray) -> float:
    """The mean over columns of each column's mean over the clips that have it (NaN cells skipped)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # an all-NaN column: that column is skipped
        return float(np.nanmean(np.nanmean(matrix, axis=0)))


def bootstrap_interval(
    matrix: np.ndarray, resamples: int = 2000, seed: int = 0, level: float = 0.95
) -> tuple[float, float]:
    """Percentile bootstrap interval of :func:`mean_of_means` over the rows (clips) of ``matrix``.

    Deterministic for a given ``seed``. A resample in which a column has no value skips that column, as
    the statistic itself does."""
    matrix = np.asarray(matrix, dtype=float)
    if matrix.ndim != 2:
        raise ValueError(f"matrix must be [clips, keys], got shape {matrix.shape}")
    n = matrix.shape[0]
    if n == 0:
        return (math.nan, math.nan)
    index = np.random.default_rng(seed).integers(0, n, size=(resamples, n))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        stats = np.nanmean(np.nanmean(matrix[index], axis=1), axis=1)  # [resamples]
    stats = stats[~np.isnan(stats)]
    tail = (1 - level) / 2
    return (float(np.quantile(stats, tail)), float(np.quantile(stats, 1 - tail)))
