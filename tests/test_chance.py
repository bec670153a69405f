"""A model at chance level is reported in one warning line that says what to try."""

import numpy as np

from kx.reporting.chance import chance_warning


def test_a_model_at_chance_level_gets_one_line_with_what_to_try():
    y_val = np.repeat(np.arange(3), [68, 60, 52])  # the README's image_folder example's validation set
    warning = chance_warning(0.3389, y_val, samples=720, batch_size=256, epochs=3)
    assert (
        warning.startswith("kx: warning: the model's val_acc 0.3389 is chance level") and "\n" not in warning
    )
    assert "after 9 training steps" in warning and "a smaller train.batch_size" in warning


def test_a_model_that_learned_is_not_warned_about():
    y_val = np.repeat(np.arange(10), 36)
    assert chance_warning(0.9610, y_val, samples=1438, batch_size=32, epochs=5) is None
    assert chance_warning(0.16, y_val, samples=1438, batch_size=32, epochs=5) is None  # above chance + 0.05
