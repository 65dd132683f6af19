"""The KL-schedule registry: one class per schedule, one entry per name."""

import pytest

from keras_vae_layers import VAEModel
from keras_vae_layers.callbacks import KLAnnealing
from keras_vae_layers.callbacks import beta_schedule
from keras_vae_layers.callbacks.annealing import SCHEDULES as OLD_SCHEDULES
from keras_vae_layers.callbacks.schedules import SCHEDULE_CLASSES
from keras_vae_layers.callbacks.schedules import SCHEDULES
from keras_vae_layers.callbacks.schedules import BetaSchedule
from keras_vae_layers.callbacks.schedules import CyclicalSchedule
from keras_vae_layers.callbacks.schedules import LinearSchedule
from keras_vae_layers.callbacks.schedules import make_schedule
from keras_vae_layers._validation import check_positive_int

from helpers import binary_data
from helpers import dense_vae


class StepSchedule(BetaSchedule):
    """`beta_min` before `warmup`, `beta_max` from then on."""

    def __init__(self, warmup=None, beta_min=0.0, beta_max=1.0,
                 owner="beta_schedule"):
        super().__init__(beta_min, beta_max, owner)
        self.warmup = check_positive_int(warmup, "warmup", owner)

    def fraction(self, step):
        return float(step >= self.warmup)


@pytest.fixture
def step_schedule(monkeypatch):
    monkeypatch.setitem(SCHEDULE_CLASSES, "step", StepSchedule)


def test_names_come_from_the_registry():
    assert SCHEDULES == ("constant", "linear", "cyclical")
    assert OLD_SCHEDULES is SCHEDULES
    assert LinearSchedule.arguments() == ("warmup",)
    assert CyclicalSchedule.arguments() == ("total", "cycles", "ratio")


def test_classes_check_their_own_arguments():
    with pytest.raises(ValueError, match="Mine: the 'linear' schedule needs"):
        LinearSchedule(owner="Mine")
    with pytest.raises(ValueError, match=r"Mine: `ratio` must be in \(0, 1\]"):
        CyclicalSchedule(total=8, ratio=2.0, owner="Mine")
    with pytest.raises(ValueError, match="`beta_min` must be <= `beta_max`"):
        LinearSchedule(warmup=2, beta_min=1.0, beta_max=0.5)
    schedule = CyclicalSchedule(total=8, cycles=2, beta_min=0.2, beta_max=0.6)
    assert [schedule(s) for s in range(4)] == pytest.approx(
        [0.2, 0.4, 0.6, 0.6])


def test_make_schedule_ignores_arguments_a_schedule_does_not_take():
    schedule = make_schedule("linear", warmup=2, total=None, cycles=0,
                             ratio=5.0, beta_max=0.5)
    assert [schedule(s) for s in range(4)] == [0.0, 0.25, 0.5, 0.5]
    with pytest.raises(ValueError, match="unknown `kind` 'cosine'"):
        make_schedule("cosine")


def test_a_registered_schedule_is_one_entry(step_schedule):
    assert [beta_schedule("step", s, warmup=2, beta_max=0.4)
            for s in range(4)] == [0.0, 0.0, 0.4, 0.4]
    vae = VAEModel(*_encoder_decoder(), beta=1.0)
    vae.compile(optimizer="adam")
    # 32 samples / batch 16 = 2 steps per epoch, so warmup_epochs=1 is a
    # 2-step warm-up with per="step".
    history = vae.fit(binary_data(32), epochs=2, batch_size=16, verbose=0,
                      callbacks=[KLAnnealing("step", warmup_epochs=1,
                                             per="step")])
    assert history.history["beta"] == pytest.approx([0.0, 1.0])
    with pytest.raises(ValueError, match="unknown `schedule` 'ramp'"):
        KLAnnealing("ramp")


def _encoder_decoder():
    base = dense_vae(nested=True, kl_layer=False)
    return base.get_layer("encoder"), base.get_layer("decoder")
