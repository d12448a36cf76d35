"""Device choice: ``auto`` picks CUDA, then MPS, then the CPU."""

from __future__ import annotations

import sys
from typing import Literal

from focusstudio.core.errors import FocusStudioError

DeviceChoice = Literal["auto", "cpu", "cuda", "mps"]
DEVICE_CHOICES: tuple[str, ...] = ("auto", "cpu", "cuda", "mps")


def resolve_device(choice: str = "auto") -> str:
    """Return a torch device string for ``choice``; a named but absent device is an error."""
    import torch

    if choice == "auto":
        if torch.cuda.is_available():
            return "cuda"
        mps = getattr(torch.backends, "mps", None)
        if mps is not None and mps.is_available():
            return "mps"
        return "cpu"
    if choice == "cpu":
        return "cpu"
    if choice.startswith("cuda"):
        if not torch.cuda.is_available():
            raise FocusStudioError("device 'cuda' was requested but no CUDA GPU is available")
        return choice
    if choice == "mps":
        mps = getattr(torch.backends, "mps", None)
        if mps is None or not mps.is_available():
            raise FocusStudioError("device 'mps' was requested but Apple MPS is not available")
        return "mps"
    raise FocusStudioError(f"unknown device {choice!r}; valid: {', '.join(DEVICE_CHOICES)}")


def is_out_of_memory(error: BaseException) -> bool:
    """True for an out-of-memory error: a GPU's, or a failed host allocation (MemoryError), so
    the caller can retry with smaller tiles / on the CPU."""
    if isinstance(error, MemoryError):
        return True
    if "torch" not in sys.modules:  # nothing torch-made can have been raised
        return False
    import torch

    oom_type = getattr(torch, "OutOfMemoryError", None) or getattr(torch.cuda, "OutOfMemoryError", None)
    if oom_type is not None and isinstance(error, oom_type):
        return True
    return isinstance(error, RuntimeError) and "out of memory" in str(error).lower()


def release_cached_gpu_memory() -> None:
    """Return the blocks torch's CUDA allocator caches (after an out-of-memory error, before a
    retry); nothing to do when torch was never loaded or there is no GPU."""
    if "torch" not in sys.modules:
        return
    import torch

    if torch.cuda.is_available():
        torch.cuda.empty_cache()
