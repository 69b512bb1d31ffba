"""Hardware detection: no GPU and no NVML library are normal cases; stated hardware is used as given."""

from __future__ import annotations

from typing import Any

import pytest

from advisor.hardware import Gpu, detect_hardware, hardware_from_answers


def test_detection_on_this_machine_reports_ram_cpu_and_disk() -> None:
    hw = detect_hardware()
    assert hw.ram_gb and hw.ram_gb > 0 and hw.cpu_cores and hw.cpu_cores >= 1
    assert hw.disk_free_gb is not None and hw.source == "detected"
    if not hw.gpus:
        assert hw.device == "cpu" and hw.notes


@pytest.mark.parametrize(("flags", "machine", "vector", "bf16"), [
    ("fpu sse2 avx avx2 fma avx512f avx512dq", "x86_64", "avx512", False),
    ("fpu sse2 avx avx2 fma avx512f avx512_bf16 amx_bf16 amx_tile", "x86_64", "avx512", True),
    ("fpu sse2 avx avx2 fma avx512f avx512_bf16", "x86_64", "avx512", False),  # bf16 slower than fp32 there
    ("fpu sse2 avx avx2 fma", "x86_64", "avx2", False),
    ("fpu sse2 avx", "x86_64", None, False),
    ("fp asimd evtstrm aes", "aarch64", "neon", False),
    ("fp asimd evtstrm aes bf16 i8mm", "aarch64", "neon", False),  # not measured: fp32
])
def test_the_cpu_simd_kind_clock_and_bf16_units_come_from_cpuinfo(tmp_path: Any, monkeypatch: pytest.MonkeyPatch,
                                                                  flags: str, machine: str, vector: str | None,
                                                                  bf16: bool) -> None:
    """They set the CPU's FLOP/s peak in the time estimate (64, 32 or 16 fp32 FLOP a cycle) and whether training
    on the CPU uses bf16 (only with AMX-BF16, where it is faster)."""
    import builtins

    import advisor.hardware as hardware

    cpuinfo = tmp_path / "cpuinfo"
    key = "Features" if machine == "aarch64" else "flags"
    cpuinfo.write_text(f"processor\t: 0\nmodel name\t: Test CPU\ncpu MHz\t\t: 2299.998\n{key}\t\t: {flags}\n")
    real_open = builtins.open
    monkeypatch.setattr(builtins, "open", lambda p, *a, **k: real_open(cpuinfo if p == "/proc/cpuinfo" else p, *a, **k))
    import platform

    monkeypatch.setattr(platform, "machine", lambda: machine)
    assert hardware._cpu_facts() == ("Test CPU", vector, 2.3, bf16)


def test_a_missing_nvml_library_is_a_note_not_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    import pynvml

    class NVMLError_LibraryNotFound(Exception):  # noqa: N801 - the name NVML gives this error
        pass

    def no_library() -> None:
        raise NVMLError_LibraryNotFound("NVML Shared Library Not Found")

    monkeypatch.setattr(pynvml, "nvmlInit", no_library)
    hw = detect_hardware()
    assert hw.gpus == [] and hw.device == "cpu"
    assert hw.notes == ["no NVIDIA GPU detected (NVML library not found)"]


def test_stated_hardware_is_used_as_given() -> None:
    hw = hardware_from_answers([("NVIDIA GeForce RTX 4090", 24)], 64)
    assert hw.device == "cuda" and hw.gpus[0].memory_gb == 24 and hw.ram_gb == 64 and hw.source == "answers"


@pytest.mark.parametrize(("cc", "bf16"), [("7.5", False), ("8.0", True), ("9.0", True), (None, None)])
def test_bf16_support_from_compute_capability(cc: str | None, bf16: bool | None) -> None:
    assert Gpu("x", 16, compute_capability=cc).supports_bf16 is bf16


@pytest.mark.gpu
def test_a_cuda_gpu_is_detected_with_its_memory() -> None:
    pytest.importorskip("torch")
    import torch

    if not torch.cuda.is_available():
        pytest.skip("no CUDA GPU on this machine")
    hw = detect_hardware()
    assert hw.gpus and hw.gpus[0].memory_gb > 1 and hw.gpus[0].compute_capability
