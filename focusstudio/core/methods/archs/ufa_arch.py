"""UFA-Fuse network, v1 topology (Zang et al., IEEE TIM 70 (2021), arXiv 2101.04506).

Independent re-implementation of REFERENCE-NOTES §4.2 (the released "v1" checkpoint's topology):

1. ``stem``: conv 3×3 (3→w) + LeakyReLU(0.01), shared by both inputs.
2. ``features``: three blocks of two conv 3×3 + LeakyReLU (with ``stem`` the paper's seven
   feature blocks; the first conv of the attention block is the seventh).
3. Unity fusion attention: ``attention_in`` conv+LReLU per input; parameter-free channel attention
   (global average per channel, softmax across the inputs); spatial attention from a 7×7 conv over
   [channel mean; channel max] — **separate** convs for input 1 and input 2, no sigmoid — with a
   softmax across the inputs; ``attention_out`` conv+LReLU per input.
4. ``fusion``: concat → conv 1×1 (2w→w), no activation.
5. ``reconstruction``: four conv 3×3 + LReLU, then conv 3×3 (w→3) + sigmoid: the fused RGB image.

``official_quirks=True`` reproduces the released weights' arithmetic: both softmaxes are written
as exp(a)/(Σexp + 1e-10) and the spatial weight of input 1 has the upstream typo
exp(s₁)/(exp(s₂) + exp(s₂) + 1e-10) — the released weights were trained with it, so it must stay
when loading them. Our own training uses ``official_quirks=False``: a proper two-way softmax
(weights sum to 1), computed stably.

The released checkpoint also holds spatial-attention convs in blocks ``sc1..sc3`` that its
forward pass never uses (588 parameters); they are not part of this module, so it has 455,111
parameters at width 64 (the checkpoint: 455,699). :func:`official_state_dict` maps the key names.

Global operation: the channel attention averages over the whole image. :meth:`channel_means`
computes the per-channel sums tile by tile, so tiled inference can use the exact global means
(:meth:`forward` accepts them via ``channel_means``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import torch
from torch import nn

_EPS = 1e-10  # upstream's denominator guard


def _conv_lrelu(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, padding=1), nn.LeakyReLU(0.01))


@dataclass
class UFAOutput:
    """The fused image and the attention maps of both inputs (for explanation)."""

    fused: torch.Tensor  # N×3×H×W in (0, 1)
    channel_weights: list[torch.Tensor] = field(default_factory=list)  # per input, N×C×1×1
    spatial_weights: list[torch.Tensor] = field(default_factory=list)  # per input, N×1×H×W
    #: Per input, N×1×H×W: channel mean of the features after channel attention (what the channel
    #: weights did to each pixel's features) — used for the channel-attention explanation map.
    channel_attended_mean: list[torch.Tensor] = field(default_factory=list)


class UFAFuseNet(nn.Module):
    """Two RGB images in [0, 1] → fused RGB image in (0, 1) decoded by the network."""

    def __init__(self, width: int = 64, official_quirks: bool = False) -> None:
        super().__init__()
        w = width
        self.official_quirks = official_quirks
        self.stem = _conv_lrelu(3, w)
        self.features = nn.Sequential(*[nn.Sequential(_conv_lrelu(w, w), _conv_lrelu(w, w)) for _ in range(3)])
        self.attention_in = _conv_lrelu(w, w)
        self.spatial_conv_1 = nn.Conv2d(2, 1, 7, padding=3, bias=False)
        self.spatial_conv_2 = nn.Conv2d(2, 1, 7, padding=3, bias=False)
        self.attention_out = _conv_lrelu(w, w)
        self.fusion = nn.Conv2d(2 * w, w, 1)
        self.reconstruction = nn.Sequential(
            *[_conv_lrelu(w, w) for _ in range(4)], nn.Conv2d(w, 3, 3, padding=1), nn.Sigmoid()
        )

    # ----------------------------------------------------------------- pieces
    def pre_attention(self, image: torch.Tensor) -> torch.Tensor:
        """Features entering the channel attention (local: receptive-field radius 9 px)."""
        return self.attention_in(self.features(self.stem(image)))

    def channel_sums(self, image_1: torch.Tensor, image_2: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-channel sums of the pre-attention features of both inputs (N×C each)."""
        return (
            self.pre_attention(image_1).sum(dim=(2, 3)),
            self.pre_attention(image_2).sum(dim=(2, 3)),
        )

    def _two_way_weights(self, a: torch.Tensor, b: torch.Tensor, spatial: bool) -> tuple[torch.Tensor, torch.Tensor]:
        if not self.official_quirks:
            weights = torch.softmax(torch.stack([a, b]), dim=0)
            return weights[0], weights[1]
        exp_a, exp_b = torch.exp(a), torch.exp(b)
        weight_b = exp_b / (exp_a + exp_b + _EPS)
        # Upstream typo kept on purpose for the released weights: exp(b) twice in input 1's
        # spatial denominator (the channel attention is written correctly upstream).
        weight_a = exp_a / (exp_b + exp_b + _EPS) if spatial else exp_a / (exp_a + exp_b + _EPS)
        return weight_a, weight_b

    def forward(
        self,
        image_1: torch.Tensor,
        image_2: torch.Tensor,
        channel_means: tuple[torch.Tensor, torch.Tensor] | None = None,
    ) -> UFAOutput:
        """Fuse two N×3×H×W images; ``channel_means`` (N×C each) overrides the global averages
        (tiled inference passes the whole image's means)."""
        x1, x2 = self.pre_attention(image_1), self.pre_attention(image_2)
        if channel_means is None:
            mean1, mean2 = x1.mean(dim=(2, 3)), x2.mean(dim=(2, 3))
        else:
            mean1, mean2 = channel_means
        c1, c2 = self._two_way_weights(mean1, mean2, spatial=False)
        c1, c2 = c1[:, :, None, None], c2[:, :, None, None]
        x1, x2 = x1 * c1, x2 * c2
        s1 = self.spatial_conv_1(torch.cat([x1.mean(dim=1, keepdim=True), x1.amax(dim=1, keepdim=True)], 1))
        s2 = self.spatial_conv_2(torch.cat([x2.mean(dim=1, keepdim=True), x2.amax(dim=1, keepdim=True)], 1))
        w1, w2 = self._two_way_weights(s1, s2, spatial=True)
        attended_mean = [x1.mean(dim=1, keepdim=True), x2.mean(dim=1, keepdim=True)]
        out1, out2 = self.attention_out(x1 * w1), self.attention_out(x2 * w2)
        fused = self.reconstruction(self.fusion(torch.cat([out1, out2], dim=1)))
        return UFAOutput(fused, [c1, c2], [w1, w2], attended_mean)


