"""Numeric precision of a run: fp32, or mixed precision by autocast (bf16 on a CPU or GPU, fp16 on a
GPU with a gradient scaler). Weights are saved fp32 in every case, so a model trained at any precision
loads and runs anywhere; only a recurrent tagger tagging in bf16 on a CPU holds its recurrent layers
in bf16 (:func:`lower_recurrent`)."""
from __future__ import annotations

import functools
import warnings
from typing import ContextManager

import torch

from adelabel.errors import EmulatedPrecisionWarning, OptionError

PRECISIONS = ("fp32", "bf16", "fp16")
_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


@functools.cache
def native_bf16() -> bool:
    """Whether this CPU has bfloat16 arithmetic of its own (AVX-512 BF16 or AMX), which oneDNN's bf16
    recurrent kernels need: on one without (AVX2 only), an LSTM under bf16 autocast fails to build its
    kernel, and bf16 runs emulated, slower than fp32."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def emulated(precision: str, device: torch.device) -> str | None:
    """A warning where bf16 runs on a CPU without native bf16: it runs there, emulated, slower than
    fp32, which a user choosing it for speed should know before a long run."""
    if precision != "bf16" or device.type != "cpu" or native_bf16():
        return None
    return ("warning: bf16: this CPU has no native bfloat16 arithmetic (AVX-512 BF16 or AMX); bf16 runs "
            "emulated here, slower than fp32")


def warn_emulated(precision: str, device: torch.device) -> None:
    """:func:`emulated`'s warning for a caller of the Python API, pointed at its ``load`` call."""
    if note := emulated(precision, device):
        warnings.warn(note.removeprefix("warning: "), EmulatedPrecisionWarning, stacklevel=3)


def recurrent_in_fp32(x: torch.Tensor) -> bool:
    """Whether a recurrent layer reading ``x`` must leave the CPU's bf16 autocast and run in fp32: on
    a CPU without native bf16, where oneDNN has no bf16 LSTM for autocast to call."""
    return (x.device.type == "cpu" and torch.is_autocast_enabled("cpu")
            and torch.get_autocast_dtype("cpu") == torch.bfloat16 and not native_bf16())


def check_precision(precision: str, device: torch.device, name: str = "precision") -> str:
    """``precision`` if ``device`` can run it; else a one-line error naming the argument (``--precision``
    on the command line) or ``name``, a config key say."""
    argument = "precision" if name == "precision" else None
    if precision not in PRECISIONS:
        raise OptionError(f"{name}: expected {', '.join(PRECISIONS)}, got {precision!r}", argument)
    # CPU kernels for fp16 are few and slow, and fp16 needs loss scaling besides: bf16 is the CPU's
    # mixed precision.
    if precision == "fp16" and device.type != "cuda":
        raise OptionError(f"{name} fp16: runs on a GPU only; on the CPU use bf16", argument)
    return precision


def autocast(device: torch.device, precision: str) -> ContextManager:
    """Where the forward pass (and loss) run: autocast to the precision's dtype, or for fp32 autocast
    off, so that a caller's own ``torch.autocast`` around a call does not change an fp32 model's
    results (a precision is fixed when a model is loaded)."""
    if precision == "fp32":
        return torch.autocast(device.type, enabled=False)
    return torch.autocast(device.type, dtype=_DTYPES[precision])


def lower_recurrent(model: torch.nn.Module) -> bool:
    """A recurrent tagger's (or an ensemble of them's) tagger and gate BiLSTMs cast to bf16, which
    ``run_packed`` feeds bf16 and reads back as fp32; False, and nothing changed, for other models.

    On a CPU with native bf16 these layers run about 1.5 times as fast in it, which is most of what
    autocast gains; autocast also kept bf16 copies of weights and buffers by shape, and a long
    `adelabel tag` run's memory grew with its input (770 MiB over 50,000 lines against 453 in fp32)."""
    from adelabel.models.ensemble import Ensemble
    from adelabel.models.recurrent import RecurrentTagger

    members = list(model.members) if isinstance(model, Ensemble) else [model]
    if not all(isinstance(m, RecurrentTagger) for m in members):
        return False
    for m in members:
        m.rnn.to(torch.bfloat16)
        if m.gate is not None:
            m.gate.rnn.to(torch.bfloat16)
    return True


def grad_scaler(device: torch.device, precision: str) -> torch.amp.GradScaler:
    """Loss scaling keeps fp16's small gradients from flushing to zero; bf16 and fp32 need none (the
    scaler is then a pass-through)."""
    return torch.amp.GradScaler(device.type, enabled=precision == "fp16")
