"""``--self-test``: fuse the bundled sample stack with every method that can run, check results.

Used by the frozen app after building (packaging/build.sh) and available as
``focusstudio self-test``. Qt-free; exits 0 when every runnable method produced a plausible
result and 1 otherwise. "Plausible" is measured, not assumed: the fused image must be finite, of
the stack's shape, and closer to the sample's all-in-focus original than the average frame is.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO

import numpy as np


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10.0 * np.log10(1.0 / mse)


def run_self_test(out: TextIO = sys.stdout, methods: list[str] | None = None) -> int:
    from focusstudio.core.runtime import tune_process

    tune_process()  # the frozen app's --self-test starts here, not in the CLI
    from focusstudio import __version__
    from focusstudio.core.io import load_stack, read_image
    from focusstudio.core.methods.registry import get_method, list_methods
    from focusstudio.core.pipeline import fuse
    from focusstudio.resources import resources_dir, sample_stack_dir

    stack = load_stack([str(sample_stack_dir())])
    truth = read_image(resources_dir() / "sample_stack_gt.png")
    frame_psnr = [_psnr(stack.load(i), truth) for i in range(len(stack))]
    baseline = float(np.mean(frame_psnr))
    print(f"FocusStudio {__version__} self-test: {len(stack)} frames {stack.shape}, "
          f"mean frame PSNR {baseline:.2f} dB", file=out)
    failures = 0
    ran = 0
    for name in methods or list_methods():
        method = get_method(name)
        available, reason = method.availability()
        if not available:
            print(f"  {name:<10} skipped ({reason})", file=out)
            continue
        started = time.perf_counter()
        try:
            result = fuse(stack, name, device="cpu")
        except Exception as error:  # a self-test reports every failure, whatever its type
            print(f"  {name:<10} FAILED: {type(error).__name__}: {error}", file=out)
            failures += 1
            continue
        seconds = time.perf_counter() - started
        ran += 1
        image = result.image
        problems = []
        if image.shape[:2] != stack.shape:
            problems.append(f"shape {image.shape} != {stack.shape}")
        if not np.isfinite(image).all():
            problems.append("non-finite pixels")
        quality = _psnr(np.clip(image, 0, 1), truth) if not problems else float("nan")
        if not problems and quality <= baseline:
            problems.append(f"PSNR {quality:.2f} dB not above the mean frame's {baseline:.2f} dB")
        status = "ok" if not problems else "FAILED: " + "; ".join(problems)
        print(f"  {name:<10} {status} (PSNR {quality:.2f} dB, {seconds:.2f} s)", file=out)
        failures += bool(problems)
    if ran == 0:
        print("no method could run", file=out)
        return 1
    print("self-test " + ("passed" if failures == 0 else f"failed ({failures} method(s))"), file=out)
    return 0 if failures == 0 else 1