#: Our parameter name prefix → the released checkpoint's prefix (module names of the v1 code).
OFFICIAL_KEY_PREFIXES: dict[str, str] = {
    "stem.0.": "conv1.0.",
    **{f"features.{b}.{c}.0.": f"sc{b + 1}.conv{c + 1}.body.0." for b in range(3) for c in range(2)},
    "attention_in.0.": "sc4.conv1.body.0.",
    "spatial_conv_1.": "sc4.att_sp.att1.conv.",
    "spatial_conv_2.": "sc4.att_sp.att2.conv.",
    "attention_out.0.": "sc4.conv2.body.0.",
    "fusion.": "fusion.",
    **{f"reconstruction.{i}.0.": f"EX3.{i}.body.0." for i in range(4)},
    "reconstruction.4.": "restruction.",
}

#: Checkpoint entries the v1 forward pass never uses (attention convs of blocks sc1..sc3).
OFFICIAL_UNUSED_PREFIXES: tuple[str, ...] = tuple(f"sc{b}.att_sp." for b in (1, 2, 3))


def official_state_dict(checkpoint: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Translate the released v1 state dict to this module's names (unused entries dropped).

    Raises ``KeyError`` naming the first missing or unexpected key, so a wrong file is reported
    instead of silently half-loaded.
    """
    reverse = {official: ours for ours, official in OFFICIAL_KEY_PREFIXES.items()}
    translated: dict[str, torch.Tensor] = {}
    for key, tensor in checkpoint.items():
        if key.startswith(OFFICIAL_UNUSED_PREFIXES):
            continue
        prefix = next((p for p in reverse if key.startswith(p)), None)
        if prefix is None:
            raise KeyError(f"unexpected key {key!r} in the UFA-Fuse checkpoint")
        translated[reverse[prefix] + key[len(prefix):]] = tensor
    return translated


def looks_official(state: Mapping[str, object]) -> bool:
    """True for a state dict with the released checkpoint's key names."""
    return "conv1.0.weight" in state and "restruction.weight" in state


def parameter_count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())
