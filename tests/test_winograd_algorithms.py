"""Winograd's algorithms as kx stores them compute a 3x3 correlation exactly (up to the float32
rounding of their constants), and kx picks the largest whose blocks make up the output whole. numpy
only: this runs on every machine, where the layer's own tests need the CPU kx uses it on."""

import numpy as np
import pytest

from kx.models.winograd_algorithms import ALGORITHMS, F4, F6, algorithm_for, fitting


def _direct(tile: np.ndarray, kernel: np.ndarray, out: int) -> np.ndarray:
    return np.array([[np.sum(tile[i : i + 3, j : j + 3] * kernel) for j in range(out)] for i in range(out)])


@pytest.mark.parametrize("algorithm", ALGORITHMS, ids=lambda a: f"F({a.out}x{a.out})")
def test_an_algorithm_computes_a_block_of_a_3x3_correlation(algorithm):
    """A wrong entry in any of the three matrices gives a gap of order one."""
    matrices = algorithm.tile_transform, algorithm.kernel_transform, algorithm.output_transform
    t, k, o = (m.astype("float64") for m in matrices)
    state = np.random.RandomState(0)
    for _ in range(20):
        tile, kernel = state.normal(size=(algorithm.out + 2,) * 2), state.normal(size=(3, 3))
        found = o @ ((k @ kernel @ k.T) * (t @ tile @ t.T)) @ o.T
        expected = _direct(tile, kernel, algorithm.out)
        assert np.max(np.abs(found - expected)) < 1e-5 * np.max(np.abs(expected))


@pytest.mark.parametrize(
    "height, width, padding, expected",
    [
        (14, 14, "valid", [F6, F4]),  # the reference CNN's second convolution: 12x12
        (12, 18, "same", [F6]),
        (10, 10, "valid", [F4]),
        (8, 12, "same", [F4]),
        (8, 10, "valid", []),  # 6x8: each side whole blocks of a different size
        (7, 9, "same", []),
        (2, 2, "valid", []),  # no output
        (None, 14, "valid", []),  # unknown size
    ],
)
def test_kx_takes_the_largest_blocks_that_make_up_the_output(height, width, padding, expected):
    shape = (None, height, width, 64)
    assert [a.out for a in fitting(shape, padding)] == [a.out for a in expected]
    chosen = algorithm_for(shape, padding)
    assert (chosen.out if chosen else None) == (expected[0].out if expected else None)
