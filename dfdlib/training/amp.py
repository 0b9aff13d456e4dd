"""Mixed precision by capability: which autocast dtype `amp="auto"` picks on this device, and why.

bf16 needs no loss scaling but is only fast where the hardware has it: CUDA GPUs of compute capability
8.0+ (A100, L4, H100, RTX 30xx+) and CPUs with AVX512-BF16 or AMX. Older GPUs (T4, V100: 7.x) report
`torch.cuda.is_bf16_supported()` through emulation, which is slow, so they get fp16 + GradScaler.
"""
from __future__ import annotations

MODES = ("auto", "bf16", "fp16", "off")
_CPU_BF16_FLAGS = ("avx512_bf16", "amx_bf16")


def cpu_bf16_flags(cpuinfo: str = "/proc/cpuinfo") -> list[str]:
    """The native-bf16 instruction flags (avx512_bf16, amx_bf16) this CPU reports; [] if none or unknown."""
    try:
        with open(cpuinfo) as f:
            for line in f:
                if line.startswith("flags"):
                    flags = set(line.partition(":")[2].split())
                    return [f for f in _CPU_BF16_FLAGS if f in flags]
    except OSError:  # not Linux: no /proc; macOS/Windows CPUs train in fp32 under "auto"
        pass
    return []


def cpu_has_native_bf16(cpuinfo: str = "/proc/cpuinfo") -> bool:
    """True if the CPU has AVX512-BF16 or AMX (bf16 matrix units), from /proc/cpuinfo flags."""
    return bool(cpu_bf16_flags(cpuinfo))


def choose_amp(requested: str, device_type: str, cuda_capability: tuple[int, int] | None = None,
               cpu_bf16: bool | None = None) -> tuple[str, str]:
    """Pick the AMP mode: returns ("bf16" | "fp16" | "off", a reason to print).

    Takes the requested mode ("auto" | "bf16" | "fp16" | "off"), the device type ("cuda", "cpu", "mps"),
    and optionally the GPU's compute capability and whether the CPU has native bf16 (detected when
    None). "auto": bf16 on CUDA with capability >= 8.0, fp16 + GradScaler on older CUDA, bf16 on CPUs
    with AVX512-BF16/AMX, off elsewhere. Raises ValueError for an unknown mode or fp16 off CUDA.
    """
    if requested not in MODES:
        raise ValueError(f"amp={requested!r}: choose one of {', '.join(MODES)}")
    if requested == "fp16" and device_type != "cuda":
        raise ValueError("amp='fp16' needs a CUDA GPU; use amp='bf16' (CPUs with AVX512-BF16/AMX) or 'off'")
    if requested != "auto":
        return requested, f"amp={requested!r} as configured"
    if device_type == "cuda":
        if cuda_capability is None:
            import torch

            cuda_capability = torch.cuda.get_device_capability()
        cc = ".".join(map(str, cuda_capability))
        if tuple(cuda_capability) >= (8, 0):
            return "bf16", f"amp='auto': GPU compute capability {cc} >= 8.0 has native bf16"
        return "fp16", f"amp='auto': GPU compute capability {cc} < 8.0 (bf16 would be emulated): fp16 + GradScaler"
    if device_type == "cpu":
        flags = cpu_bf16_flags() if cpu_bf16 is None else (["native bf16"] if cpu_bf16 else [])
        if flags:
            return "bf16", f"amp='auto': the CPU has {'/'.join(flags)}"
        return "off", "amp='auto': the CPU has no native bf16 (AVX512-BF16/AMX): fp32"
    return "off", f"amp='auto': off on {device_type}"
