"""KL-weight schedules: one class per schedule, registered by name.

A schedule maps a 0-based step to the KL weight `beta`. "Step" is whatever
the caller counts: `KLAnnealing(per="epoch")` passes the epoch,
`per="step"` the global batch index. Each class checks its own arguments
when it is created (errors name the `owner`, the function or class the user
called). `SCHEDULE_CLASSES` maps the names `beta_schedule(kind, ...)` and
`KLAnnealing(schedule=...)` accept to the classes, so adding a schedule is
one class and one entry there.
"""

import inspect
import math

from keras_vae_layers._validation import check_choice
from keras_vae_layers._validation import check_finite_number
from keras_vae_layers._validation import check_positive_int

__all__ = [
    "BetaSchedule",
    "ConstantSchedule",
    "CyclicalSchedule",
    "LinearSchedule",
    "SCHEDULES",
    "SCHEDULE_CLASSES",
    "beta_schedule",
    "make_schedule",
]


def check_betas(beta_min, beta_max, owner):
    """`(beta_min, beta_max)` as floats, finite, >= 0 and in order."""
    beta_min = check_finite_number(beta_min, "beta_min", owner, minimum=0.0)
    beta_max = check_finite_number(beta_max, "beta_max", owner, minimum=0.0)
    if beta_min > beta_max:
        raise ValueError(
            f"{owner}: `beta_min` must be <= `beta_max`, received "
            f"beta_min={beta_min!r} and beta_max={beta_max!r}."
        )
    return beta_min, beta_max


def check_ratio(ratio, owner):
    """`ratio` as a float in (0, 1]."""
    ratio = check_finite_number(ratio, "ratio", owner, minimum=0.0,
                                strict_minimum=True)
    if ratio > 1.0:
        raise ValueError(
            f"{owner}: `ratio` must be in (0, 1], received {ratio!r}."
        )
    return ratio


class BetaSchedule:
    """Base class: `beta_min + (beta_max - beta_min) * fraction(step)`.

    A subclass takes its own arguments (with defaults) before `beta_min`,
    `beta_max` and `owner`, checks them in `__init__` after calling the
    base class, and implements `fraction(step)`, a value in [0, 1].

    Example:

    ```python
    class StepSchedule(BetaSchedule):
        def __init__(self, warmup=1, beta_min=0.0, beta_max=1.0,
                     owner="StepSchedule"):
            super().__init__(beta_min, beta_max, owner)
            self.warmup = check_positive_int(warmup, "warmup", owner)

        def fraction(self, step):
            return float(step >= self.warmup)

    SCHEDULE_CLASSES["step"] = StepSchedule
    ```
    """

    def __init__(self, beta_min=0.0, beta_max=1.0, owner="beta_schedule"):
        self.beta_min, self.beta_max = check_betas(beta_min, beta_max, owner)

    def __call__(self, step):
        return self.beta_min + (self.beta_max - self.beta_min) * self.fraction(
            step)

    def fraction(self, step):
        raise NotImplementedError(
            f"{type(self).__name__} must implement `fraction(step)`."
        )

    @classmethod
    def arguments(cls):
        """Names of the schedule's own arguments (beyond `beta_min`,
        `beta_max` and `owner`)."""
        return tuple(
            name for name in inspect.signature(cls).parameters
            if name not in ("beta_min", "beta_max", "owner")
        )


class ConstantSchedule(BetaSchedule):
    """`beta_max` at every step."""

    def __call__(self, step):
        return self.beta_max


class LinearSchedule(BetaSchedule):
    """A linear warm-up: `beta_min + (beta_max - beta_min) * min(step /
    warmup, 1)`, so `beta_max` from step `warmup` on."""

    def __init__(self, warmup=None, beta_min=0.0, beta_max=1.0,
                 owner="beta_schedule"):
        super().__init__(beta_min, beta_max, owner)
        if warmup is None:
            raise ValueError(
                f"{owner}: the 'linear' schedule needs `warmup` (an int >= "
                "1), received None."
            )
        self.warmup = check_positive_int(warmup, "warmup", owner)

    def fraction(self, step):
        return min(step / self.warmup, 1.0)


