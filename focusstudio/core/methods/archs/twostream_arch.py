"""Two-stream network for a latent decision map (Zeng et al.), as METHODS.md §5 describes it.

No code or weights of the authors exist (REFERENCE-NOTES §5); every reading of the paper's text
that had to be made is listed here:

* **Streams.** "Separate streams, same structure": stream 1 sees source 1 and stream 2 sees
  source 2, each with its own weights. A stream is conv 3×3 + ReLU followed by two residual
  blocks. A residual block is conv+ReLU, conv+ReLU, then the block input is added (the text puts
  the skip after the second ReLU and names no activation after the addition, so there is none).
  C_k is the output of block 1, D_k of block 2. All convs 3×3, stride 1, zero padding 1, with
  biases, ``width`` channels (128 in the paper).
* **Fusion.** E = ReLU(conv(D₁ + D₂)); M = A₁ + A₂ is the sum of the two *input images* (the
  "input-sum skip"); F = ReLU(conv(concat(M, E))); G = ReLU(conv(concat(C₁, D₁, F, C₂, D₂)))
  with ``head_width`` (64) channels; then conv + ReLU (64) and conv → 1 channel and a sigmoid:
  α, the weight of source 1. Concatenation order is the order the text lists.
* **Input.** Grey images in [0, 1] (the paper works on grey; colour sources are converted to grey,
  α is applied to the colour pixels). ``in_channels`` makes other choices possible.
* **No normalisation layers**, as the text mentions none; the network is then purely local
  (receptive-field radius 10 px), so tiled inference with a halo ≥ 10 is exact.
"""

from __future__ import annotations

import torch
from torch import nn


def _conv(c_in: int, c_out: int) -> nn.Conv2d:
    return nn.Conv2d(c_in, c_out, 3, padding=1)


class ResidualBlock(nn.Module):
    """x + ReLU(conv(ReLU(conv(x))))."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.body = nn.Sequential(_conv(channels, channels), nn.ReLU(), _conv(channels, channels), nn.ReLU())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class Stream(nn.Module):
    """conv + ReLU, then two residual blocks; returns (C, D) = outputs of block 1 and block 2."""

    def __init__(self, in_channels: int, width: int) -> None:
        super().__init__()
        self.head = nn.Sequential(_conv(in_channels, width), nn.ReLU())
        self.block_1 = ResidualBlock(width)
        self.block_2 = ResidualBlock(width)

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        c = self.block_1(self.head(image))
        return c, self.block_2(c)


class TwoStreamNet(nn.Module):
    """Latent decision map α (weight of source 1) in (0, 1) from two images in [0, 1]."""

    #: Receptive-field radius in pixels (ten 3×3 convs): the halo tiled inference needs.
    receptive_radius = 10

    def __init__(self, width: int = 128, head_width: int = 64, in_channels: int = 1) -> None:
        super().__init__()
        self.in_channels = in_channels
        self.stream_1 = Stream(in_channels, width)
        self.stream_2 = Stream(in_channels, width)
        self.conv_e = nn.Sequential(_conv(width, width), nn.ReLU())
        self.conv_f = nn.Sequential(_conv(in_channels + width, width), nn.ReLU())
        self.conv_g = nn.Sequential(_conv(5 * width, head_width), nn.ReLU())
        self.head = nn.Sequential(_conv(head_width, head_width), nn.ReLU(), _conv(head_width, 1), nn.Sigmoid())

    def forward(self, image_1: torch.Tensor, image_2: torch.Tensor) -> torch.Tensor:
        c1, d1 = self.stream_1(image_1)
        c2, d2 = self.stream_2(image_2)
        e = self.conv_e(d1 + d2)
        f = self.conv_f(torch.cat([image_1 + image_2, e], dim=1))
        g = self.conv_g(torch.cat([c1, d1, f, c2, d2], dim=1))
        return self.head(g)


def parameter_count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())
