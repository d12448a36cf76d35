"""How many network evaluations a deep method's N-frame fusion costs: linear or quadratic in N?

    python benchmarks/bench_nframe_cost.py                          # N = 3, 6, 12 on a 96² stack
    python benchmarks/bench_nframe_cost.py --tile-size 48           # the tiled paths
    PYTHONPATH=/tmp/base python benchmarks/bench_nframe_cost.py     # another tree (run as a file)

Counts, pixel-weighted (a pass over a tile's read window counts its share of the frame, so halos
and small calibration passes show as fractions):

* sesf, gacn: encoder passes over one frame — every block evaluation of the dense SE encoder
  (forward, tiled channel statistics) in frame-sized units, divided by the number of blocks;
* twostream, ufa: passes of the pair network over a pair of frames (the network's own
  ``forward``); mfifgan: passes of its shared plane encoder in pair units (six colour planes, a
  pair's, count 1: the neighbours strategy encodes each frame once, outside ``forward``).

Random weights (the counts do not depend on the values); ``fuse`` in process on the CPU.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

#: (method, strategy or None for the default) rows of the table.
CASES: tuple[tuple[str, str | None], ...] = (
    ("sesf", None), ("sesf", "nway"), ("sesf", "serial"),
    ("gacn", None), ("gacn", "calibration"),
    ("mfifgan", None), ("twostream", None), ("ufa", None),
)


class Counter:
    def __init__(self) -> None:
        self.pixels = 0.0

    def add(self, pixels: float) -> None:
        self.pixels += pixels


@contextmanager
def counting(counter: Counter) -> Iterator[None]:
    """Count encoder block evaluations (FastEncoder) and pair-network forwards (pixels)."""
    from focusstudio.core.methods import checkpoint
    from focusstudio.core.methods.backends import fast_cpu

    encoder = fast_cpu.FastEncoder
    blocks = 4  # DenseSEEncoder's blocks; each counts 1/4 of an encoder pass
    originals: dict[str, Callable[..., Any]] = {
        name: getattr(encoder, name) for name in ("_conv", "_first_conv_relu", "_dense_conv_relu")
    }

    def pixels_of(tensor: Any) -> int:
        return int(tensor.shape[-2]) * int(tensor.shape[-1]) * int(tensor.shape[0])

    def conv(self: Any, x: Any, i: int) -> Any:
        counter.add(pixels_of(x) / blocks)
        return originals["_conv"](self, x, i)

    def first(self: Any, x: Any) -> Any:
        counter.add(pixels_of(x) / blocks)
        return originals["_first_conv_relu"](self, x)

    def dense(self: Any, parts: Any, i: int) -> Any:
        counter.add(pixels_of(parts[0]) / blocks)
        return originals["_dense_conv_relu"](self, parts, i)

    hooked: set[int] = set()
    load = checkpoint.load_method_network

    def load_counted(name: str, weights: Any) -> Any:
        loaded = load(name, weights)
        if name not in ("sesf", "gacn") and id(loaded.network) not in hooked:
            hooked.add(id(loaded.network))
            if name == "mfifgan":
                # the shared plane encoder (its ~80 % of a pass), in pair units: six colour planes
                # are one pair; the neighbours strategy encodes each frame once, outside forward
                loaded.network.encoder.register_forward_hook(
                    lambda module, inputs, output: counter.add(pixels_of(inputs[0]) / 6))
            else:
                loaded.network.register_forward_hook(lambda module, inputs, output: counter.add(pixels_of(inputs[0])))
        return loaded

    try:
        encoder._conv, encoder._first_conv_relu, encoder._dense_conv_relu = conv, first, dense  # type: ignore[method-assign]
        checkpoint.load_method_network = load_counted  # type: ignore[assignment]
        yield
    finally:
        for name, original in originals.items():
            setattr(encoder, name, original)
        checkpoint.load_method_network = load  # type: ignore[assignment]


def make_stack(count: int, edge: int) -> list[np.ndarray]:
    """``count`` colour frames of one random texture, each sharp in its own vertical band."""
    import cv2

    rng = np.random.default_rng(0)
    texture = cv2.resize(rng.random((edge // 4, edge // 4, 3)).astype(np.float32), (edge, edge),
                         interpolation=cv2.INTER_CUBIC)
    blurred = cv2.GaussianBlur(texture, (0, 0), 3.0)
    frames = []
    for index in range(count):
        frame = blurred.copy()
        band = slice(index * edge // count, (index + 1) * edge // count)
        frame[:, band] = texture[:, band]
        frames.append(np.clip(frame, 0.0, 1.0))
    return frames


def random_weights(method: str, folder: Path) -> Path:
    import torch

    from focusstudio.core.methods.registry import get_spec

    torch.manual_seed(0)
    network = get_spec(method).build_network()
    path = folder / f"{method}_random.pt"
    # the trainer's format (focusstudio.core.training.manifest): default architecture
    torch.save({"arch": method, "config": {}, "state_dict": network.state_dict()}, path)
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, nargs="+", default=[3, 6, 12])
    parser.add_argument("--edge", type=int, default=96)
    parser.add_argument("--tile-size", type=int, default=None)
    parser.add_argument("--methods", nargs="+", default=None, help="only these methods")
    args = parser.parse_args(argv)
    import torch

    from focusstudio.core.pipeline import fuse
    from focusstudio.core.types import Stack

    torch.set_num_threads(1)
    print(f"{args.edge}×{args.edge} colour, tile size {args.tile_size or 'none (untiled)'}; "
          "network passes in frame-size units (pair networks: pair passes)")
    print(f"{'method':<10} {'strategy':<12} " + " ".join(f"{'N=' + str(n):>8}" for n in args.frames) + "   per frame")
    with tempfile.TemporaryDirectory() as scratch:
        for method, strategy in CASES:
            if args.methods and method not in args.methods:
                continue
            weights = random_weights(method, Path(scratch))
            counts = []
            for n in args.frames:
                stack = Stack.from_arrays(make_stack(n, args.edge))
                counter = Counter()
                params = {} if strategy is None else {"strategy": strategy}
                with counting(counter):
                    result = fuse(stack, method, params, weights=weights, device="cpu", tile_size=args.tile_size)
                counts.append(counter.pixels / (args.edge * args.edge))
                resolved = result.analysis.data.get("strategy") if result.analysis is not None else None
            label = strategy or f"auto={resolved or 'serial'}"  # the pair methods are serial
            per_frame = " ".join(f"{c / n:.2f}" for c, n in zip(counts, args.frames))
            print(f"{method:<10} {label:<12} " + " ".join(f"{c:8.2f}" for c in counts) + f"   {per_frame}",
                  flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
