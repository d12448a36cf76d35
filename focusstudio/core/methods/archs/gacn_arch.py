"""GACN network (Ma, Yin et al., Neurocomputing 2022): siamese feature path, per-channel spatial
frequency comparison, decision path with 7×7 spatial SE and the in-network boundary guided filter.

Topology as the authors' released code (REFERENCE-NOTES §2.1):

* feature path: the same dense cSE encoder as SESF-Fuse (:class:`DenseSEEncoder`), own weights;
  inputs are grey images in [0, 1] *without* normalisation;
* SF comparison: per-channel pixel spatial frequency (radius 5, no sum over the 64 channels),
  ``bimap_c = sigmoid(1000·(SF_a,c − SF_b,c))``;
* decision path: sSE(64) → [conv block → sSE] × 4 (64→48→32→16→1), sSE = conv 7×7 C→1 (no bias)
  → sigmoid → scale every position; ``M = sigmoid(1000·d4)``;
* boundary guided filter (no parameters): Gaussian σ=8 on a 9×9 support (zero padded) → B;
  boundary weight W from the thresholds 0.8/0.1; guide = grey_a·M + grey_b·(1−M); guided filter
  (r=3, eps=0.1) of M → Q; ``M_bgf = Q·W + M·(1−W)``.

Everything is differentiable so the training engine can train it end to end. The forward is
split so N-frame decision calibration runs the feature path once per frame:
:meth:`GACNNet.features` → :meth:`GACNNet.activity` → :meth:`GACNNet.decide`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from focusstudio.core.methods.archs.sesf_arch import ENCODER_BLOCKS, ENCODER_WIDTH, ConvBlock, DenseSEEncoder
from focusstudio.core.ops.guided_filter import guided_filter
from focusstudio.core.ops.spatial_frequency import spatial_frequency

#: Steepness of the soft comparisons ``sigmoid(1000·x)`` (bimap and the final decision).
SIGMOID_GAIN = 1000.0


@dataclass(frozen=True)
class BoundaryFilterConfig:
    """Constants of the boundary guided filter; defaults are the released code's."""

    gaussian_sigma: float = 8.0
    gaussian_radius: int = 4  # 9×9 support: what the released weights were trained with
    upper: float = 0.8  # blurred map above this is "inside" the region of source a
    lower: float = 0.1  # blurred map below this is "inside" the region of source b
    gf_radius: int = 3
    gf_eps: float = 0.1

    @property
    def radius(self) -> int:
        """How far (pixels) M_bgf at a pixel depends on M: max(Gaussian, guided filter 2r)."""
        return max(self.gaussian_radius, 2 * self.gf_radius)


class SpatialSE(nn.Module):
    """Spatial squeeze-excitation: conv k×k C→1 (no bias) → sigmoid → scale each position."""

    def __init__(self, channels: int, kernel_size: int = 7) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, 1, kernel_size, padding=kernel_size // 2, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.sigmoid(self.conv(x))


