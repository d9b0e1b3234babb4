"""The float type the models compute in: bfloat16 where the CPU has native instructions for it.

Where the CPU has native bfloat16 instructions, bfloat16 reads markedly faster than float32 with
the same answers (docs/decisions.md); on CPUs without them torch would emulate it and run slower,
so "auto" picks it only when the CPU advertises the instructions.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

Precision = Literal["auto", "float32", "bfloat16"]
_NATIVE_BF16_FLAGS = {"avx512_bf16", "amx_bf16"}
# The instruction sets that decide how fast the models run: recorded beside every timing.
SPEED_FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_bf16", "amx_int8")


@lru_cache(maxsize=1)
def cpu_flags(cpuinfo: Path = Path("/proc/cpuinfo")) -> frozenset[str]:
    try:
        text = cpuinfo.read_text(encoding="ascii", errors="replace")
    except OSError:
        return frozenset()
    for line in text.splitlines():
        if line.startswith("flags"):
            return frozenset(line.split(":", 1)[-1].split())
    return frozenset()


def cpu_has_native_bf16(cpuinfo: Path = Path("/proc/cpuinfo")) -> bool:
    return bool(_NATIVE_BF16_FLAGS & cpu_flags(cpuinfo))


def speed_flags() -> str:
    """The CPU's speed-relevant flags, e.g. "avx2 avx512f avx512_vnni avx512_bf16"."""
    return " ".join(flag for flag in SPEED_FLAGS if flag in cpu_flags()) or "none of " + " ".join(SPEED_FLAGS)


def resolve_precision(precision: Precision) -> Literal["float32", "bfloat16"]:
    if precision == "auto":
        return "bfloat16" if cpu_has_native_bf16() else "float32"
    return precision


def torch_dtype(precision: Precision):
    import torch

    return getattr(torch, resolve_precision(precision))


def int8_linears(model):
    """``model`` (float32) with int8 weights in its linear layers (changed in place; activations are
    quantised as it runs).

    Faster where a forward pass is bound by reading weights, at some accuracy: the reader's is
    opt-in, the question encoder's the default in float32 (docs/decisions.md).
    """
    import warnings

    import torch

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.ao.quantization's deprecation notice (torchao is to replace it)
        return torch.ao.quantization.quantize_dynamic(model, {torch.nn.Linear}, dtype=torch.qint8, inplace=True)
