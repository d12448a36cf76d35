"""MFIF-GAN networks (Wang, Xu, Liu et al., Signal Process. Image Commun. 96 (2021) 116295).

Independent re-implementation of the topology described in REFERENCE-NOTES §3.1–3.2 (the
authors' repository is MIT licensed; no code of it is used here).

Generator: the R, G and B planes of both sources (six 1-channel planes) go through **one**
encoder with shared weights — conv 7×7 → two stride-2 convs → ``blocks`` SE-ResNet blocks at
¼ resolution. The three plane features of a source are averaged, the two averages concatenated
and decoded by two transposed convolutions back to full resolution and a 7×7 conv with a sigmoid:
the focus map, the weight of source A. With ``width=64, blocks=9, se_reduction=16`` it has
exactly 13,700,928 parameters (the released generator).

Critic: concat(A, B, map) → 7 convolutions of 4×4 → one patch map (3,815,105 parameters with
the upstream batch norm). Upstream ends it in a sigmoid, unusual for a WGAN critic; it is a
switch here (``final_sigmoid``), off for our WGAN-GP training (REFERENCE-NOTES §7.4.4).

Both modules take images in [0, 1] and apply the upstream normalisation to [−1, 1] themselves,
so callers never have to remember it. The map given to the critic stays in [0, 1].

Global operations: the squeeze-and-excitation gates average over the whole feature map. For
tiled inference the gates can be computed once (``capture_gates``) and then frozen
(``frozen_gates``) so every tile uses the same global gates and no seams appear.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from typing import Any, Literal

import torch
from torch import nn


@dataclass(frozen=True)
class GeneratorConfig:
    """Size of the generator. The defaults are the released (full) size."""

    width: int = 64  # channels after the first conv; then 2× and 4× after the downsamples
    blocks: int = 9  # SE-ResNet blocks at ¼ resolution
    se_reduction: int = 16

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


#: The configuration we can train on one CPU core in about an hour (same topology, narrower).
CPU_GENERATOR_CONFIG = GeneratorConfig(width=16, blocks=4, se_reduction=8)


def _normalise(image: torch.Tensor) -> torch.Tensor:
    """[0, 1] → [−1, 1] (upstream ``Normalize(0.5, 0.5)``)."""
    return (image - 0.5) / 0.5


class SqueezeExcitation(nn.Module):
    """Channel gates from the global average of the input (no biases, as upstream)."""

    def __init__(self, channels: int, reduction: int) -> None:
        super().__init__()
        hidden = max(channels // reduction, 1)
        self.fc = nn.Sequential(
            nn.Linear(channels, hidden, bias=False),
            nn.ReLU(inplace=True),
            nn.Linear(hidden, channels, bias=False),
            nn.Sigmoid(),
        )
        # Tiled inference: gates computed once on the whole image and reused for every tile.
        self.frozen: torch.Tensor | None = None
        self.capture = False
        self.captured: torch.Tensor | None = None

    def gates(self, x: torch.Tensor) -> torch.Tensor:
        if self.frozen is not None:
            return self.frozen.to(x.dtype)
        gates = self.fc(x.mean(dim=(2, 3))).view(x.shape[0], x.shape[1], 1, 1)
        if self.capture:
            self.captured = gates.detach()
        return gates

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gates(x)


class SEBasicBlock(nn.Module):
    """conv-BN-ReLU-conv-BN → SE → + identity → ReLU."""

    def __init__(self, channels: int, reduction: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(channels, channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(channels),
            nn.ReLU(inplace=True),
            nn.Conv2d(channels, channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(channels),
        )
        self.se = SqueezeExcitation(channels, reduction)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(x + self.se(self.body(x)))


def _conv_bn_relu(c_in: int, c_out: int, kernel: int, stride: int) -> list[nn.Module]:
    return [
        nn.Conv2d(c_in, c_out, kernel, stride=stride, padding=kernel // 2, bias=False),
        nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=True),
    ]


class PlaneEncoder(nn.Module):
    """The shared encoder ("Line") applied to every colour plane of both sources."""

    def __init__(self, config: GeneratorConfig) -> None:
        super().__init__()
        w = config.width
        self.stem = nn.Sequential(
            *_conv_bn_relu(1, w, 7, 1),
            *_conv_bn_relu(w, 2 * w, 3, 2),
            *_conv_bn_relu(2 * w, 4 * w, 3, 2),
        )
        self.blocks = nn.Sequential(*[SEBasicBlock(4 * w, config.se_reduction) for _ in range(config.blocks)])

    def forward(self, plane: torch.Tensor) -> torch.Tensor:
        return self.blocks(self.stem(plane))


class MFIFGANGenerator(nn.Module):
    """Focus map (weight of A) from two RGB images in [0, 1]; output in (0, 1)."""

    #: The output is 4·⌈⌈H/2⌉/2⌉ high (two stride-2 convs, two ×2 transposed convs): inputs must
    #: be padded to a multiple of this for the map to have the input's size.
    size_multiple = 4

    def __init__(self, config: GeneratorConfig | None = None) -> None:
        super().__init__()
        self.config = config or GeneratorConfig()
        w = self.config.width
        self.encoder = PlaneEncoder(self.config)
        self.decoder = nn.Sequential(
            nn.ConvTranspose2d(8 * w, 4 * w, 4, stride=2, padding=1, bias=False),
            nn.BatchNorm2d(4 * w),
            nn.ReLU(inplace=True),
            nn.ConvTranspose2d(4 * w, 2 * w, 4, stride=2, padding=1, bias=False),
            nn.BatchNorm2d(2 * w),
            nn.ReLU(inplace=True),
            nn.Conv2d(2 * w, 1, 7, padding=3, bias=False),
            nn.Sigmoid(),
        )

    def encode(self, image_a: torch.Tensor, image_b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean encoder features over the colour planes of A and of B (N×C×H×W each).

        All planes of both images go through the shared encoder as one batch, so each SE module
        runs exactly once per forward pass (what ``capture_gates``/``frozen_gates`` rely on).
        A grey image is one plane: the mean over three identical planes is that plane's feature.
        """
        if image_a.shape[1] != image_b.shape[1]:  # grey next to colour: replicate the grey one
            image_a = image_a.expand(-1, 3, -1, -1)
            image_b = image_b.expand(-1, 3, -1, -1)
        n, planes = image_a.shape[:2]
        batch = _normalise(torch.cat([image_a, image_b], dim=0))
        features = self.encoder(batch.reshape(2 * n * planes, 1, *batch.shape[2:]))
        features = features.view(2, n, planes, *features.shape[1:]).mean(dim=2)
        return features[0], features[1]

    def encode_image(self, image: torch.Tensor) -> torch.Tensor:
        """Mean encoder features over the colour planes of one image (N×C×H×W): the per-image
        part of :meth:`encode`, for callers that reuse a frame's features in several pairs (the
        N-frame ``neighbours`` strategy puts every frame in up to four passes). The same
        operations on the same planes as :meth:`encode`; only the batch is one image's planes, not
        both images', which some convolution kernels sum in another order (float rounding)."""
        n, planes = image.shape[:2]
        features = self.encoder(_normalise(image).reshape(n * planes, 1, *image.shape[2:]))
        return features.view(n, planes, *features.shape[1:]).mean(dim=1)

    def decode(self, features_a: torch.Tensor, features_b: torch.Tensor) -> torch.Tensor:
        """The focus map from the two images' features (:meth:`encode` or :meth:`encode_image`)."""
        return self.decoder(torch.cat([features_a, features_b], dim=1))

    def forward(self, image_a: torch.Tensor, image_b: torch.Tensor) -> torch.Tensor:
        return self.decode(*self.encode(image_a, image_b))

    # ----------------------------------------------------------------- tiled inference support
    def se_modules(self) -> list[SqueezeExcitation]:
        return [m for m in self.modules() if isinstance(m, SqueezeExcitation)]

    @contextmanager
    def capture_gates(self) -> Iterator[list[SqueezeExcitation]]:
        """Record the SE gates of the next forward pass (per block, per plane in the batch)."""
        modules = self.se_modules()
        for module in modules:
            module.capture, module.captured = True, None
        try:
            yield modules
        finally:
            for module in modules:
                module.capture = False

    @contextmanager
    def frozen_gates(self, gates: list[torch.Tensor]) -> Iterator[None]:
        """Use ``gates`` (one tensor per SE block, as captured) instead of computing them."""
        modules = self.se_modules()
        if len(gates) != len(modules):
            raise ValueError(f"expected {len(modules)} gate tensors, got {len(gates)}")
        for module, gate in zip(modules, gates):
            module.frozen = gate
        try:
            yield
        finally:
            for module in modules:
                module.frozen = None


