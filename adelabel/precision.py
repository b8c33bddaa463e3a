"""Numeric precision of a run: fp32, or mixed precision by autocast (bf16 on a CPU or GPU, fp16 on a
GPU with a gradient scaler). Weights stay fp32 in every case, so a model trained at any precision
loads and runs anywhere."""
from __future__ import annotations

from contextlib import nullcontext
from typing import ContextManager

import torch

from adelabel.errors import OptionError

PRECISIONS = ("fp32", "bf16", "fp16")
_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def check_precision(precision: str, device: torch.device, name: str = "--precision") -> str:
    """``precision`` if ``device`` can run it; else a one-line error naming the option (or key)."""
    if precision not in PRECISIONS:
        raise OptionError(f"{name}: expected {', '.join(PRECISIONS)}, got {precision!r}")
    # CPU kernels for fp16 are few and slow, and fp16 needs loss scaling besides: bf16 is the CPU's
    # mixed precision.
    if precision == "fp16" and device.type != "cuda":
        raise OptionError(f"{name} fp16: runs on a GPU only; on the CPU use bf16")
    return precision


def autocast(device: torch.device, precision: str) -> ContextManager:
    """Where the forward pass (and loss) run: autocast to the precision's dtype, or nothing for fp32."""
    if precision == "fp32":
        return nullcontext()
    return torch.autocast(device.type, dtype=_DTYPES[precision])


def grad_scaler(device: torch.device, precision: str) -> torch.amp.GradScaler:
    """Loss scaling keeps fp16's small gradients from flushing to zero; bf16 and fp32 need none (the
    scaler is then a pass-through)."""
    return torch.amp.GradScaler(device.type, enabled=precision == "fp16")
