"""Training on several processes with DistributedDataParallel, as ``torchrun`` starts them.

``torchrun --nproc_per_node N -m adelabel train ...`` sets RANK, WORLD_SIZE and LOCAL_RANK; each
process then trains on its own share of every epoch's length buckets (all ranks draw the same
shuffled order from the run's seed and take every N-th batch), gradients are averaged by DDP, and
only rank 0 writes checkpoints, the log and the model folder. Every rank scores dev itself (their
weights are the same) and rank 0's score decides, so early stopping agrees everywhere.
"""
from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

import torch
import torch.distributed as dist

from adelabel.errors import AdelabelError, OptionError

T = TypeVar("T")


@dataclass(frozen=True)
class World:
    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0


def world() -> World:
    """This process's place among those torchrun started (one process alone when not under torchrun)."""
    try:
        size = int(os.environ.get("WORLD_SIZE", "1"))
        rank, local = int(os.environ.get("RANK", "0")), int(os.environ.get("LOCAL_RANK", "0"))
    except ValueError:
        raise OptionError("WORLD_SIZE, RANK and LOCAL_RANK: expected whole numbers (as torchrun sets them)") from None
    if size < 1 or not 0 <= rank < size:
        raise OptionError(f"RANK {rank} of WORLD_SIZE {size}: not a place in the world")
    return World(rank, size, local)


JOINING = False
"""Whether this process has begun to join its group: from here on its errors may be its own (its GPU,
its peers), where before it every rank met the same options and files (adelabel/cli.py, run)."""


def start(w: World, device: torch.device) -> torch.device:
    """Join the process group (NCCL on GPUs, gloo on CPUs); each rank takes the GPU of its local rank."""
    global JOINING
    if w.size == 1:
        return device
    if device.type == "cuda":
        # Checked by every rank alike (before joining, rank 0 speaks for all): a rank left without a GPU
        # would otherwise fail alone, and the others wait for it until torchrun kills them.
        here, seen = int(os.environ.get("LOCAL_WORLD_SIZE", w.local_rank + 1)), torch.cuda.device_count()
        if max(here, w.local_rank + 1) > seen:
            raise OptionError(f"--device cuda: {max(here, w.local_rank + 1)} processes on this machine, one GPU "
                              f"each, but torch sees {seen} CUDA device(s); start at most {seen} "
                              "(torchrun --nproc_per_node)")
    JOINING = True
    if device.type == "cuda":
        device = torch.device("cuda", w.local_rank)
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        try:
            dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
        except ValueError as err:  # RANK and WORLD_SIZE set by hand (or by a job), without torchrun's others
            raise AdelabelError(f"WORLD_SIZE {w.size}, RANK {w.rank}: cannot join the other processes "
                                f"({err}); start several with torchrun, or unset WORLD_SIZE "
                                "and RANK to train in one process") from None
        # Every rank here before any goes on to write (NCCL joins lazily; gloo's rendezvous may let the
        # first rank run ahead), so an error one rank meets at the start is met before rank 0 writes.
        # NCCL's barrier is told its GPU (else torch warns, whatever --quiet says).
        dist.barrier(device_ids=[device.index]) if device.type == "cuda" else dist.barrier()
    return device



class Loss(torch.nn.Module):
    """The model's forward pass and loss as one module: DDP sees every parameter the loss uses (the
    CRF's, the heads') inside ``forward``, as its gradient hooks require."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, batch) -> torch.Tensor:
        return self.model.loss(self.model(batch), batch)


def wrap(model: torch.nn.Module, w: World, device: torch.device) -> torch.nn.Module:
    """What the training step calls for a batch's loss: under torchrun, DDP around it, which averages
    the gradients over ranks."""
    loss = Loss(model)
    if w.size == 1:
        return loss
    from torch.nn.parallel import DistributedDataParallel

    # Heads sit out some batches (no drug-effect pair in a batch leaves the relation head unused).
    return DistributedDataParallel(loss, device_ids=[device.index] if device.type == "cuda" else None,
                                   find_unused_parameters=True)


def shard(batches: Sequence[T], w: World) -> list[T]:
    """This rank's batches: every ``size``-th, the same count on every rank (DDP waits for each rank's
    backward pass, so unequal counts would hang). When they do not divide evenly, the epoch's first
    batches are taken again to fill the last round (as torch's DistributedSampler pads), so that no
    batch is left out: with fewer batches than processes, leaving the rest out trained on nothing."""
    if not batches:
        return []
    rounds = -(-len(batches) // w.size)
    return [batches[i % len(batches)] for i in range(w.rank, rounds * w.size, w.size)]


def agree(value: T, w: World) -> T:
    """Rank 0's ``value`` on every rank."""
    if w.size == 1:
        return value
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


class Refused(AdelabelError):
    """Rank 0's error, raised on the other ranks too: each stops as rank 0 does, which says why."""

    every_rank = True


def on_main(w: World, action: Callable[[], T]) -> T | None:
    """``action()`` on rank 0 alone (what writes the run's files), its result there and None on the
    others. An error it meets (a full disk, a folder put in the model's place) stops every rank at once,
    rank 0 saying it, where the others would wait for rank 0 in their next collective step and learn
    only that it had gone."""
    if w.size == 1:
        return action()
    result, failure = None, None
    if w.main:
        try:
            result = action()
        except Exception as err:  # noqa: BLE001 - whatever it is, the others must hear of it
            failure = err
    message = agree(None if failure is None else f"{type(failure).__name__}: {failure}", w)
    if message is not None:
        stop(w)  # left to the exit, a live group can abort the process as it goes
        if failure is not None:
            raise failure
        raise Refused(message)
    return result


def gather(value: T, w: World) -> list[T]:
    """Every rank's ``value``, in rank order (on every rank)."""
    if w.size == 1:
        return [value]
    values: list = [None] * w.size
    dist.all_gather_object(values, value)
    return values


def stop(w: World) -> None:
    if w.size > 1 and dist.is_initialized():
        dist.destroy_process_group()
