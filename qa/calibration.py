"""Confidence calibration: Platt scaling, reliability tables and the expected calibration error.

Training fits the scaling, reading applies it and evaluation measures it, all with these functions.
On a few dozen questions even a perfectly calibrated reader shows an error well above zero, so
evaluation also reports the error such a reader would show with the same confidences.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np


def sigmoid(z: float) -> float:
    return 1.0 / (1.0 + math.exp(-z)) if z > -700 else 0.0


def fit_platt(x: np.ndarray, y: np.ndarray, l2: float = 1e-4, iterations: int = 100) -> tuple[float, float]:
    """Logistic regression p = sigmoid(a * x + b) by Newton's method (a tiny ridge keeps it finite on separable data)."""
    a = b = 0.0
    design = np.stack([x, np.ones_like(x)], axis=1)
    for _ in range(iterations):
        p = 1 / (1 + np.exp(-(a * x + b)))
        gradient = design.T @ (p - y) + l2 * np.array([a, 0.0])
        hessian = (design * (p * (1 - p))[:, None]).T @ design + l2 * np.diag([1.0, 0.0]) + 1e-9 * np.eye(2)
        step = np.linalg.solve(hessian, gradient)
        a, b = a - step[0], b - step[1]
        if np.abs(step).max() < 1e-10:
            break
    return float(a), float(b)


def reliability_table(confidences: Sequence[float], rights: Sequence[float], bins: int = 10) -> list[list[float]]:
    """[mean confidence, share right, count] for each non-empty confidence bin of width 1/bins."""
    p = np.asarray(confidences, dtype=float)
    y = np.asarray(rights, dtype=float)
    index = np.minimum((p * bins).astype(int), bins - 1)
    table = []
    for b in range(bins):
        inside = index == b
        if inside.any():
            table.append([float(p[inside].mean()), float(y[inside].mean()), int(inside.sum())])
    return table


def expected_calibration_error(table: list[list[float]]) -> float:
    total = sum(count for _, _, count in table)
    return sum(abs(confidence - right) * count for confidence, right, count in table) / total if total else 0.0


def calibrated_errors(confidences: Sequence[float], bins: int = 10, draws: int = 2000,
                      seed: int = 0) -> np.ndarray:
    """The expected calibration error of ``draws`` perfectly calibrated readers with these confidences.

    Each draw marks every answer right with probability equal to its confidence and measures the
    error as :func:`expected_calibration_error` does, on the same bins.
    """
    p = np.asarray(confidences, dtype=float)
    if not len(p):
        return np.zeros(draws)
    index = np.minimum((p * bins).astype(int), bins - 1)
    rights = np.random.default_rng(seed).random((draws, len(p))) < p
    errors = np.zeros(draws)
    for b in np.unique(index):
        inside = index == b
        errors += np.abs(p[inside].mean() - rights[:, inside].mean(axis=1)) * inside.sum()
    return errors / len(p)
