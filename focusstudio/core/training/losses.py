"""Training losses and differentiable quality scores shared by the trainable methods.

All functions take N×C×H×W float tensors and return a scalar tensor unless noted. The exact
constants of each paper's released code are the defaults (see REFERENCE-NOTES §1.3, §2.4, §4.4).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

# SESF-Fuse's released loss: Lp is a Frobenius norm over the whole batch of 48 images of 256×256.
SESF_REFERENCE_ELEMENTS = 48 * 256 * 256


def gaussian_window(size: int, sigma: float, device: torch.device | None = None) -> torch.Tensor:
    """Normalised 2-D Gaussian window (size×size) as a 1×1×size×size tensor."""
    coords = torch.arange(size, dtype=torch.float32, device=device) - (size - 1) / 2.0
    profile = torch.exp(-(coords**2) / (2.0 * sigma * sigma))
    profile = profile / profile.sum()
    return (profile[:, None] * profile[None, :])[None, None]


def ssim(
    output: torch.Tensor,
    target: torch.Tensor,
    window_size: int = 11,
    sigma: float = 1.5,
    c1: float = 0.01**2,
    c2: float = 0.03**2,
) -> torch.Tensor:
    """Mean SSIM with a Gaussian window, zero padding ``window_size // 2``, per channel.

    The constants are absolute (not scaled by a data range), as in SESF-Fuse's and UFA-Fuse's
    training code: SESF uses 5×5/σ1.5 on normalised tensors, UFA 11×11/σ1.5 on [0, 1].
    """
    channels = output.shape[1]
    window = gaussian_window(window_size, sigma, output.device).to(output.dtype)
    window = window.expand(channels, 1, window_size, window_size).contiguous()
    pad = window_size // 2

    def blur(x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, window, padding=pad, groups=channels)

    mu_x = blur(output)
    mu_y = blur(target)
    mu_xx, mu_yy, mu_xy = mu_x * mu_x, mu_y * mu_y, mu_x * mu_y
    var_x = blur(output * output) - mu_xx
    var_y = blur(target * target) - mu_yy
    cov = blur(output * target) - mu_xy
    numerator = (2.0 * mu_xy + c1) * (2.0 * cov + c2)
    denominator = (mu_xx + mu_yy + c1) * (var_x + var_y + c2)
    return (numerator / denominator).mean()


def sesf_loss(
    output: torch.Tensor,
    target: torch.Tensor,
    ssim_weight: float = 1000.0,
    pixel_mode: str = "frobenius_scaled",
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """SESF-Fuse autoencoder loss ``Lp + ssim_weight·(1 − SSIM₅ₓ₅)``.

    The released code uses ``Lp = ‖O − I‖_F`` over the whole batch and ``ssim_weight = 1000``
    (the paper says λ = 3, which with a batch Frobenius norm makes the SSIM term negligible; we
    follow the code, whose weights are the published ones). Because a Frobenius norm grows with
    √(number of elements), ``pixel_mode="frobenius_scaled"`` (our default) rescales it to the
    code's batch of 48×256×256 so the Lp/SSIM balance is the released one at any batch or crop
    size: ``Lp = RMS(O − I)·√(48·256·256)``. ``"frobenius"`` is the raw code form, ``"rms"``
    the plain root-mean-square error.
    """
    difference = output - target
    if pixel_mode == "frobenius":
        pixel = torch.sqrt((difference * difference).sum())
    elif pixel_mode == "frobenius_scaled":
        pixel = torch.sqrt((difference * difference).mean()) * math.sqrt(SESF_REFERENCE_ELEMENTS)
    elif pixel_mode == "rms":
        pixel = torch.sqrt((difference * difference).mean())
    else:
        raise ValueError(f"unknown SESF pixel loss mode {pixel_mode!r}")
    structural = ssim(output, target, window_size=5, sigma=1.5)
    total = pixel + ssim_weight * (1.0 - structural)
    return total, {"pixel": pixel.detach(), "ssim": structural.detach()}


def dice_loss(prediction: torch.Tensor, target: torch.Tensor, smooth: float = 1.0) -> torch.Tensor:
    """GACN's Dice loss over the whole batch: 1 − (2Σpt + s)/(Σp² + Σt² + s)."""
    intersection = (prediction * target).sum()
    denominator = (prediction * prediction).sum() + (target * target).sum()
    return 1.0 - (2.0 * intersection + smooth) / (denominator + smooth)


