"""Closed-form moments used as references (no SciPy dependency)."""

import math


def clipped_normal_variance(c):
    """Var of clip(X, -c, c) for X ~ N(0, 1) (the mean stays 0 by symmetry).

    E[X^2; |X|<c] = (2 Phi(c) - 1) - 2 c phi(c), plus c^2 on each tail.
    """
    phi = math.exp(-0.5 * c * c) / math.sqrt(2 * math.pi)
    big_phi = 0.5 * (1 + math.erf(c / math.sqrt(2)))
    return (2 * big_phi - 1) - 2 * c * phi + 2 * c * c * (1 - big_phi)
