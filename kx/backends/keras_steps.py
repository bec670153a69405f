"""How many training steps Keras runs per call into its compiled step: ``backend.steps_per_execution``.

Each call returns to Python (the epoch loop, callbacks, metrics) once; several steps per call save
that round trip (``benchmarks/backends.py --ab`` measures it on the reference CNN). ``null`` (auto) is
several on TensorFlow on one device and one elsewhere: Keras on PyTorch refuses more than one,
MXNet's Gluon loop is kx's own, and the other engines and the distribution strategies' paths are not
measured. Runs inside SageMaker jobs: Python 3.8 syntax.
"""

from typing import Optional

ONE_STEP_PER_CALL = ("torch", "mxnet")  # engines that refuse more than one (kx.config.validate)
AUTO_STEPS = 8  # on tensorflow, one device


def per_call(setting: Optional[int], engine: str, distributed: bool) -> int:
    """Steps per call for ``backend.steps_per_execution=setting`` on ``engine``, ``distributed`` over
    several devices or hosts or not."""
    if setting is not None:
        return int(setting)
    return AUTO_STEPS if engine == "tensorflow" and not distributed else 1
