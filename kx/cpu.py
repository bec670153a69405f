"""What this CPU computes natively: the one probe that ``auto`` speed settings, kx's layers and the
benchmarks read.

``/proc/cpuinfo`` names the model and the instruction-set flags. oneDNN, which runs TensorFlow's and
PyTorch's convolutions on x86, can be capped below the hardware by ``ONEDNN_MAX_CPU_ISA`` (e.g.
``AVX2``): bfloat16 then runs emulated, so the cap counts as the CPU's. Python 3.8 syntax.
"""

import functools
import os
import platform
from dataclasses import dataclass
from pathlib import Path
from typing import FrozenSet, Optional

from kx.machine import usable_cpus

NATIVE_BF16_FLAGS = ("avx512_bf16", "amx_bf16")
REPORTED_FLAGS = ("avx2", "avx512f", "avx512_bf16", "amx_bf16")
# oneDNN ISA caps that still include bfloat16 instructions (its ``dnnl_cpu_isa_t`` names)
BF16_ISA_CAPS = (
    "AVX512_CORE_BF16",
    "AVX512_CORE_FP16",
    "AVX10_1_512",
    "AVX512_CORE_AMX",
    "AVX10_1_512_AMX",
    "AVX512_CORE_AMX_FP16",
    "AVX10_1_512_AMX_FP16",
    "ALL",
    "DEFAULT",
)
AVX512_ISA_CAPS = ("AVX512_CORE", "AVX512_CORE_VNNI", *BF16_ISA_CAPS)  # caps that still include AVX-512


@dataclass(frozen=True)
class Cpu:
    """A CPU's model name, its flags and the oneDNN ISA cap in force (None: none set)."""

    model: str
    flags: FrozenSet[str]
    isa_cap: Optional[str] = None

    @property
    def native_bf16(self) -> bool:
        """Whether bfloat16 is computed natively here (a flag of :data:`NATIVE_BF16_FLAGS`, not capped)."""
        capped = self.isa_cap is not None and self.isa_cap.upper() not in BF16_ISA_CAPS
        return not capped and any(flag in self.flags for flag in NATIVE_BF16_FLAGS)

    @property
    def avx512(self) -> bool:
        """Whether oneDNN runs AVX-512 kernels here (the ``avx512f`` flag, not capped below it)."""
        capped = self.isa_cap is not None and self.isa_cap.upper() not in AVX512_ISA_CAPS
        return not capped and "avx512f" in self.flags

    def describe(self) -> str:
        """One line for logs and benchmark reports: model, cores, the flags that decide speed."""
        have = [f for f in REPORTED_FLAGS if f in self.flags]
        cap = f"; ONEDNN_MAX_CPU_ISA={self.isa_cap}" if self.isa_cap else ""
        native = "native bfloat16" if self.native_bf16 else "no native bfloat16"
        return f"{self.model} x {usable_cpus()} ({' '.join(have) or 'none of ' + ' '.join(REPORTED_FLAGS)}{cap}; {native})"


@functools.lru_cache(maxsize=None)
def probe(cpuinfo: Path = Path("/proc/cpuinfo"), isa_cap: Optional[str] = None) -> Cpu:
    """This CPU as ``cpuinfo`` describes it (first processor); ``isa_cap`` defaults to the
    environment's ``ONEDNN_MAX_CPU_ISA`` (``""``: no cap)."""
    try:
        lines = cpuinfo.read_text().splitlines()
    except OSError:
        lines = []
    fields = {}
    for line in lines:
        key, _, value = line.partition(":")
        fields.setdefault(key.strip(), value.strip())
    cap = (isa_cap if isa_cap is not None else os.environ.get("ONEDNN_MAX_CPU_ISA")) or None
    model = fields.get("model name") or platform.processor() or "unknown CPU"
    return Cpu(model, frozenset(fields.get("flags", "").split()), cap)