class CyclicalSchedule(BetaSchedule):
    """Cyclical annealing (Fu et al. 2019): `cycles` linear ramps over
    `total` steps, each spending `ratio` of its cycle ramping; steps past
    `total` continue the cycling."""

    def __init__(self, total=None, cycles=4, ratio=0.5, beta_min=0.0,
                 beta_max=1.0, owner="beta_schedule"):
        super().__init__(beta_min, beta_max, owner)
        if total is None:
            raise ValueError(
                f"{owner}: the 'cyclical' schedule needs `total` (the number "
                "of steps of the run, an int >= 1), received None."
            )
        self.total = check_positive_int(total, "total", owner)
        self.cycles = check_positive_int(cycles, "cycles", owner)
        self.ratio = check_ratio(ratio, owner)

    def fraction(self, step):
        period = self.total / self.cycles
        tau = math.fmod(step, period) / period
        return min(tau / self.ratio, 1.0)


SCHEDULE_CLASSES = {
    "constant": ConstantSchedule,
    "linear": LinearSchedule,
    "cyclical": CyclicalSchedule,
}
"""Schedule name -> `BetaSchedule` subclass; one entry per schedule."""

SCHEDULES = tuple(SCHEDULE_CLASSES)
"""Built-in schedule names of `beta_schedule` and `KLAnnealing`."""


def make_schedule(kind, owner="beta_schedule", **arguments):
    """Creates the schedule registered as `kind`.

    Args:
        kind: A key of `SCHEDULE_CLASSES`.
        owner: Name used in error messages.
        **arguments: `beta_min`, `beta_max` and any schedule arguments;
            those the schedule does not take are ignored, so one set of
            settings serves every schedule.

    Returns:
        A `BetaSchedule`: call it with a step to get beta.
    """
    check_choice(kind, "kind", tuple(SCHEDULE_CLASSES), owner)
    cls = SCHEDULE_CLASSES[kind]
    own = set(cls.arguments()) | {"beta_min", "beta_max"}
    return cls(owner=owner,
               **{k: v for k, v in arguments.items() if k in own})


def beta_schedule(kind, step, total=None, beta_min=0.0, beta_max=1.0,
                  warmup=None, cycles=4, ratio=0.5):
    """The KL weight of a built-in annealing schedule at `step`.

    * `"constant"`: `beta_max` throughout.
    * `"linear"`: `beta_min + (beta_max - beta_min) * min(step / warmup, 1)`:
      `beta_min` at step 0, rising linearly for `warmup` steps, `beta_max`
      from step `warmup` on.
    * `"cyclical"` (Fu et al. 2019, "Cyclical Annealing Schedule"): the
      `total` steps are split into `cycles` cycles of `total / cycles` steps;
      within each cycle beta rises linearly from `beta_min` over the first
      `ratio` fraction of the cycle and then holds at `beta_max`. Steps
      past `total` continue the cycling.

    "Step" means whatever unit the caller counts: epochs or batches.

    Args:
        kind: `"constant"`, `"linear"` or `"cyclical"` (a key of
            `SCHEDULE_CLASSES`).
        step: 0-based int position (epoch or global batch index).
        total: Total number of steps of the run (needed by `"cyclical"`).
        beta_min: Start value of each ramp (finite, >= 0).
        beta_max: Value held after each ramp (finite, >= `beta_min`).
        warmup: Length of the linear ramp in steps (int >= 1; `"linear"`).
        cycles: Number of cycles (int >= 1; `"cyclical"`).
        ratio: Fraction of each cycle spent ramping, in (0, 1].

    Returns:
        beta as a Python float.

    Example:

    >>> [beta_schedule("linear", e, warmup=4) for e in range(6)]
    [0.0, 0.25, 0.5, 0.75, 1.0, 1.0]
    >>> [beta_schedule("cyclical", s, total=8, cycles=2) for s in range(8)]
    [0.0, 0.5, 1.0, 1.0, 0.0, 0.5, 1.0, 1.0]
    """
    owner = "beta_schedule"
    check_choice(kind, "kind", tuple(SCHEDULE_CLASSES), owner)
    step = check_positive_int(step, "step", owner, minimum=0)
    schedule = make_schedule(kind, owner, beta_min=beta_min,
                             beta_max=beta_max, total=total, warmup=warmup,
                             cycles=cycles, ratio=ratio)
    return schedule(step)
