"""How many training steps Keras runs per call into its compiled step: ``backend.steps_per_execution``.

Each call returns to Python (the epoch loop, callbacks, metrics) once; several steps per call save
that round trip (``benchmarks/backends.py --ab`` measures it on the reference CNN). ``null`` (auto) is
several on TensorFlow on one device and one elsewhere: Keras on PyTorch refuses more than one,
MXNet's Gluon loop is kx's own, and the other engines and the distribution strategies' paths are not
measured. Runs inside SageMaker jobs: Python 3.8 syntax.
"""

from typing import Optional, Tuple

from kx.errors import KxError

ONE_STEP_PER_CALL = ("torch", "mxnet")  # engines that refuse more than one (kx.backends.support)
AUTO_STEPS = 8  # on tensorflow, one device
# Keras's TensorFlow loop ends a call early when the data runs out from this release on; before it,
# a call that runs out (an epoch or a validation pass not a multiple of the steps) loses its results
PARTIAL_CALLS_SINCE = (3, 7)


def per_call(setting: Optional[int], engine: str, distributed: bool, keras_version: str) -> int:
    """Steps per call for ``backend.steps_per_execution=setting`` on ``engine``, ``distributed`` over
    several devices or hosts or not, with Keras ``keras_version``."""
    whole_calls_only = engine == "tensorflow" and _release(keras_version) < PARTIAL_CALLS_SINCE
    if setting is not None and int(setting) > 1 and whole_calls_only:
        raise KxError(
            f"backend.steps_per_execution={setting} needs Keras "
            f"{'.'.join(map(str, PARTIAL_CALLS_SINCE))} or later on TensorFlow (this is Keras "
            f"{keras_version}, whose last call of an epoch loses its results); leave it null or 1."
        )
    if setting is not None:
        return int(setting)
    several = engine == "tensorflow" and not distributed and not whole_calls_only
    return AUTO_STEPS if several else 1


def _release(version: str) -> Tuple[int, int]:
    major, minor = (version.split(".") + ["0"])[:2]
    return int(major), int("".join(c for c in minor if c.isdigit()) or 0)
