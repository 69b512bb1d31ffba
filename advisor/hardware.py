"""Hardware detection: GPUs through NVML (nvidia-ml-py), RAM, CPU and free disk through psutil."""

from __future__ import annotations

import os
import platform
import shutil
from dataclasses import asdict, dataclass, field
from typing import Any

__all__ = ["Gpu", "Hardware", "detect_hardware", "hardware_from_answers"]

GB = 1e9


@dataclass(frozen=True)
class Gpu:
    name: str
    memory_gb: float
    """Total memory, GB (1e9 bytes)."""
    free_gb: float | None = None
    compute_capability: str | None = None
    driver: str | None = None

    @property
    def supports_bf16(self) -> bool | None:
        """bf16 tensor cores need compute capability 8.0 (Ampere) or newer; None when unknown."""
        if self.compute_capability is None:
            return None
        return float(self.compute_capability) >= 8.0


@dataclass(frozen=True)
class Hardware:
    gpus: list[Gpu] = field(default_factory=list)
    ram_gb: float | None = None
    ram_available_gb: float | None = None
    cpu_cores: int | None = None
    cpu_name: str | None = None
    cpu_vector: str | None = None
    """The widest fp32 SIMD the CPU has: avx512 | avx2 | neon | None (unknown); sets its FLOP/s peak."""
    cpu_ghz: float | None = None
    cpu_bf16: bool | None = None
    """The CPU has bf16 matrix units (AMX-BF16), where training in bf16 pays; None when unknown."""
    disk_free_gb: float | None = None
    source: str = "detected"
    """detected | answers (the user stated the hardware in the answers file)."""
    notes: list[str] = field(default_factory=list)
    """What could not be detected and why; normal cases such as 'no NVIDIA GPU'."""

    @property
    def device(self) -> str:
        return "cuda" if self.gpus else "cpu"

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["device"] = self.device
        return out


def _detect_gpus() -> tuple[list[Gpu], list[str]]:
    try:
        import pynvml  # nvidia-ml-py
    except ImportError:
        return [], ["nvidia-ml-py is not installed: GPUs not detected"]
    try:
        pynvml.nvmlInit()
    except Exception as exc:  # NVMLError_LibraryNotFound, DriverNotLoaded, ...: no NVIDIA GPU here
        return [], [f"no NVIDIA GPU detected ({_nvml_reason(exc)})"]
    gpus = []
    try:
        driver = _text(pynvml.nvmlSystemGetDriverVersion())
        visible = os.environ.get("CUDA_VISIBLE_DEVICES")
        count = pynvml.nvmlDeviceGetCount()
        indices: list[int] = list(range(count))
        if visible is not None:
            indices = [int(i) for i in visible.split(",") if i.strip().isdigit() and int(i) < count]
        for i in indices:
            handle = pynvml.nvmlDeviceGetHandleByIndex(i)
            mem = pynvml.nvmlDeviceGetMemoryInfo(handle)
            try:
                major, minor = pynvml.nvmlDeviceGetCudaComputeCapability(handle)
                cc: str | None = f"{major}.{minor}"
            except Exception:
                cc = None
            gpus.append(Gpu(name=_text(pynvml.nvmlDeviceGetName(handle)), memory_gb=round(mem.total / GB, 2),
                            free_gb=round(mem.free / GB, 2), compute_capability=cc, driver=driver))
    finally:
        try:
            pynvml.nvmlShutdown()
        except Exception:
            pass
    return gpus, []


def _nvml_reason(exc: Exception) -> str:
    text = str(exc) or type(exc).__name__
    return "NVML library not found" if "LibraryNotFound" in type(exc).__name__ or "not found" in text.lower() else text


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


#: CPU flags (/proc/cpuinfo) of bf16 matrix units, with which bf16 training is faster than fp32: AMX-BF16 (1.8x
#: for SmolLM2-135M forward and backward, issue 17). AVX512-BF16 alone does not pay: measured on a Xeon with it
#: and no AMX (torch 2.13), a bf16 GEMM took 9.1 ms against 5.5 ms in fp32, and a LoRA step under bf16 autocast
#: 5.0 s against 2.8 s. Arm's BF16 is not measured, so it stays fp32 too.
BF16_FLAGS = frozenset({"amx_bf16"})


def _cpu_facts() -> tuple[str | None, str | None, float | None, bool | None]:
    """CPU model name, widest fp32 SIMD (avx512 | avx2 | neon), clock in GHz and bf16 units, where they can be
    read."""
    name = vector = None
    mhz = None
    bf16: bool | None = None
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                key, _, value = line.partition(":")
                key, value = key.strip(), value.strip()
                if key == "model name" and name is None:
                    name = value
                elif key == "cpu MHz" and mhz is None:
                    mhz = float(value) if value.replace(".", "", 1).isdigit() else None
                elif key in ("flags", "Features") and vector is None:
                    flags = set(value.split())
                    bf16 = bool(flags & BF16_FLAGS)
                    vector = ("avx512" if "avx512f" in flags else "avx2" if {"avx2", "fma"} <= flags
                              else "neon" if {"asimd", "neon"} & flags else None)
    except OSError:
        pass
    if vector is None and platform.machine().lower() in ("arm64", "aarch64"):
        vector = "neon"
    return name or platform.processor() or None, vector, round(mhz / 1000, 2) if mhz else None, bf16


def detect_hardware(disk_path: str = ".") -> Hardware:
    """What this machine has. No GPU, and no NVML library, are normal cases, noted in `notes`."""
    import psutil

    gpus, notes = _detect_gpus()
    vm = psutil.virtual_memory()
    try:
        disk_free: float | None = round(shutil.disk_usage(disk_path).free / GB, 1)
    except OSError:
        disk_free = None
    cores = psutil.cpu_count(logical=False) or os.cpu_count()
    name, vector, ghz, bf16 = _cpu_facts()
    return Hardware(gpus=gpus, ram_gb=round(vm.total / GB, 1), ram_available_gb=round(vm.available / GB, 1),
                    cpu_cores=cores, cpu_name=name, cpu_vector=vector, cpu_ghz=ghz, cpu_bf16=bf16,
                    disk_free_gb=disk_free, notes=notes)


def hardware_from_answers(gpus: list[tuple[str, float]], ram_gb: float | None,
                          detected: Hardware | None = None) -> Hardware:
    """Hardware the user stated (answers file). CPU facts come from `detected` when given."""
    return Hardware(
        gpus=[Gpu(name=n, memory_gb=float(m)) for n, m in gpus],
        ram_gb=ram_gb if ram_gb is not None else (detected.ram_gb if detected else None),
        cpu_cores=detected.cpu_cores if detected else None,
        cpu_name=detected.cpu_name if detected else None,
        cpu_vector=detected.cpu_vector if detected else None,
        cpu_ghz=detected.cpu_ghz if detected else None,
        cpu_bf16=detected.cpu_bf16 if detected else None,
        disk_free_gb=detected.disk_free_gb if detected else None,
        source="answers",
    )
