"""Data-parallel plumbing: one process per GPU (NCCL) or per CPU worker (gloo).

Two ways in:
- the command line: `torchrun --nproc-per-node N -m common train ...` (or `train --nproc N`, which
  launches the same thing): torchrun sets RANK/WORLD_SIZE/LOCAL_RANK and `init_distributed` joins;
- a notebook, where `common` is inlined into `__main__` and cannot be imported by a fresh
  interpreter: `launch_processes(fn, nproc, ...)` forks the workers (like
  `accelerate.notebook_launcher`). Forking needs CUDA untouched in the parent; the launcher
  refuses otherwise instead of letting every worker crash.

Every collective has a timeout, and the launcher stops the remaining workers as soon as one
fails, so a killed or crashed process never leaves its peers hanging.
"""

from __future__ import annotations

import datetime
import logging
import os
import socket
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.distributed as dist
import torch.multiprocessing as torch_mp

from common.errors import UserError

DEFAULT_DDP_TIMEOUT_MINUTES = 10.0

# `torch.cuda.is_available()` normally initialises the CUDA driver (cudaGetDeviceCount), after
# which forked workers cannot use the GPU. With this variable torch asks NVML instead, which is
# fork-safe; set here so that any check made in a notebook before the launch stays harmless.
os.environ.setdefault("PYTORCH_NVML_BASED_CUDA_CHECK", "1")


@dataclass(frozen=True)
class DistInfo:
    """Where this process sits in a data-parallel group (rank 0 of 1 when not distributed)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    def device(self, requested: str) -> torch.device:
        """This process's device: its own GPU in a data-parallel group, else `requested`
        ("auto", "cpu" or "cuda", as `common.env.select_device` chooses)."""
        from common.env import select_device

        if self.enabled and torch.cuda.is_available() and requested != "cpu":
            return torch.device("cuda", self.local_rank)
        device = select_device(requested)
        return (
            torch.device("cuda", torch.cuda.current_device()) if device.type == "cuda" else device
        )

    def collective_device(self, device: torch.device) -> torch.device:
        """Where reductions run: NCCL reduces CUDA tensors only; gloo takes CPU tensors."""
        return device if device.type == "cuda" and self.enabled else torch.device("cpu")


def dist_info() -> DistInfo:
    """The current process group's layout, or a single-process `DistInfo`."""
    if dist.is_available() and dist.is_initialized():
        return DistInfo(
            dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", 0))
        )
    return DistInfo()


def init_distributed(timeout_minutes: float = DEFAULT_DDP_TIMEOUT_MINUTES) -> DistInfo:
    """Join the process group described by torchrun's environment variables, if any.

    Without WORLD_SIZE > 1 this is a no-op returning a single-process `DistInfo`. NCCL is used
    when a GPU is visible (one per local rank), gloo otherwise.
    """
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1 or (dist.is_available() and dist.is_initialized()):
        return dist_info()
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    use_cuda = torch.cuda.is_available()
    if use_cuda:
        if local_rank >= torch.cuda.device_count():
            raise UserError(
                f"WORLD_SIZE={world_size}: local rank {local_rank} has no GPU "
                f"({torch.cuda.device_count()} visible); use --nproc {torch.cuda.device_count()}"
            )
        torch.cuda.set_device(local_rank)
    dist.init_process_group(
        backend="nccl" if use_cuda else "gloo",
        timeout=datetime.timedelta(minutes=timeout_minutes),
    )
    return dist_info()


def cleanup_distributed() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def all_reduce_sum(values: list[float], device: torch.device | str = "cpu") -> list[float]:
    """Element-wise sum of `values` over all ranks (unchanged when not distributed)."""
    if not (dist.is_available() and dist.is_initialized()):
        return [float(v) for v in values]
    t = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return [float(v) for v in t.cpu()]


def any_rank(flag: bool, device: torch.device | str = "cpu") -> bool:
    """True on every rank when `flag` is true on at least one (keeps stop decisions in step)."""
    return all_reduce_sum([1.0 if flag else 0.0], device)[0] > 0


def broadcast_from_main(obj: object) -> object:
    """Rank 0's `obj` on every rank (pickled; for small things such as dataset descriptions)."""
    if not (dist.is_available() and dist.is_initialized()):
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def barrier() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.barrier()


def free_port() -> int:
    """An unused local TCP port for the rendezvous."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _launched_worker(
    local_rank: int,
    user_errors: object,
    fn: Callable,
    nproc: int,
    port: int,
    timeout_minutes: float,
    cpu_threads: int,
    args: tuple,
    kwargs: dict,
) -> None:
    os.environ.update(
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
        RANK=str(local_rank),
        LOCAL_RANK=str(local_rank),
        WORLD_SIZE=str(nproc),
        LOCAL_WORLD_SIZE=str(nproc),
    )
    # Always set: N processes with full thread pools fight over the same cores, and a forked
    # child must not start a new OpenMP pool at all (libgomp hangs after fork when the parent
    # already ran parallel code), so forked workers get exactly one thread.
    torch.set_num_threads(cpu_threads)
    try:
        init_distributed(timeout_minutes)
        fn(*args, **kwargs)
    except UserError as exc:
        # The parent reports it as the one line it is; torch would only pass on a traceback.
        user_errors.put(str(exc))
        raise
    finally:
        cleanup_distributed()


def launch_processes(
    fn: Callable,
    nproc: int,
    args: tuple = (),
    kwargs: dict | None = None,
    *,
    start_method: str = "fork",
    timeout_minutes: float = DEFAULT_DDP_TIMEOUT_MINUTES,
) -> None:
    """Run `fn(*args, **kwargs)` in `nproc` data-parallel processes and wait for all of them.

    `start_method="fork"` works from a notebook (functions defined in `__main__`); each forked
    worker runs torch with one CPU thread (the GPU does the work there; see `_launched_worker`).
    "spawn" needs `fn` importable and gives each worker `cpu_count // nproc` threads. When any
    worker fails, the others are terminated and an exception names the failing rank; a worker's
    `UserError` (a user's mistake) is raised here again as that one-line error. `nproc=1`
    calls `fn` in this process.
    """
    if nproc < 1:
        raise UserError(f"nproc={nproc}: use 1 or more processes")
    if nproc == 1:
        fn(*args, **(kwargs or {}))
        return
    if start_method == "fork" and torch.cuda.is_initialized():
        raise UserError(
            "CUDA is already initialised in this process, so data-parallel workers cannot be "
            "forked; restart the kernel and launch before any tensor is moved to the GPU"
        )
    cpu_threads = 1 if start_method == "fork" else max(1, (os.cpu_count() or 1) // nproc)
    port = free_port()
    user_errors = torch_mp.get_context(start_method).SimpleQueue()
    # torch logs a line per peer it terminates after a failure; the exception below says it all.
    spawn_log = logging.getLogger("torch.multiprocessing.spawn")
    level = spawn_log.level
    spawn_log.setLevel(logging.ERROR)
    try:
        torch_mp.start_processes(
            _launched_worker,
            args=(user_errors, fn, nproc, port, timeout_minutes, cpu_threads, args, kwargs or {}),
            nprocs=nproc,
            join=True,
            start_method=start_method,
        )
    except torch_mp.ProcessRaisedException:
        if not user_errors.empty():
            raise UserError(user_errors.get()) from None
        raise
    finally:
        spawn_log.setLevel(level)
