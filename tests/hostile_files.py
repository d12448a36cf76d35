"""Hostile and odd input files for the bad-input tests: TIFFs with patched header tags, a
decompression bomb, float TIFFs of 0–255 levels, a symlink loop, a FIFO, weights full of NaN."""

from __future__ import annotations

import os
import struct
from pathlib import Path

import cv2
import numpy as np
import tifffile

#: TIFF tag numbers and field types used below.
IMAGE_WIDTH, IMAGE_LENGTH = 256, 257
ASCII, FLOAT = 2, 11


def patch_tiff_tag(source: Path, target: Path, tag: int, field_type: int | None = None,
                   value: int | None = None) -> Path:
    """Copy a little-endian classic TIFF with one first-IFD entry's type and/or value field
    replaced (count kept), as a buggy or hostile writer would leave it."""
    data = bytearray(source.read_bytes())
    assert data[:4] == b"II*\x00"
    (ifd,) = struct.unpack("<I", data[4:8])
    (count,) = struct.unpack("<H", data[ifd:ifd + 2])
    for index in range(count):
        entry = ifd + 2 + 12 * index
        number, kind, values, field = struct.unpack("<HHII", data[entry:entry + 12])
        if number == tag:
            kind = field_type if field_type is not None else kind
            field = value if value is not None else field
            data[entry:entry + 12] = struct.pack("<HHII", number, kind, values, field)
            target.write_bytes(bytes(data))
            return target
    raise AssertionError(f"tag {tag} not in {source}")


def texture(size: int = 64, seed: int = 0) -> np.ndarray:
    """A uint8 RGB texture (fusion needs some detail to choose between frames)."""
    rng = np.random.default_rng(seed)
    return cv2.GaussianBlur((rng.random((size, size, 3)) * 255).astype(np.uint8), (0, 0), 1.0)


def write_png_pair(folder: Path) -> tuple[Path, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    first, second = folder / "a.png", folder / "b.png"
    cv2.imwrite(str(first), texture(seed=1))
    cv2.imwrite(str(second), texture(seed=2))
    return first, second


def write_tiff(path: Path, size: int = 64) -> Path:
    tifffile.imwrite(path, texture(size))
    return path


def zero_width_tiff(folder: Path, name: str = "w0.tif", tag: int = IMAGE_WIDTH) -> Path:
    return patch_tiff_tag(write_tiff(folder / f"src-{name}"), folder / name, tag, value=0)


def ascii_width_tiff(folder: Path, name: str = "ascii.tif") -> Path:
    # "64" as two ASCII bytes in the value field.
    return patch_tiff_tag(write_tiff(folder / f"src-{name}"), folder / name, IMAGE_WIDTH, ASCII, 0x3436)


def float_width_tiff(folder: Path, name: str = "float.tif") -> Path:
    (bits,) = struct.unpack("<I", struct.pack("<f", 64.0))
    return patch_tiff_tag(write_tiff(folder / f"src-{name}"), folder / name, IMAGE_WIDTH, FLOAT, bits)


def bomb_tiff(path: Path, side: int = 50000) -> Path:
    """A 320-byte TIFF declaring ``side``×``side`` 8-bit pixels (a decompression bomb)."""
    small = path.with_name(f"src-{path.name}")
    tifffile.imwrite(small, np.zeros((8, 8), np.uint8))
    patch_tiff_tag(small, path, IMAGE_WIDTH, value=side)
    return patch_tiff_tag(path, path, IMAGE_LENGTH, value=side)


def float_levels_tiff(path: Path, seed: int, peak: float = 255.0) -> Path:
    """A float32 TIFF holding whole numbers 0..peak (8-bit levels saved as float)."""
    levels = np.round(texture(seed=seed).astype(np.float32) * (peak / 255.0))
    tifffile.imwrite(path, levels, photometric="rgb")
    return path


def jpeg_declaring(path: Path, height: int, width: int) -> Path:
    """A small JPEG whose frame header (SOF0) declares ``height``×``width``: probing reads only
    the header, so a real medium-format size costs nothing to test."""
    ok, encoded = cv2.imencode(".jpg", np.zeros((16, 16), np.uint8))
    assert ok
    data = bytearray(encoded.tobytes())
    sof = data.index(b"\xff\xc0")
    data[sof + 5:sof + 9] = height.to_bytes(2, "big") + width.to_bytes(2, "big")
    path.write_bytes(bytes(data))
    return path


def symlink_loop(folder: Path) -> Path:
    first, second = folder / "loop1.png", folder / "loop2.png"
    os.symlink(second.name, first)
    os.symlink(first.name, second)
    return first


def fifo(folder: Path) -> Path:
    path = folder / "pipe.png"
    os.mkfifo(path)
    return path


def nan_weights(source: Path, target: Path) -> Path:
    """A copy of a checkpoint with every floating-point tensor filled with NaN."""
    import torch

    checkpoint = torch.load(source, map_location="cpu", weights_only=True)
    state = checkpoint.get("state_dict", checkpoint)
    for tensor in state.values():
        if tensor.is_floating_point():
            tensor.fill_(float("nan"))
    torch.save(checkpoint, target)
    return target