def l1_loss(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean absolute error."""
    return (output - target).abs().mean()


def _sobel_kernels(reference: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    sobel_x = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]])
    sobel_y = torch.tensor([[-1.0, -2.0, -1.0], [0.0, 0.0, 0.0], [1.0, 2.0, 1.0]])
    as_kernel = {"dtype": reference.dtype, "device": reference.device}
    return sobel_x.to(**as_kernel)[None, None], sobel_y.to(**as_kernel)[None, None]


def _sobel(image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Sobel responses of an N×1×H×W image, zero padding 1 (cross-correlation as conv2d)."""
    kernel_x, kernel_y = _sobel_kernels(image)
    return F.conv2d(image, kernel_x, padding=1), F.conv2d(image, kernel_y, padding=1)


def _grey(image: torch.Tensor) -> torch.Tensor:
    return image if image.shape[1] == 1 else image.mean(dim=1, keepdim=True)


def qg_soft(
    source_a: torch.Tensor,
    source_b: torch.Tensor,
    fused: torch.Tensor,
    sharpness: float = 1e5,
) -> torch.Tensor:
    """GACN's differentiable Q^{AB/F} score (REFERENCE-NOTES §2.4), in [0, 1], higher is better.

    Sobel magnitude g and orientation α = atan(gy/gx) (gx += 1e-6 where it is 0 for the sources,
    always for the fused image, which also keeps √ differentiable); the edge-strength ratio
    min(gA/gF, gF/gA) is made smooth with s = sigmoid(−k(gA − gF)); orientation agreement
    ||αA − αF| − π/2|·2/π; Q_g = σ(10(G − 0.5)), Q_α = σ(20(A − 0.75)); the score is the mean over
    pixels of (Q_AF·gA + Q_BF·gB)/(gA + gB) (per-pixel normalised, as the released code).
    """
    grad_a = _gradient_field(_grey(source_a), fused_input=False)
    grad_b = _gradient_field(_grey(source_b), fused_input=False)
    grad_f = _gradient_field(_grey(fused), fused_input=True)
    q_af = _edge_preservation_soft(grad_a, grad_f, sharpness)
    q_bf = _edge_preservation_soft(grad_b, grad_f, sharpness)
    magnitude_a, magnitude_b = grad_a[0], grad_b[0]
    return ((q_af * magnitude_a + q_bf * magnitude_b) / (magnitude_a + magnitude_b)).mean()


def _gradient_field(image: torch.Tensor, fused_input: bool) -> tuple[torch.Tensor, torch.Tensor]:
    gx, gy = _sobel(image)
    if fused_input:
        gx = gx + 1e-6
    else:
        gx = torch.where(gx == 0, torch.full_like(gx, 1e-6), gx)
    magnitude = torch.sqrt(gx * gx + gy * gy)
    return magnitude, torch.atan(gy / gx)


def _edge_preservation_soft(
    source: tuple[torch.Tensor, torch.Tensor], fused: tuple[torch.Tensor, torch.Tensor], sharpness: float
) -> torch.Tensor:
    magnitude_s, angle_s = source
    magnitude_f, angle_f = fused
    select_ratio = torch.sigmoid(-sharpness * (magnitude_s - magnitude_f))
    strength = select_ratio * (magnitude_s / magnitude_f) + (1.0 - select_ratio) * (magnitude_f / magnitude_s)
    orientation = ((angle_s - angle_f).abs() - math.pi / 2).abs() * (2.0 / math.pi)
    q_strength = torch.sigmoid(10.0 * (strength - 0.5))
    q_orientation = torch.sigmoid(20.0 * (orientation - 0.75))
    return q_strength * q_orientation


@torch.no_grad()
def qabf(source_a: torch.Tensor, source_b: torch.Tensor, fused: torch.Tensor) -> torch.Tensor:
    """Standard Xydeas–Petrović Q^{AB/F} of [0, 1] images (validation score, not differentiable).

    The original paper's constants (Γg = 0.9994, κg = −15, σg = 0.5, Γα = 0.9879, κα = −22,
    σα = 0.8), hard min/max strength ratio, α = atan(gy/gx) with π/2 where gx = 0, weights g,
    score ΣQ·w / Σw over the batch. Meant for comparing checkpoints during training; the app's
    metric module is the reference for reported numbers.
    """
    scores = []
    fields = []
    for image in (source_a, source_b, fused):
        gx, gy = _sobel(_grey(image) * 255.0)
        magnitude = torch.sqrt(gx * gx + gy * gy)
        angle = torch.where(gx == 0, torch.full_like(gx, math.pi / 2), torch.atan(gy / gx.where(gx != 0, 1.0)))
        fields.append((magnitude, angle))
    magnitude_f, angle_f = fields[2]
    weights_sum = torch.zeros((), dtype=fused.dtype, device=fused.device)
    for magnitude_s, angle_s in fields[:2]:
        larger = torch.maximum(magnitude_s, magnitude_f)
        smaller = torch.minimum(magnitude_s, magnitude_f)
        strength = torch.where(larger == 0, torch.zeros_like(larger), smaller / larger.clamp_min(1e-12))
        orientation = 1.0 - (angle_s - angle_f).abs() / (math.pi / 2)
        q_strength = 0.9994 / (1.0 + torch.exp(-15.0 * (strength - 0.5)))
        q_orientation = 0.9879 / (1.0 + torch.exp(-22.0 * (orientation - 0.8)))
        scores.append((q_strength * q_orientation * magnitude_s).sum())
        weights_sum = weights_sum + magnitude_s.sum()
    return (scores[0] + scores[1]) / weights_sum.clamp_min(1e-12)


@torch.no_grad()
def decision_scores(prediction: torch.Tensor, target: torch.Tensor, threshold: float = 0.5) -> dict[str, float]:
    """Dice coefficient, IoU and accuracy of a thresholded decision map against a binary target."""
    predicted = prediction > threshold
    truth = target > 0.5
    intersection = (predicted & truth).sum().item()
    union = (predicted | truth).sum().item()
    total_true = predicted.sum().item() + truth.sum().item()
    return {
        "dice": 2.0 * intersection / total_true if total_true else 1.0,
        "iou": intersection / union if union else 1.0,
        "accuracy": (predicted == truth).float().mean().item(),
    }


def psnr(output: torch.Tensor, target: torch.Tensor) -> float:
    """PSNR in dB of images in [0, 1] (capped at 100 dB for identical images)."""
    return float(-10.0 * torch.log10(((output - target) ** 2).mean().clamp_min(1e-10)))
