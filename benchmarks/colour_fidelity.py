"""Colour fidelity of fused results: per-channel mean difference to the best source, in 8-bit levels.

A network that decodes the fused image itself (UFA-Fuse) can shift or wash out colours, which the
grey-level metrics (Q^{AB/F}, Q_cb) do not see. For every scene of a pair dataset this compares
the fused result ``<fused-dir>/<scene>.png`` (as written by ``focusstudio eval --save-dir``) with
each source:

* ``delta``: mean(fused_c) − mean(source_c) for c in R, G, B (signed, levels); the *best* source is
  the one whose largest |delta| is smallest (focus changes blur, not the channel means, so both
  sources of a pair nearly agree);
* ``chroma ratio``: mean per-pixel spread of the three channels (max − min), fused / the mean of
  the two sources (1 = colours as saturated as the sources; the earlier UFA attempt desaturated:
  < 1).

Optionally ``--identity-weights W``: fuse each scene's first source with itself through the fusion
pipeline and report the PSNR against it (the network's reconstruction of a single image).

    python benchmarks/colour_fidelity.py ../shared/data/lytro --fused-dir /tmp/ufa-lytro \
        [--identity-weights weights/ufa.pt --identity-count 20] [--json out.json]

Target of issue 18: every channel's mean |delta| below 1 level over the 20 Lytro pairs.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from focusstudio.core.io import read_image  # noqa: E402

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp")


def _levels(image: np.ndarray) -> np.ndarray:
    """H×W×3 float64 in 8-bit levels (the core reads images as float [0, 1])."""
    rgb = np.repeat(image[..., None], 3, axis=2) if image.ndim == 2 else image[..., :3]
    return rgb.astype(np.float64) * 255.0


def _source(scene: Path, stem: str) -> Path | None:
    return next((p for p in sorted(scene.iterdir()) if p.stem == stem and p.suffix.lower() in IMAGE_SUFFIXES), None)


def scene_colour(fused: np.ndarray, sources: list[np.ndarray]) -> dict[str, Any]:
    """delta (3 signed means, levels) and chroma ratio against the best source."""
    deltas = [fused.reshape(-1, 3).mean(0) - s.reshape(-1, 3).mean(0) for s in sources]
    best = int(np.argmin([np.abs(d).max() for d in deltas]))
    chroma_fused = float(np.mean(fused.max(2) - fused.min(2)))
    chroma_source = float(np.mean([np.mean(s.max(2) - s.min(2)) for s in sources]))
    return {"best_source": best + 1, "delta": [round(float(v), 3) for v in deltas[best]],
            "chroma_ratio": round(chroma_fused / max(chroma_source, 1e-9), 4)}


def identity_psnr(image: np.ndarray, weights: str) -> float:
    from focusstudio.core.pipeline import fuse
    from focusstudio.core.types import Stack

    frame = (np.clip(image, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    # The fused image is float [0, 1] (before the writer's 8-bit quantisation).
    output = _levels(fuse(Stack.from_arrays([frame, frame]), "ufa", weights=weights, device="cpu").image)
    error = np.mean((output - frame.astype(np.float64)) ** 2)
    return float(10.0 * np.log10(255.0**2 / max(error, 1e-12)))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("dataset", type=Path, help="folder of <scene>/1.*, 2.*")
    parser.add_argument("--fused-dir", type=Path, required=True, help="<scene>.png results (eval --save-dir)")
    parser.add_argument("--identity-weights", help="also fuse each first source with itself using these weights")
    parser.add_argument("--identity-count", type=int, default=20, help="scenes for the identity PSNR")
    parser.add_argument("--json", type=Path, help="write the per-scene figures and the summary here")
    args = parser.parse_args(argv)
    scenes = sorted(p for p in args.dataset.iterdir() if p.is_dir() and _source(p, "1") and _source(p, "2"))
    rows: list[dict[str, Any]] = []
    for scene in scenes:
        fused_path = args.fused_dir / f"{scene.name}.png"
        if not fused_path.is_file():
            print(f"error: {fused_path}: no fused result for scene {scene.name}", file=sys.stderr)
            return 2
        sources = [read_image(_source(scene, stem)) for stem in ("1", "2")]  # type: ignore[arg-type]
        row = {"scene": scene.name, **scene_colour(_levels(read_image(fused_path)), [_levels(s) for s in sources])}
        if args.identity_weights and len(rows) < args.identity_count:
            row["identity_psnr"] = round(identity_psnr(sources[0], args.identity_weights), 2)
        rows.append(row)
        print(json.dumps(row), flush=True)
    deltas = np.array([row["delta"] for row in rows])
    summary: dict[str, Any] = {
        "scenes": len(rows),
        "mean_abs_delta_rgb": [round(float(v), 3) for v in np.abs(deltas).mean(0)],
        "mean_delta_rgb": [round(float(v), 3) for v in deltas.mean(0)],
        "max_abs_delta": round(float(np.abs(deltas).max()), 3),
        "mean_chroma_ratio": round(float(np.mean([row["chroma_ratio"] for row in rows])), 4),
    }
    identities = [row["identity_psnr"] for row in rows if "identity_psnr" in row]
    if identities:
        summary["identity_psnr_mean"] = round(float(np.mean(identities)), 2)
        summary["identity_psnr_min"] = round(float(np.min(identities)), 2)
    summary["colour_faithful"] = bool(max(summary["mean_abs_delta_rgb"]) < 1.0)
    print(json.dumps(summary))
    if args.json:
        args.json.write_text(json.dumps({"summary": summary, "scenes": rows}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
