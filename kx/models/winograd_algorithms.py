"""Winograd's minimal filtering algorithms for a 3x3 convolution, F(6x6, 3x3) and F(4x4, 3x3):
their transforms, and which of them computes a convolution's output in whole blocks. numpy only,
so that the algebra is checked on any machine; :mod:`kx.models.winograd` computes with it in
TensorFlow.

Runs inside SageMaker jobs: Python 3.8 syntax.
"""

from typing import Any, List, NamedTuple, Optional

import numpy as np


class Algorithm(NamedTuple):
    """Winograd's F(out x out, 3x3): a tile of ``out + 2`` values a side gives ``out`` outputs a
    side: ``O @ ((K @ kernel @ K.T) * (T @ tile @ T.T)) @ O.T`` with the output, kernel and tile
    transforms O, K and T."""

    out: int
    tile_transform: np.ndarray
    kernel_transform: np.ndarray
    output_transform: np.ndarray


def _matrix(rows: List[List[float]]) -> np.ndarray:
    return np.array(rows, "float32")


# F(6x6, 3x3) for the points 0, 1, -1, 2, -2, 1/2, -1/2 and infinity (as NNPACK computes it)
F6 = Algorithm(
    6,
    _matrix(
        [
            [1, 0, -21 / 4, 0, 21 / 4, 0, -1, 0],
            [0, 1, 1, -17 / 4, -17 / 4, 1, 1, 0],
            [0, -1, 1, 17 / 4, -17 / 4, -1, 1, 0],
            [0, 1 / 2, 1 / 4, -5 / 2, -5 / 4, 2, 1, 0],
            [0, -1 / 2, 1 / 4, 5 / 2, -5 / 4, -2, 1, 0],
            [0, 2, 4, -5 / 2, -5, 1 / 2, 1, 0],
            [0, -2, 4, 5 / 2, -5, -1 / 2, 1, 0],
            [0, -1, 0, 21 / 4, 0, -21 / 4, 0, 1],
        ]
    ),
    _matrix(
        [
            [1, 0, 0],
            [-2 / 9, -2 / 9, -2 / 9],
            [-2 / 9, 2 / 9, -2 / 9],
            [1 / 90, 1 / 45, 2 / 45],
            [1 / 90, -1 / 45, 2 / 45],
            [32 / 45, 16 / 45, 8 / 45],
            [32 / 45, -16 / 45, 8 / 45],
            [0, 0, 1],
        ]
    ),
    _matrix(
        [
            [1, 1, 1, 1, 1, 1, 1, 0],
            [0, 1, -1, 2, -2, 1 / 2, -1 / 2, 0],
            [0, 1, 1, 4, 4, 1 / 4, 1 / 4, 0],
            [0, 1, -1, 8, -8, 1 / 8, -1 / 8, 0],
            [0, 1, 1, 16, 16, 1 / 16, 1 / 16, 0],
            [0, 1, -1, 32, -32, 1 / 32, -1 / 32, 1],
        ]
    ),
)

# F(4x4, 3x3) for the points 0, 1, -1, 2, -2 and infinity (Lavin and Gray, 2015)
F4 = Algorithm(
    4,
    _matrix(
        [
            [4, 0, -5, 0, 1, 0],
            [0, -4, -4, 1, 1, 0],
            [0, 4, -4, -1, 1, 0],
            [0, -2, -1, 2, 1, 0],
            [0, 2, -1, -2, 1, 0],
            [0, 4, 0, -5, 0, 1],
        ]
    ),
    _matrix(
        [
            [1 / 4, 0, 0],
            [-1 / 6, -1 / 6, -1 / 6],
            [-1 / 6, 1 / 6, -1 / 6],
            [1 / 24, 1 / 12, 1 / 6],
            [1 / 24, -1 / 12, 1 / 6],
            [0, 0, 1],
        ]
    ),
    _matrix([[1, 1, 1, 1, 1, 0], [0, 1, -1, 2, -2, 0], [0, 1, 1, 4, 4, 0], [0, 1, -1, 8, -8, 1]]),
)

ALGORITHMS = (F6, F4)
"""Largest blocks first: F(6x6) multiplies 64 values for 36 outputs, F(4x4) 36 for 16."""


def fitting(shape: Any, padding: str) -> List[Algorithm]:
    """The algorithms of :data:`ALGORITHMS` whose blocks make up the output of a channels-last input
    of ``shape`` whole, largest first."""
    height, width = shape[1], shape[2]
    trim = 0 if padding == "same" else 2
    if height is None or width is None or height <= trim or width <= trim:
        return []
    return [a for a in ALGORITHMS if (height - trim) % a.out == 0 and (width - trim) % a.out == 0]


def algorithm_for(shape: Any, padding: str) -> Optional[Algorithm]:
    """The largest algorithm :func:`fitting` the output, or None: padding the blocks out and
    cropping measured slower than a direct convolution."""
    return next(iter(fitting(shape, padding)), None)
