"""Did a quick run learn? The loss must fall by more than the noise of its own measurement; and
what the result line says a run did. The engine's progress reports are simulated from per-step
losses drawn here, so the truth behind each verdict is known."""
import random

import pytest

from archcalc.training import runs
from archcalc.training.engine import REFRESH_EVERY, EpochRecord, StepInfo
from archcalc.views import train as view


def trend_of(losses, epoch=1):
    """A LossTrend fed as the engine feeds it: the running mean of the epoch at step 1, every
    REFRESH_EVERY steps and at the last step (other steps repeat the last figure, not refreshed)."""
    trend, total, shown = runs.LossTrend(), 0.0, None
    for step, loss in enumerate(losses, 1):
        total += loss
        refreshed = step == 1 or step % REFRESH_EVERY == 0 or step == len(losses)
        if refreshed:
            shown = total / step
        trend.add(StepInfo(epoch, 1, step, len(losses), shown, 0.5, 100.0, refreshed))
    return trend


def noisy(means, sigma, seed):
    rng = random.Random(seed)
    return [m + rng.gauss(0, sigma) for m in means]


def test_windows_are_the_exact_means_between_refreshes():
    losses = [float(k) for k in range(1, 26)]       # steps 1..25
    windows = runs.LossTrend.windows(trend_of(losses))
    assert windows == [(1, 1, 1.0), (1, 9, 6.0), (1, 10, 15.5), (1, 5, 23.0)]


@pytest.mark.parametrize("seed", range(20))
def test_a_flat_noisy_loss_does_not_fall(seed):
    """The issue's run: about 2.34 throughout. The old rule (last < first) said "fell" half the
    time; a margin of 3 standard errors, the noise estimated from 5 window pairs, says so
    about 1 time in 70 (a t distribution), and none of these 20 seeded series does."""
    fall = trend_of(noisy([2.34] * 50, 0.15, seed)).fall()
    assert fall.margin is not None and not fall.fell


def test_a_flat_loss_read_at_its_first_batch_is_no_fall():
    """The issue's '2.34 → 2.34, fell': a loss within noise of where it began."""
    fall = trend_of(noisy([2.34] * 50, 0.05, 0)).fall()
    assert not fall.fell and abs(fall.first - fall.last) < fall.margin


@pytest.mark.parametrize("seed", range(5))
def test_a_clear_drop_falls(seed):
    """From 2.3 to 1.5 in 50 steps, with noise of 0.15 per step."""
    means = [2.3 - 0.8 * k / 49 for k in range(50)]
    fall = trend_of(noisy(means, 0.15, seed)).fall()
    assert fall.fell
    assert fall.first_steps == 10 and fall.last_steps == 10
    assert fall.first == pytest.approx(sum(noisy(means, 0.15, seed)[:10]) / 10)
    assert fall.last == pytest.approx(sum(noisy(means, 0.15, seed)[40:]) / 10)


def test_a_steep_early_drop_still_falls():
    """A synthetic set learned in 30 steps: big early windows swell the noise estimate (it
    counts trend as noise), yet the fall stays far beyond it."""
    means = [max(0.02, 2.3 - 0.08 * k) for k in range(78)]
    assert trend_of(noisy(means, 0.05, 1)).fall().fell


def test_too_few_refreshes_give_no_noise_and_no_fall():
    fall = trend_of([2.3, 2.0]).fall()      # refreshed at steps 1 and 2: one window pair
    assert fall.margin is not None          # one pair is enough to estimate ...
    assert runs.LossTrend().fall() is None  # ... none is not
    single = runs.LossTrend()
    single.add(StepInfo(1, 1, 1, 1, 2.3, 0.1, 10.0, True))
    assert single.fall().margin is None and not single.fall().fell


def test_the_fall_is_within_the_last_epoch():
    trend = trend_of(noisy([2.3] * 30, 0.05, 2), epoch=1)
    for info_loss, step in [(1.0, 1), (1.0, 10), (1.0, 20), (1.0, 30)]:
        trend.add(StepInfo(2, 2, step, 30, info_loss, 0.5, 100.0, True))
    fall = trend.fall()
    assert fall.last == pytest.approx(1.0) and fall.last_steps == 10
    assert fall.first == pytest.approx(sum(noisy([2.3] * 30, 0.05, 2)[:10]) / 10)


def test_test_accuracy_must_beat_chance_by_more_than_noise():
    fall = runs.LossFall(2.3, 10, 1.0, 10, 0.1)
    assert runs.learning_verdict(fall, 0.65, 10, 10_000).learned
    # a guesser on 500 images of 10 classes: σ = sqrt(0.1 × 0.9 / 500) = 0.0134; 3 σ = 0.040
    assert not runs.learning_verdict(fall, 0.139, 10, 500).learned
    assert runs.learning_verdict(fall, 0.141, 10, 500).learned



def test_held_out_accuracy_is_the_evidence_and_a_rising_loss_vetoes_it():
    """A loss that moved less than its noise leaves the verdict to the test accuracy; a loss
    that rose by more than its noise (a diverging run) is never 'it learns'."""
    within_noise = runs.LossFall(2.21, 10, 2.10, 10, 0.58)
    assert not within_noise.fell and not within_noise.rose
    assert runs.learning_verdict(within_noise, 0.244, 10, 806).learned
    assert not runs.learning_verdict(within_noise, 0.11, 10, 806).learned
    diverged = runs.LossFall(2.3, 10, 2.5, 10, 0.1)
    assert diverged.rose and not runs.learning_verdict(diverged, 0.9, 10, 500).learned


def test_the_verdict_line_says_the_numbers():
    v = runs.learning_verdict(runs.LossFall(2.34, 10, 2.33, 10, 0.12), 0.11, 10, 500)
    line = view.verdict_line(v)
    assert line.startswith("✗ not shown to learn: training loss 2.34 (first 10 steps) → 2.33 "
                           "(last 10), did not move by more than the noise margin of 0.12")
    assert "does not beat it" in line


def record(epoch, steps, images):
    return EpochRecord(epoch, 1.0, 0.5, 1.0, 0.5, 2.0, images / 2.0, 1e-3, steps, images)


def test_a_capped_run_says_steps_not_epochs():
    assert view.trained_for([record(1, 50, 800)], capped=True) == "50 steps (800 images)"
    assert view.trained_for([record(1, 50, 800), record(2, 50, 800)], capped=True) == \
        "2 epochs of 50 steps (1,600 images)"
    assert view.trained_for([record(1, 781, 49_984)], capped=False) == "1 epoch"


def test_progress_lines_for_a_log_come_every_interval():
    times = iter([0.0, 10.0, 29.9, 30.0, 59.0, 61.0])
    lines = view.ProgressLines(every=30.0, clock=lambda: next(times))
    infos = [StepInfo(1, 1, k, 6, 2.0, 0.25, 123.4) for k in range(1, 7)]
    shown = [lines(info) for info in infos]
    assert [s is not None for s in shown] == [True, False, False, True, False, True]
    assert shown[0] == "epoch 1/1 · step 1/6 · loss 2.000 · acc 25.0% · 123 images/s"