def gaussian_kernel(sigma: float, radius: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Normalised (2r+1)² Gaussian as a 1×1×k×k conv weight."""
    coords = torch.arange(-radius, radius + 1, dtype=torch.float64)
    g1 = torch.exp(-(coords**2) / (2.0 * sigma * sigma))
    g2 = g1[:, None] * g1[None, :]
    return (g2 / g2.sum()).to(dtype)[None, None]


def boundary_weight(blurred: torch.Tensor, upper: float, lower: float) -> torch.Tensor:
    """W = 1 on the boundary band (lower ≤ B ≤ upper), decaying to 0 inside flat regions.

    The released code's formula: m1=[B>upper], m2=[B<lower], m3 = m1·B + m2·(1−B),
    W = 1 − |2·(B·m3 + 0.5·(1−m3)) − 1|. The masks are constants for autograd.
    """
    m1 = (blurred > upper).to(blurred.dtype)
    m2 = (blurred < lower).to(blurred.dtype)
    m3 = m1 * blurred + m2 * (1.0 - blurred)
    return 1.0 - torch.abs(2.0 * (blurred * m3 + 0.5 * (1.0 - m3)) - 1.0)


def boundary_guided_filter(
    decision: torch.Tensor,
    grey_a: torch.Tensor,
    grey_b: torch.Tensor,
    config: BoundaryFilterConfig = BoundaryFilterConfig(),
) -> tuple[torch.Tensor, torch.Tensor]:
    """(M_bgf, W) from the initial map M and the two grey sources (all N×1×H×W, [0, 1])."""
    kernel = gaussian_kernel(config.gaussian_sigma, config.gaussian_radius, decision.dtype)
    kernel = kernel.to(decision.device)
    blurred = F.conv2d(decision, kernel, padding=config.gaussian_radius)  # zero padding, as released
    weight = boundary_weight(blurred, config.upper, config.lower)
    guide = grey_a * decision + grey_b * (1.0 - decision)
    filtered = guided_filter(guide, decision, config.gf_radius, config.gf_eps, "gray")
    return filtered * weight + decision * (1.0 - weight), weight


class GACNNet(nn.Module):
    """GACN: ``forward(a, b) → (M, M_bgf)`` for grey N×1×H×W inputs in [0, 1]."""

    #: Radius of the per-channel spatial frequency window (11×11).
    sf_radius: int = 5

    def __init__(self, reduction: int = 8, se_kernel: int = 7,
                 bgf: BoundaryFilterConfig = BoundaryFilterConfig()) -> None:
        super().__init__()
        self.feature_path = DenseSEEncoder(1, ENCODER_WIDTH, ENCODER_BLOCKS, reduction)
        channels = self.feature_path.out_channels
        widths = (channels, 48, 32, 16, 1)
        self.decision_se = nn.ModuleList(SpatialSE(w, se_kernel) for w in widths)
        self.decision_blocks = nn.ModuleList(ConvBlock(widths[i], widths[i + 1]) for i in range(4))
        self.bgf = bgf
        self._reduction = reduction
        self._se_kernel = se_kernel

    # ------------------------------------------------------------------ split forward
    def features(
        self, grey: torch.Tensor, channel_scales: Sequence[torch.Tensor] | None = None
    ) -> torch.Tensor:
        """N×1×H×W grey [0, 1] → N×64×H×W features (no input normalisation in GACN)."""
        out = self.feature_path(grey, channel_scales)
        assert isinstance(out, torch.Tensor)
        return out

    def activity(self, features: torch.Tensor, sf_radius: int | None = None) -> torch.Tensor:
        """Per-channel pixel spatial frequency (N×64×H×W), zero-padded shifts, 11×11 box sum."""
        radius = self.sf_radius if sf_radius is None else sf_radius
        return spatial_frequency(features, radius, sum_channels=False)

    def decision_map(self, activity_a: torch.Tensor, activity_b: torch.Tensor) -> torch.Tensor:
        """The initial (near-binary) decision M = P(a is sharper) from two activity tensors."""
        x = torch.sigmoid(SIGMOID_GAIN * (activity_a - activity_b))
        x = self.decision_se[0](x)
        for block, se in zip(self.decision_blocks, self.decision_se[1:]):
            x = se(block(x))
        return torch.sigmoid(SIGMOID_GAIN * x)

    def decide(
        self,
        activity_a: torch.Tensor,
        activity_b: torch.Tensor,
        grey_a: torch.Tensor,
        grey_b: torch.Tensor,
        bgf: BoundaryFilterConfig | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
        """(M, M_bgf, extras) with extras["boundary"] = W."""
        decision = self.decision_map(activity_a, activity_b)
        refined, weight = boundary_guided_filter(decision, grey_a, grey_b, bgf or self.bgf)
        return decision, refined, {"boundary": weight}

    def forward(self, grey_a: torch.Tensor, grey_b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Training/plain inference forward; both sources go through the feature path together."""
        features = self.features(torch.cat([grey_a, grey_b], dim=0))
        activity = self.activity(features)
        count = grey_a.shape[0]
        decision, refined, _ = self.decide(activity[:count], activity[count:], grey_a, grey_b)
        return decision, refined

    # ------------------------------------------------------------------ geometry
    @property
    def decision_radius(self) -> int:
        """Receptive-field radius of the decision path (3×3 convs and k×k sSE)."""
        se_radius = self._se_kernel // 2
        return se_radius + len(self.decision_blocks) * (1 + se_radius)

    def receptive_radius(self, include_bgf: bool = True) -> int:
        """How far (pixels) the output at a pixel depends on the inputs (for tile overlaps)."""
        radius = self.feature_path.radius + 1 + self.sf_radius + self.decision_radius
        return radius + (self.bgf.radius if include_bgf else 0)

    def arch_config(self) -> dict[str, Any]:
        """What is needed to rebuild this module (stored next to the weights)."""
        return {"name": "gacn", "reduction": self._reduction, "se_kernel": self._se_kernel,
                "bgf": asdict(self.bgf)}


def per_scale_sum(activity: torch.Tensor, width: int = ENCODER_WIDTH) -> torch.Tensor:
    """Sum a 64-channel per-channel map over each scale's 16 channels → N×4×H×W (the feature
    path's four blocks are its scales)."""
    count, channels, height, columns = activity.shape
    return activity.reshape(count, channels // width, width, height, columns).sum(dim=2)


# ------------------------------------------------------------------ the authors' release
#: (pattern on the authors' key, replacement in our module tree); ``{n-4}`` renumbers a group.
#: Read by :func:`focusstudio.core.methods.archs.translate_official_keys`.
OFFICIAL_KEY_RULES: tuple[tuple[str, str], ...] = (
    (r"^feature_extraction_conv([0-3])\.feature_extraction_conv\1_Conv2d\.(.+)$",
     r"feature_path.blocks.\1.conv.\2"),
    (r"^feature_extraction_conv([0-3])\.feature_extraction_conv\1_BatchNorm\.(.+)$",
     r"feature_path.blocks.\1.bn.\2"),
    (r"^se_([0-3])\.fc\.0\.weight$", r"feature_path.se.\1.fc1.weight"),
    (r"^se_([0-3])\.fc\.2\.weight$", r"feature_path.se.\1.fc2.weight"),
    # se_4 .. se_8 are the decision path's 7×7 spatial SE layers.
    (r"^se_([4-8])\.fc\.0\.weight$", r"decision_se.{\1-4}.conv.weight"),
    (r"^decision_path_conv([1-4])\.decision_path_conv\1_Conv2d\.(.+)$", r"decision_blocks.{\1-1}.conv.\2"),
    (r"^decision_path_conv([1-4])\.decision_path_conv\1_BatchNorm\.(.+)$", r"decision_blocks.{\1-1}.bn.\2"),
)
#: A key only the authors' file has, to recognise it.
OFFICIAL_MARKER = "feature_extraction_conv0.feature_extraction_conv0_Conv2d.weight"
