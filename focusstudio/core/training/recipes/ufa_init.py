"""Identity initialisation of UFA-Fuse: at step 0 the network outputs an attention-weighted mix of
its two inputs, instead of the grey 0.5 of a randomly initialised sigmoid head.

The architecture is unchanged; only the initial weights differ. Three "copy" channels (0, 1, 2)
carry R, G, B through every 3×3 convolution as Dirac kernels (inputs are in [0, 1], so the
LeakyReLUs pass them unchanged); their rows read nothing else and have zero bias. All other
channels keep the Xavier-normal initialisation (upstream's), so the network still has its full
width of free features to learn the focus measure with.

* Spatial attention: zero 7×7 kernels, so both inputs get weight ½ everywhere at step 0 (the
  kernels still receive gradients: the softmax's derivative is not zero there).
* Fusion 1×1: copy channel c = 2·(out₁_c + out₂_c) = M^c₁·A_c + M^c₂·B_c (the channel weights of
  the two inputs sum to 1), i.e. the attention-weighted mix; fusing an image with itself gives the
  image.
* The sigmoid head is inverted exactly enough: the last LeakyReLU block also holds ``knots``
  channels per colour, LReLU(x − t_k), and the final 3×3 conv combines them into a piecewise-linear
  approximation of logit(x) (fitted in output space), so sigmoid(final) ≈ x. With 10 knots (width 64)
  the worst 8-bit value is off by ~1.2 levels, RMS 0.4 levels (≈ 56 dB).

Narrow networks (tests) get as many knots as their width allows.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from focusstudio.core.methods.archs.ufa_arch import UFAFuseNet

#: Channels 0..2 of every feature map carry the input colours.
COPY = 3
MAX_KNOTS = 10
_SLOPE = 0.01  # LeakyReLU negative slope of the architecture


def fit_logit(knots: int) -> tuple[np.ndarray, np.ndarray]:
    """Knot positions t (in (0, 1)) and coefficients [a0, a1, b_1..b_K] such that
    sigmoid(a0 + a1·x + Σ b_k·max(x − t_k, 0)) ≈ x on the 256 8-bit levels (Gauss–Newton on the
    output-space error, started from the least-squares fit of logit)."""
    x = np.arange(256, dtype=np.float64) / 255.0
    # Knots denser near 0 and 1, where logit bends most.
    t = 0.5 - 0.5 * np.cos(np.linspace(0.0, math.pi, knots + 2))[1:-1]
    design = np.stack([np.ones_like(x), x, *[np.maximum(x - tk, 0.0) for tk in t]], axis=1)
    clipped = np.clip(x, 0.5 / 255, 1 - 0.5 / 255)
    coef = np.linalg.lstsq(design, np.log(clipped / (1 - clipped)), rcond=None)[0]
    for _ in range(30):
        output = 1.0 / (1.0 + np.exp(-(design @ coef)))
        jacobian = (output * (1 - output))[:, None] * design
        coef += np.linalg.lstsq(jacobian, x - output, rcond=None)[0]
    return t, coef


def _dirac_rows(conv: nn.Conv2d, rows: int) -> None:
    """Rows 0..rows-1 of ``conv`` copy input channel i to output channel i (centre tap 1)."""
    with torch.no_grad():
        conv.weight[:rows].zero_()
        centre = conv.kernel_size[0] // 2, conv.kernel_size[1] // 2
        for i in range(rows):
            conv.weight[i, i, centre[0], centre[1]] = 1.0
        if conv.bias is not None:
            conv.bias[:rows].zero_()


def _convs(block: nn.Module) -> list[nn.Conv2d]:
    return [m for m in block.modules() if isinstance(m, nn.Conv2d)]


def identity_initialise(network: UFAFuseNet) -> int:
    """Apply the identity initialisation in place (after the Xavier one); returns the knot count."""
    width = network.stem[0].out_channels
    if width < COPY:
        raise ValueError(f"identity initialisation needs width ≥ {COPY}, got {width}")
    for conv in [*_convs(network.stem), *_convs(network.features), *_convs(network.attention_in),
                 *_convs(network.attention_out)]:
        _dirac_rows(conv, COPY)
    with torch.no_grad():
        network.spatial_conv_1.weight.zero_()
        network.spatial_conv_2.weight.zero_()
        fusion = network.fusion
        fusion.weight[:COPY].zero_()
        fusion.bias[:COPY].zero_()
        for c in range(COPY):
            fusion.weight[c, c, 0, 0] = 2.0
            fusion.weight[c, width + c, 0, 0] = 2.0
    reconstruction = _convs(network.reconstruction)
    *hidden, last_hidden, head = reconstruction
    for conv in hidden:
        _dirac_rows(conv, COPY)
    knots = min(MAX_KNOTS, (width - COPY) // COPY)
    t, coef = fit_logit(knots)
    a0, a1, b = float(coef[0]), float(coef[1]), coef[2:]
    _dirac_rows(last_hidden, COPY + COPY * knots)
    with torch.no_grad():
        # Knot channel (c, k) = LReLU(x_c − t_k): undo the Dirac just set on those rows.
        for c in range(COPY):
            for k in range(knots):
                row = COPY + c * knots + k
                last_hidden.weight[row].zero_()
                last_hidden.weight[row, c, 1, 1] = 1.0
                last_hidden.bias[row] = -float(t[k])
        # max(z, 0) = (LReLU(z) − slope·z) / (1 − slope), and z = x − t_k with x the copy channel.
        head.weight.zero_()
        for c in range(COPY):
            head.weight[c, c, 1, 1] = a1 - _SLOPE / (1 - _SLOPE) * float(b.sum())
            for k in range(knots):
                head.weight[c, COPY + c * knots + k, 1, 1] = float(b[k]) / (1 - _SLOPE)
            head.bias[c] = a0 + _SLOPE / (1 - _SLOPE) * float((b * t).sum())
    return knots
