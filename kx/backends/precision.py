"""Which floating-point precision a run computes in: ``backend.precision``.

``bfloat16`` is Keras's ``mixed_bfloat16`` policy: layers compute in bfloat16, weights and the
optimizer stay float32, and kx keeps the final softmax in float32. It pays only where the processor
computes bfloat16 natively (AVX-512 BF16 or AMX on x86 CPUs); elsewhere it is emulated and slower.
``auto`` picks it by :mod:`kx.cpu`'s probe for CPU training on tensorflow and torch, and float32
otherwise (GPUs, other systems; jax, whose XLA CPU code measured slower in bfloat16; MXNet).
Runs inside SageMaker jobs: Python 3.8 syntax.
"""

import logging

from kx.cpu import probe

log = logging.getLogger("kx")
ENGINES_WITH_BF16 = ("tensorflow", "jax", "torch")  # the Keras engines; MXNet trains float32 here
# measured faster in bfloat16 on such CPUs (benchmarks/backends.py); XLA's CPU code (jax) is slower
AUTO_BF16_ENGINES = ("tensorflow", "torch")


def resolve(setting: str, engine: str, on_gpu: bool) -> str:
    """``float32`` or ``bfloat16`` for ``backend.precision=setting`` on ``engine`` (an engine without
    bfloat16 support is refused up front, by :mod:`kx.backends.support`)."""
    if setting == "auto":
        chosen = (
            "bfloat16" if engine in AUTO_BF16_ENGINES and not on_gpu and probe().native_bf16 else "float32"
        )
        log.info("precision %s (backend.precision=auto: %s)", chosen, _why(engine, on_gpu))
        return chosen
    return setting


def _why(engine: str, on_gpu: bool) -> str:
    if engine not in AUTO_BF16_ENGINES:
        return f"backend={engine} is faster in float32 on CPUs"
    if on_gpu:
        return "GPU training"
    return "this CPU computes bfloat16 natively" if probe().native_bf16 else "this CPU has no native bfloat16"
