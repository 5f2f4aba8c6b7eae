"""
runtime.py: where and in what precision the networks run, and how their time and memory are measured.
One policy for every script (train.py, sample.py, evaluate.py, tools/bench.py):

  device     --device auto: the first CUDA GPU if PyTorch sees one, else the CPU.
  precision  --precision auto: bf16 autocast on a GPU that supports it natively (Ampere and newer),
             fp16 on an older GPU (training then scales the loss: fp16 gradients underflow), fp32 on the
             CPU, where half-precision convolutions are unsupported or slow. Weights stay fp32 throughout;
             autocast only runs the matrix work in half precision.
  files      sha256_file: the digest that downloaded files and distributed checkpoints are checked against.
"""

import hashlib
import time

import torch

PRECISIONS = ("auto", "bf16", "fp16", "fp32")


def resolve_device(name="auto"):
    """torch.device for --device: auto, cpu, cuda or cuda:N (an error when CUDA is asked for but absent)."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise SystemExit("error: --device cuda, but PyTorch sees no CUDA GPU (use --device cpu)")
    device = torch.device(name)
    if device.type == "cuda" and device.index is None:  # "cuda": the current GPU, by number
        device = torch.device("cuda", torch.cuda.current_device())
    return device


def resolve_precision(name, device):
    """The autocast dtype for --precision on `device` (see the policy above)."""
    if name not in PRECISIONS:
        raise ValueError(f"unknown precision '{name}' (choose from {', '.join(PRECISIONS)})")
    if device.type != "cuda":
        if name in ("bf16", "fp16"):
            print(f"note: --precision {name} is not used on the CPU; running in fp32")
        return torch.float32
    if name == "auto":
        return torch.bfloat16 if torch.cuda.is_bf16_supported(including_emulation=False) else torch.float16
    return {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}[name]


def autocast(device, dtype):
    """The autocast context for `dtype` (a no-op in fp32)."""
    return torch.autocast(device.type, dtype=dtype, enabled=dtype != torch.float32)


def timed(fn, device):
    """(fn(), its wall time in ms), with the GPU synchronized on both sides so the time is the GPU's too."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    t0 = time.perf_counter()
    out = fn()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return out, 1000 * (time.perf_counter() - t0)


def peak_memory(device):
    """Peak memory so far: allocated on the GPU (since the last reset_peak_memory_stats), or the whole
    process's peak resident memory on the CPU, which no reset can isolate."""
    if device.type == "cuda":
        return f"{torch.cuda.max_memory_allocated(device) / 2**30:.2f} GiB"
    import resource  # POSIX only; ru_maxrss is in KiB on Linux

    return f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20:.2f} GiB (process peak so far)"


def sha256_file(path):
    """The SHA-256 of a file, as hex (what `sha256sum` prints)."""
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()