CriticNorm = Literal["batch", "instance", "none"]


def _norm(kind: CriticNorm, channels: int) -> nn.Module:
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    if kind == "instance":
        # Same parameter count as batch norm; per-sample statistics keep the gradient penalty
        # (a per-sample quantity) well defined, as WGAN-GP recommends.
        return nn.InstanceNorm2d(channels, affine=True)
    return nn.Identity()


class MFIFGANCritic(nn.Module):
    """WGAN critic on concat(A, B, focus map): 7 conv layers of 4×4 down to a patch map.

    ``norm="batch"`` and ``final_sigmoid=True`` is the upstream module (3,815,105 parameters).
    """

    def __init__(
        self, width: int = 64, norm: CriticNorm = "instance", final_sigmoid: bool = False
    ) -> None:
        super().__init__()
        w = width
        layers: list[nn.Module] = [nn.Conv2d(7, w, 4, stride=2, padding=2), nn.LeakyReLU(0.01)]
        layers += [nn.Conv2d(w, 2 * w, 4, stride=2, padding=1), _norm(norm, 2 * w), nn.LeakyReLU(0.01)]
        layers += [nn.Conv2d(2 * w, 4 * w, 4, stride=2, padding=1), _norm(norm, 4 * w), nn.LeakyReLU(0.01)]
        for _ in range(3):
            layers += [
                nn.Conv2d(4 * w, 4 * w, 4, stride=2, padding=2, bias=False),
                _norm(norm, 4 * w),
                nn.ReLU(),
            ]
        layers.append(nn.Conv2d(4 * w, 1, 4, stride=1, padding=2))
        if final_sigmoid:
            layers.append(nn.Sigmoid())
        self.net = nn.Sequential(*layers)

    def forward(self, image_a: torch.Tensor, image_b: torch.Tensor, focus_map: torch.Tensor) -> torch.Tensor:
        """Critic score per patch; ``focus_map`` in [0, 1] (N×1×H×W)."""
        if image_a.shape[1] == 1:
            image_a = image_a.expand(-1, 3, -1, -1)
            image_b = image_b.expand(-1, 3, -1, -1)
        return self.net(torch.cat([_normalise(image_a), _normalise(image_b), focus_map], dim=1))


def parameter_count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def config_from_state_dict(state: Mapping[str, Any]) -> GeneratorConfig | None:
    """The generator configuration a state dict (our key names) was saved from, or None."""
    stem = state.get("encoder.stem.0.weight")
    if stem is None or not hasattr(stem, "shape"):
        return None
    width = int(stem.shape[0])
    blocks = 0
    while f"encoder.blocks.{blocks}.body.0.weight" in state:
        blocks += 1
    squeeze = state.get("encoder.blocks.0.se.fc.0.weight")
    reduction = (4 * width) // int(squeeze.shape[0]) if squeeze is not None else GeneratorConfig.se_reduction
    return GeneratorConfig(width=width, blocks=blocks, se_reduction=reduction)
