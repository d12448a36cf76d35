"""SESF-Fuse network (Ma et al. 2020): dense encoder with channel squeeze-excitation + decoder.

Topology as the authors' released configuration (``attention = "cse"``), see REFERENCE-NOTES §1.1:

* conv block = conv 3×3 (with bias) → ReLU → BatchNorm. Note ReLU *before* BN: the released
  weights depend on that order.
* cSE = global average pool → Linear C→C/8 (no bias) → ReLU → Linear C/8→C (no bias) → sigmoid →
  scale channels.
* encoder: four blocks (1→16, 16→16, 32→16, 48→16), each followed by cSE, densely connected; the
  64-channel concatenation is the feature used for fusion.
* decoder (training only): blocks 64→64→32→16→1, reconstructing the *normalised* input.

The cSE global average makes the encoder non-local. For tiled inference the per-layer channel
scales can be computed once for the whole image (:meth:`DenseSEEncoder.forward` accepts them) so
every tile uses exactly the scales of the untiled forward.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

#: Mean and standard deviation of the SESF-Fuse training data (grey, [0, 1]) used to normalise.
SESF_MEAN = 0.4500517361627943
SESF_STD = 0.26465333914691797

#: Feature-width of every encoder block and the number of blocks (64 = 4 × 16 channels).
ENCODER_WIDTH = 16
ENCODER_BLOCKS = 4


class ConvBlock(nn.Module):
    """conv 3×3 (bias, zero padding 1) → ReLU → BatchNorm (this order, as the released code)."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1, bias=True)
        self.bn = nn.BatchNorm2d(out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(torch.relu(self.conv(x)))


class ChannelSE(nn.Module):
    """Classic squeeze-excitation over channels (called "cSE" in the SESF-Fuse code)."""

    def __init__(self, channels: int, reduction: int = 8) -> None:
        super().__init__()
        hidden = max(channels // reduction, 1)
        self.fc1 = nn.Linear(channels, hidden, bias=False)
        self.fc2 = nn.Linear(hidden, channels, bias=False)

    def scales_from_mean(self, channel_mean: torch.Tensor) -> torch.Tensor:
        """N×C channel means → N×C×1×1 multiplicative channel weights."""
        weights = torch.sigmoid(self.fc2(torch.relu(self.fc1(channel_mean))))
        return weights[:, :, None, None]

    def scales(self, x: torch.Tensor) -> torch.Tensor:
        """Channel weights computed from ``x`` itself (global average over H×W)."""
        return self.scales_from_mean(x.mean(dim=(2, 3)))

    def forward(self, x: torch.Tensor, scales: torch.Tensor | None = None) -> torch.Tensor:
        return x * (self.scales(x) if scales is None else scales)


class DenseSEEncoder(nn.Module):
    """Four densely connected conv blocks, each followed by cSE; output 64 channels.

    Shared by SESF-Fuse (its encoder) and GACN (its feature-extraction path, own weights).
    """

    def __init__(self, in_channels: int = 1, width: int = ENCODER_WIDTH, blocks: int = ENCODER_BLOCKS,
                 reduction: int = 8) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(
            ConvBlock(in_channels if i == 0 else width * i, width) for i in range(blocks)
        )
        self.se = nn.ModuleList(ChannelSE(width, reduction) for _ in range(blocks))
        self.out_channels = width * blocks

    #: Receptive-field radius of the output (one pixel per 3×3 conv).
    @property
    def radius(self) -> int:
        return len(self.blocks)

    def forward(
        self,
        x: torch.Tensor,
        channel_scales: Sequence[torch.Tensor] | None = None,
        return_layers: bool = False,
    ) -> torch.Tensor | list[torch.Tensor]:
        """N×1×H×W → N×64×H×W (or the list of the four 16-channel SE outputs).

        ``channel_scales`` (one N×16×1×1 tensor per block) replaces the cSE global pooling; used
        by tiled inference so tiles see the whole image's channel weights.
        """
        outputs: list[torch.Tensor] = []
        current = x
        for i, (block, se) in enumerate(zip(self.blocks, self.se)):
            pre = block(current)
            out = se(pre, None if channel_scales is None else channel_scales[i])
            outputs.append(out)
            current = torch.cat(outputs, dim=1)
        return outputs if return_layers else current

    def pre_se_output(
        self, x: torch.Tensor, layer: int, channel_scales: Sequence[torch.Tensor]
    ) -> torch.Tensor:
        """Block ``layer``'s pre-SE output (N×16×H×W) given the channel scales of the earlier
        blocks; the building block of the multi-pass tiled cSE computation."""
        outputs: list[torch.Tensor] = []
        current = x
        for i in range(layer + 1):
            pre = self.blocks[i](current)
            if i == layer:
                return pre
            outputs.append(self.se[i](pre, channel_scales[i]))
            current = torch.cat(outputs, dim=1)
        raise AssertionError("unreachable")


class SESFDecoder(nn.Module):
    """Training-only decoder: 64→64→32→16→1 conv blocks (the last one ReLU→BN'd as well)."""

    def __init__(self, in_channels: int = 64) -> None:
        super().__init__()
        widths = (in_channels, 64, 32, 16, 1)
        self.blocks = nn.ModuleList(ConvBlock(widths[i], widths[i + 1]) for i in range(4))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            x = block(x)
        return x


class SESFNet(nn.Module):
    """SESF-Fuse auto-encoder. Inputs are normalised grey images ((x − SESF_MEAN)/SESF_STD)."""

    def __init__(self, reduction: int = 8) -> None:
        super().__init__()
        self.encoder = DenseSEEncoder(1, ENCODER_WIDTH, ENCODER_BLOCKS, reduction)
        self.decoder = SESFDecoder(self.encoder.out_channels)

    @staticmethod
    def normalize(grey: torch.Tensor) -> torch.Tensor:
        """[0, 1] grey → the network's input scale."""
        return (grey - SESF_MEAN) / SESF_STD

    def encode(self, x: torch.Tensor, channel_scales: Sequence[torch.Tensor] | None = None) -> torch.Tensor:
        """N×1×H×W normalised → N×64×H×W features."""
        features = self.encoder(x, channel_scales)
        assert isinstance(features, torch.Tensor)
        return features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Reconstruction of the normalised input (training)."""
        return self.decoder(self.encode(x))

    def arch_config(self) -> dict[str, int | str]:
        """What is needed to rebuild this module (stored next to the weights)."""
        se = self.encoder.se[0]
        return {"name": "sesf", "reduction": se.fc1.in_features // se.fc1.out_features}


# ------------------------------------------------------------------ the authors' release
#: (pattern on the authors' key, replacement in our module tree); ``{n-1}`` renumbers a group where
#: the authors' numbering differs from ours (their ``conv_decode_1`` is our ``decoder.blocks.0``).
#: Read by :func:`focusstudio.core.methods.archs.translate_official_keys`.
OFFICIAL_KEY_RULES: tuple[tuple[str, str], ...] = (
    (r"^features\.0\.(weight|bias)$", r"encoder.blocks.0.conv.\1"),
    (r"^features\.2\.(.+)$", r"encoder.blocks.0.bn.\1"),
    (r"^se_f\.fc\.0\.weight$", r"encoder.se.0.fc1.weight"),
    (r"^se_f\.fc\.2\.weight$", r"encoder.se.0.fc2.weight"),
    (r"^conv_encode_([1-3])\.0\.(weight|bias)$", r"encoder.blocks.\1.conv.\2"),
    (r"^conv_encode_([1-3])\.2\.(.+)$", r"encoder.blocks.\1.bn.\2"),
    (r"^se_([1-3])\.fc\.0\.weight$", r"encoder.se.\1.fc1.weight"),
    (r"^se_([1-3])\.fc\.2\.weight$", r"encoder.se.\1.fc2.weight"),
    (r"^conv_decode_([1-4])\.0\.(weight|bias)$", r"decoder.blocks.{\1-1}.conv.\2"),
    (r"^conv_decode_([1-4])\.2\.(.+)$", r"decoder.blocks.{\1-1}.bn.\2"),
)
#: A key only the authors' file has, to recognise it.
OFFICIAL_MARKER = "se_f.fc.0.weight"
