"""Where are we running: device choice, GPU checks against the torch build, missing packages.

The team lost Kaggle runs to a GPU the installed torch could not drive (the P100 after Pascal
kernels were dropped: `cudaErrorNoKernelImageForDevice` half-way through a notebook). The check
here compares the GPU's compute capability with the architectures the torch build ships, before
any work starts, and without initialising CUDA (so a forked data-parallel launch stays possible).
"""

from __future__ import annotations

import importlib.util
import os
import platform
import shutil
import subprocess
import sys
import warnings
from dataclasses import asdict, dataclass, field

import torch

from common.kaggle_paths import KAGGLE_WORKING


@dataclass
class GpuInfo:
    index: int
    name: str
    capability: tuple[int, int]
    memory_gib: float
    supported: bool


@dataclass
class EnvInfo:
    python: str
    torch: str
    cuda_build: str | None
    arch_list: list[str]
    gpus: list[GpuInfo] = field(default_factory=list)
    on_kaggle: bool = False

    def to_dict(self) -> dict:
        return asdict(self)


def _gpus_from_nvidia_smi() -> list[tuple[str, tuple[int, int], float]]:
    """(name, capability, memory GiB) per GPU from nvidia-smi, which does not initialise CUDA."""
    if shutil.which("nvidia-smi") is None:
        return []
    try:
        out = subprocess.run(
            [
                "nvidia-smi",
                "--query-gpu=name,compute_cap,memory.total",
                "--format=csv,noheader,nounits",
            ],
            capture_output=True,
            text=True,
            timeout=20,
            check=True,
        ).stdout
    except (subprocess.SubprocessError, OSError):
        return []
    gpus = []
    for line in out.strip().splitlines():
        name, cap, mem = (s.strip() for s in line.split(","))
        major, minor = (int(x) for x in cap.split("."))
        gpus.append((name, (major, minor), float(mem) / 1024))
    return gpus


def arch_supported(capability: tuple[int, int], arch_list: list[str]) -> bool:
    """True when the torch build has kernels that run on a GPU of this compute capability.

    Binary `sm_XY` code runs on the same major version with an equal or higher minor; `compute_XY`
    (PTX) is compiled just in time for any newer GPU.
    """
    major, minor = capability
    for arch in arch_list:
        kind, _, num = arch.partition("_")
        if not num.isdigit():
            continue
        a_major, a_minor = int(num[:-1]), int(num[-1])
        if kind == "sm" and a_major == major and a_minor <= minor:
            return True
        if kind == "compute" and (a_major, a_minor) <= (major, minor):
            return True
    return False


def running_on_kaggle() -> bool:
    """A Kaggle session: its run-type variable, or the writable /kaggle/working it provides."""
    return bool(os.environ.get("KAGGLE_KERNEL_RUN_TYPE")) or KAGGLE_WORKING.is_dir()


def describe_environment() -> EnvInfo:
    arch_list = torch.cuda.get_arch_list() if torch.version.cuda else []
    gpus = [
        GpuInfo(i, name, cap, round(mem, 1), arch_supported(cap, arch_list))
        for i, (name, cap, mem) in enumerate(_gpus_from_nvidia_smi())
    ]
    return EnvInfo(
        python=platform.python_version(),
        torch=torch.__version__,
        cuda_build=torch.version.cuda,
        arch_list=arch_list,
        gpus=gpus,
        on_kaggle=running_on_kaggle(),
    )


def select_device(preference: str = "auto", env: EnvInfo | None = None) -> torch.device:
    """Pick "cuda" when a usable GPU exists (or is asked for), else "cpu", with a clear reason.

    A GPU that the torch build cannot run gets a one-line warning and the CPU, instead of a crash
    in the middle of training.
    """
    if preference not in ("auto", "cpu", "cuda"):
        raise ValueError(f"device={preference!r}: use 'auto', 'cpu' or 'cuda'")
    if preference == "cpu":
        return torch.device("cpu")
    env = env or describe_environment()
    usable = [g for g in env.gpus if g.supported]
    if env.gpus and not usable:
        g = env.gpus[0]
        warnings.warn(
            f"GPU {g.name} (sm_{g.capability[0]}{g.capability[1]}) is not supported by this torch build "
            f"(kernels for {' '.join(env.arch_list) or 'none'}); running on CPU. On Kaggle choose the T4 "
            "accelerator (machine_shape NvidiaTeslaT4).",
            stacklevel=2,
        )
        return torch.device("cpu")
    if usable or (preference == "cuda" and torch.cuda.is_available()):
        return torch.device("cuda")
    if preference == "cuda":
        warnings.warn(
            "device='cuda' was asked for but no CUDA GPU is visible; running on CPU", stacklevel=2
        )
    return torch.device("cpu")


def format_environment(env: EnvInfo, device: torch.device) -> str:
    lines = [
        f"python {env.python}, torch {env.torch} (CUDA build: {env.cuda_build or 'none'})",
        f"device: {device}" + (" (mixed precision fp16)" if device.type == "cuda" else " (fp32)"),
    ]
    for g in env.gpus:
        ok = "ok" if g.supported else "NOT SUPPORTED by this torch build"
        lines.append(
            f"  GPU {g.index}: {g.name}, sm_{g.capability[0]}{g.capability[1]}, {g.memory_gib} GiB: {ok}"
        )
    if not env.gpus:
        lines.append("  no GPU visible")
    return "\n".join(lines)


def install_missing(requirements: dict[str, str]) -> list[str]:
    """pip-install the packages whose import name is missing; returns what was installed.

    `requirements` maps an import name to a pip spec, e.g. {"pesq": "pesq>=0.0.4"}. Packages that
    are already there are left alone (Kaggle's image has most; reinstalling torch would be fatal).
    """
    missing = [
        spec for name, spec in requirements.items() if importlib.util.find_spec(name) is None
    ]
    if missing:
        print("installing:", " ".join(missing))
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", *missing], check=True)
    return missing
