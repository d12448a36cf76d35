"""GACN's and SESF's fast CPU backend: inference-only forward of the dense SE encoder
(:class:`FastEncoder`, reference NCHW arithmetic or channels-last/oneDNN), the oneDNN fused
convolutions, exact channel-SE statistics for tiles, and GACN's fused activity operations.

The reference forward is the modules' own ``forward`` beside their architecture
(:mod:`focusstudio.core.methods.archs.sesf_arch`, :mod:`~focusstudio.core.methods.archs.gacn_arch`);
``tests/core/test_sesf_gacn.py`` checks this backend against it.

Exactness first: the decision rules are knife-edge (see :class:`FastEncoder`), so the fast paths
keep the modules' arithmetic and only remove allocation and copy overhead.

Tiling: the networks are local (3×3 convs, window sums, 7×7 sSE) except the channel SE of the
encoder, which scales channels by a function of their *global* average. Tiles therefore get the
whole image's cSE scales, computed beforehand by :func:`encoder_channel_scales` in one pass per
encoder layer (each pass streams tiles and accumulates the layer's channel sums). With that, a
tiled forward equals the untiled one up to float rounding, provided the tile halo covers the
receptive field.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypeAlias

from focusstudio.core.lazy import lazy_import
from focusstudio.core.methods.deep_common import BAND_ROWS, channel_box_sum, is_channels_last, row_differences
from focusstudio.core.methods.engine import sum_over_tiles
from focusstudio.core.progress import CancelToken, check_cancelled
from focusstudio.core.tiling import Tile

# torch and the architecture load on first use (see focusstudio.core.lazy).
torch = lazy_import("torch")
F = lazy_import("torch.nn.functional")
sesf_arch = lazy_import("focusstudio.core.methods.archs.sesf_arch")
gacn_arch = lazy_import("focusstudio.core.methods.archs.gacn_arch")



# ---------------------------------------------------------------------------------------- encoder
class FastEncoder:
    """Inference-only forward of a ``DenseSEEncoder`` (SESF's encoder, GACN's feature path).

    Two arithmetics:

    * reference (default): the module's operations in their order — NCHW convolution, ReLU,
      BatchNorm, channel mean, SE multiply — bit for bit what the released code computes on this
      CPU. SESF-Fuse needs it: its strict SF_1 > SF_2 decides flat regions on float rounding.
    * ``channels_last``: the same operations with NHWC convolutions, which oneDNN runs 2–3×
      faster for these 16-output-channel layers, with the ReLU, and the running sum over a
      dense block's inputs, as the convolutions' post-ops. Sums run in another order, so values
      differ at float-rounding level (GACN: ≤ 1 pixel of M per pair moves on the authors' test
      pairs).

    Reference mode writes every block straight into its slice of one preallocated 64-channel
    buffer, whose leading channels are the next block's input. Channels-last mode keeps each
    block's 16 channels as their own dense tensor instead (see :meth:`_channels_last_parts`):
    :meth:`parts` hands them over as they are, a call joins them into one tensor.
    """

    def __init__(self, encoder: sesf_arch.DenseSEEncoder, channels_last: bool = False) -> None:
        self.encoder = encoder
        self.width = encoder.blocks[0].conv.out_channels
        self.blocks: list[tuple[sesf_arch.ConvBlock, sesf_arch.ChannelSE]] = list(zip(encoder.blocks, encoder.se))
        self.channels_last = channels_last
        self._workspace: torch.Tensor | None = None
        self.weights = [
            block.conv.weight.detach().contiguous(memory_format=torch.channels_last)
            if channels_last else block.conv.weight
            for block in encoder.blocks
        ]
        #: channels-last mode: block i's weights split by input part (one per earlier block)
        self.part_weights = [
            [w[:, j * self.width : (j + 1) * self.width].contiguous(memory_format=torch.channels_last)
             for j in range(w.shape[1] // self.width)]
            for w in (block.conv.weight.detach() for block in encoder.blocks)
        ] if channels_last else []
        self.bn_affine = [tuple(t.view(1, -1, 1, 1) for t in bn_scale_shift(block)) for block in encoder.blocks]

    @property
    def radius(self) -> int:
        return self.encoder.radius

    @property
    def out_channels(self) -> int:
        return self.encoder.out_channels

    def _conv(self, x: torch.Tensor, i: int) -> torch.Tensor:
        """Block i's convolution (the reference arithmetic: NCHW conv2d)."""
        conv = self.blocks[i][0].conv
        return F.conv2d(x, self.weights[i], conv.bias, padding=1)

    def _first_conv_relu(self, x: torch.Tensor) -> torch.Tensor:
        """ReLU(block 0's convolution) of a 1×1×h×w image, channels-last. With one input channel
        the NCHW and NHWC layouts are the same memory, but oneDNN chooses its (3× slower, NCHW)
        kernel unless the strides say channels-last, so the image is re-viewed with them."""
        conv = self.blocks[0][0].conv
        if x.shape[1] == 1:
            x = x.contiguous()  # a tile's window is a strided view
            x = x.as_strided(x.shape, (x.stride(0), 1, x.stride(2), x.stride(3)))
        out = conv2d_activation(x, self.weights[0], conv.bias, (1, 1), "relu")
        return out if out.is_contiguous(memory_format=torch.channels_last) else out.contiguous(
            memory_format=torch.channels_last)

    def _dense_conv_relu(self, parts: Sequence[torch.Tensor], i: int) -> torch.Tensor:
        """ReLU(block i's convolution) of the concatenated ``parts`` (earlier blocks' outputs),
        as a sum of one convolution per part: the running sum rides in each convolution's
        binary post-op, the ReLU in the last one's (:func:`conv2d_add_activation`)."""
        bias = self.blocks[i][0].conv.bias
        weights = self.part_weights[i]
        if len(parts) == 1:
            return conv2d_activation(parts[0], weights[0], bias, (1, 1), "relu")
        total = F.conv2d(parts[0], weights[0], bias, padding=1)
        for j in range(1, len(parts)):
            total = conv2d_add_activation(parts[j], total, weights[j], (1, 1),
                                          "relu" if j == len(parts) - 1 else None)
        return total

    def _channels_last_parts(
        self, x: torch.Tensor, channel_scales: Sequence[torch.Tensor] | None
    ) -> list[torch.Tensor]:
        """One 1×1×h×w image's features as its blocks' outputs (channels-last), block by block with one pass
        after each convolution's fused ReLU: BN is the affine s·z + t, so the SE input's channel
        means are s·mean(z) + t, and BN and the SE scale g fold into (s·g)·z + t·g, applied in
        place.

        Each block's 16 channels stay a dense tensor of their own and the next block convolves
        each part separately (:meth:`_dense_conv_relu`): a channel prefix of a 64-channel NHWC
        buffer is a strided view, which oneDNN cannot read without a copy, and 16-channel writes
        into such a buffer run ~3× slower than dense ones."""
        parts: list[torch.Tensor] = []
        for i in range(len(self.blocks)):
            check_cancelled()  # a block of a megapixel frame is a good part of a second on a CPU
            rectified = self._first_conv_relu(x) if i == 0 else self._dense_conv_relu(parts, i)
            bn_scale, bn_shift = self.bn_affine[i]
            if channel_scales is None:
                pixels = rectified[0].permute(1, 2, 0).reshape(-1, rectified.shape[1])  # (h·w)×C, no copy
                means = pixel_means(pixels).view(1, -1) * bn_scale.view(1, -1) + bn_shift.view(1, -1)
                scales = self.blocks[i][1].scales_from_mean(means)
            else:
                scales = channel_scales[i]
            parts.append(torch.addcmul(bn_shift * scales, rectified, bn_scale * scales, out=rectified))
        return parts

    def _block(self, x: torch.Tensor, i: int) -> torch.Tensor:
        """Block i's BatchNorm output (before the SE scaling)."""
        return self.blocks[i][0].bn(self._conv(x, i).relu_())

    def __call__(
        self, x: torch.Tensor, channel_scales: Sequence[torch.Tensor] | None = None, reuse: bool = False
    ) -> torch.Tensor:
        """N×1×H×W → N×64×H×W (channels-last strides in that mode); ``channel_scales`` (one
        N×16×1×1 per block) replace the cSE pooling.

        ``reuse``: write into the buffer of the previous ``reuse`` call when it has the same
        shape (the caller is done with that result): a fresh 70 MB buffer costs page faults."""
        return self._forward(x, channel_scales, reuse)

    def parts(self, x: torch.Tensor, channel_scales: Sequence[torch.Tensor] | None = None) -> list[torch.Tensor]:
        """Channels-last mode, one 1×1×H×W image: the features as the blocks' dense 16-channel
        outputs in channel order (see :data:`Features`), without joining them."""
        assert self.channels_last and x.shape[0] == 1
        return self._channels_last_parts(x, channel_scales)

    def _forward(
        self, x: torch.Tensor, channel_scales: Sequence[torch.Tensor] | None, reuse: bool
    ) -> torch.Tensor:
        count, _, height, width = x.shape
        layout = torch.channels_last if self.channels_last else torch.contiguous_format
        shape = (count, self.out_channels, height, width)
        out = self._workspace if reuse else None
        if out is None or out.shape != shape or out.dtype != x.dtype or out.device != x.device:
            out = torch.empty(shape, dtype=x.dtype, device=x.device, memory_format=layout)
            if reuse:
                self._workspace = out
        for n in range(count):  # one image at a time keeps every channel prefix contiguous
            buffer = out[n : n + 1]
            current = x[n : n + 1]
            if self.channels_last:
                scales_n = None if channel_scales is None else [s[n : n + 1] for s in channel_scales]
                torch.cat(self._channels_last_parts(current, scales_n), dim=1, out=buffer)
                continue
            for i, (_, se) in enumerate(self.blocks):
                check_cancelled()
                target = buffer[:, i * self.width : (i + 1) * self.width]
                scales = None if channel_scales is None else channel_scales[i][n : n + 1]
                normalised = self._block(current, i)
                torch.mul(normalised, se.scales(normalised) if scales is None else scales, out=target)
                current = buffer[:, : (i + 1) * self.width]
        return out

    # -------------------------------------------------------------- block by block (tiled statistics)
    def block_output(self, inputs: torch.Tensor | Sequence[torch.Tensor], i: int) -> torch.Tensor:
        """Block i of one 1×·×h×w window before its SE scaling: ``inputs`` is the image for block
        0, else blocks 0..i−1's scaled outputs in order (:meth:`scale_block`). Channels-last: the
        fused convolution's ReLU output (BN folds into the scaling); reference: the BN output.
        The same operations, in the same order, as the forward on the same window."""
        check_cancelled()
        if self.channels_last:
            if i == 0:
                assert isinstance(inputs, torch.Tensor)
                return self._first_conv_relu(inputs)
            assert not isinstance(inputs, torch.Tensor)
            return self._dense_conv_relu(inputs, i)
        return self._block(inputs if isinstance(inputs, torch.Tensor) else torch.cat(list(inputs), dim=1), i)

    def block_sums(self, output: torch.Tensor, i: int, core: tuple[slice, slice]) -> torch.Tensor:
        """Σ over the ``core`` pixels of block i's BN output (1×16, float64), from :meth:`block_output`."""
        if not self.channels_last:
            return output[:, :, core[0], core[1]].sum(dim=(2, 3), dtype=torch.float64)
        bn_scale, bn_shift = self.bn_affine[i]
        window = output[0, :, core[0], core[1]].permute(1, 2, 0)
        pixels = window.reshape(-1, window.shape[2])  # a copy unless the core is the window
        count = pixels.shape[0]
        sums = (pixel_means(pixels) * count).double().view(1, -1)  # Σ(s·z + t) = s·Σz + t·count
        return sums * bn_scale.view(1, -1).double() + bn_shift.view(1, -1).double() * count

    def scale_block(self, output: torch.Tensor, i: int, scales: torch.Tensor) -> torch.Tensor:
        """:meth:`block_output` with its SE ``scales`` applied, in place (as the forward applies them)."""
        if not self.channels_last:
            return torch.mul(output, scales, out=output)
        bn_scale, bn_shift = self.bn_affine[i]
        return torch.addcmul(bn_shift * scales, output, bn_scale * scales, out=output)

    def join_blocks(self, outputs: Sequence[torch.Tensor]) -> torch.Tensor | list[torch.Tensor]:
        """The features from every block's scaled output: channels-last, the parts as
        :meth:`parts` gives them; reference, one 1×64×h×w tensor as the forward gives it."""
        return list(outputs) if self.channels_last else torch.cat(list(outputs), dim=1)

    def pre_se_channel_sums(
        self, x: torch.Tensor, layer: int, channel_scales: Sequence[torch.Tensor], core: tuple[slice, slice]
    ) -> torch.Tensor:
        """Σ over the ``core`` pixels of block ``layer``'s BN output (1×16, float64) for a
        1×1×h×w window, the earlier blocks using ``channel_scales``."""
        if self.channels_last:
            return self._channels_last_pre_se_sums(x, layer, channel_scales, core)
        current = x
        outputs: list[torch.Tensor] = []
        for i in range(layer + 1):
            check_cancelled()
            normalised = self._block(current, i)
            if i == layer:
                return normalised[:, :, core[0], core[1]].sum(dim=(2, 3), dtype=torch.float64)
            outputs.append(normalised.mul_(channel_scales[i]))
            current = outputs[0] if len(outputs) == 1 else torch.cat(outputs, dim=1)
        raise AssertionError("unreachable")

    def _channels_last_pre_se_sums(
        self, x: torch.Tensor, layer: int, channel_scales: Sequence[torch.Tensor], core: tuple[slice, slice]
    ) -> torch.Tensor:
        """:meth:`pre_se_channel_sums` with the channels-last blocks of the forward pass (the
        tiled channel statistics run blocks 0..k for every k, ~2.5 forwards per frame: in NCHW with
        layout conversions they took half of a tiled GACN fusion)."""
        parts: list[torch.Tensor] = []
        for i in range(layer + 1):
            check_cancelled()
            rectified = self._first_conv_relu(x) if i == 0 else self._dense_conv_relu(parts, i)
            bn_scale, bn_shift = self.bn_affine[i]
            if i == layer:
                window = rectified[0, :, core[0], core[1]].permute(1, 2, 0)
                pixels = window.reshape(-1, window.shape[2])  # a copy unless the core is the window
                count = pixels.shape[0]
                sums = (pixel_means(pixels) * count).double().view(1, -1)  # Σ(s·z + t) = s·Σz + t·count
                return sums * bn_scale.view(1, -1).double() + bn_shift.view(1, -1).double() * count
            scales = channel_scales[i]
            parts.append(torch.addcmul(bn_shift * scales, rectified, bn_scale * scales, out=rectified))
        raise AssertionError("unreachable")


#: Rows summed side by side in :func:`pixel_means` (a multiple of 16 for 16-channel pixels
#: gives rows of 256 floats: one contiguous vectorised reduction).
_MEAN_ROW_GROUP = 16


def pixel_means(pixels: torch.Tensor) -> torch.Tensor:
    """Column means of a contiguous P×C matrix (the channel means of channels-last pixels).

    ``pixels.mean(dim=0)`` reduces across rows with a stride of C, which torch's CPU kernels run
    at ~2.5× the time of a contiguous reduction; grouping k rows into one row of k·C values makes
    the long reduction contiguous, then the k partial sums of each channel are added. As accurate
    as the direct mean (both reduce pairwise-blocked), not bit-identical."""
    rows, channels = pixels.shape
    main = rows // _MEAN_ROW_GROUP * _MEAN_ROW_GROUP
    if main == 0 or not pixels.is_contiguous():
        return pixels.mean(dim=0)
    total = pixels[:main].reshape(-1, _MEAN_ROW_GROUP * channels).sum(dim=0).view(_MEAN_ROW_GROUP, channels).sum(dim=0)
    if main < rows:
        total = total + pixels[main:].sum(dim=0)
    return total / rows


# ---------------------------------------------------------------------------------------- fused convs
#: None until the first CPU call tells whether this torch build has oneDNN's fused convolution.
_fused_conv_available: bool | None = None


def _fused_or_none(x: torch.Tensor, call: Callable[[], torch.Tensor]) -> torch.Tensor | None:
    """``call()`` (a oneDNN fused convolution) on float32 CPU tensors, None where it does not
    apply: another device or dtype, a torch build without the op (then never tried again), or
    shapes/layouts this call cannot take."""
    global _fused_conv_available
    if _fused_conv_available is False or x.device.type != "cpu" or x.dtype != torch.float32:
        return None
    try:
        fused = call()
    except (AttributeError, NotImplementedError):
        _fused_conv_available = False
        return None
    except RuntimeError:
        return None
    _fused_conv_available = True
    return fused


def conv2d_activation(
    x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, padding: tuple[int, int], activation: str,
    groups: int = 1,
) -> torch.Tensor:
    """``activation(conv2d(x, weight, bias))``, ``activation`` "relu" or "sigmoid", zero padding.

    On the CPU (float32) the activation runs inside oneDNN's convolution as a post-op, applied as
    the output is written: one pass over the output less (the op torch's own compiler emits for
    this pattern). Its sums run in oneDNN's order, which depends on the CPU's kernels: equal to
    conv2d + activation within float rounding, bit-identical on some CPUs only. Elsewhere, or
    where the torch build lacks the op: conv2d and the activation in place."""
    fused = _fused_or_none(x, lambda: torch.ops.mkldnn._convolution_pointwise(
        x, weight, bias, list(padding), [1, 1], [1, 1], groups, activation, [], None))
    if fused is not None:
        return fused
    out = F.conv2d(x, weight, bias, padding=padding, groups=groups)
    return out.relu_() if activation == "relu" else out.sigmoid_()


def conv2d_add_activation(
    x: torch.Tensor, other: torch.Tensor, weight: torch.Tensor, padding: tuple[int, int], activation: str | None
) -> torch.Tensor:
    """``activation(conv2d(x, weight) + other)`` (no bias; ``activation`` "relu" or None), on the
    CPU in one oneDNN call whose binary post-op adds ``other`` as the output is written."""
    fused = _fused_or_none(x, lambda: torch.ops.mkldnn._convolution_pointwise.binary(
        x, other, weight, None, list(padding), [1, 1], [1, 1], 1, "add", 1.0, activation, [], None))
    if fused is not None:
        return fused
    out = F.conv2d(x, weight, padding=padding).add_(other)
    return out.relu_() if activation == "relu" else out


def bn_scale_shift(block: sesf_arch.ConvBlock) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel (s, t) with BN_eval(z) = s·z + t."""
    bn = block.bn
    assert bn.running_mean is not None and bn.running_var is not None
    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
    shift = bn.bias - bn.running_mean * scale
    return scale.detach(), shift.detach()


def encoder_channel_scales(
    encoder: FastEncoder,
    image: torch.Tensor,
    tiles: Sequence[Tile],
    cancel: CancelToken | None = None,
) -> list[torch.Tensor]:
    """The cSE channel weights of every block for the whole (1×1×H×W) ``image``, computed tile by
    tile: pass k runs blocks 0..k on each tile (halo k+1 suffices for block k) and accumulates the
    channel sums of block k's output; the global means then give block k's weights exactly."""
    height, width = image.shape[-2:]
    scales: list[torch.Tensor] = []
    for layer in range(len(encoder.blocks)):

        def block_sums(window: tuple[slice, slice], core: tuple[slice, slice], layer: int = layer) -> torch.Tensor:
            return encoder.pre_se_channel_sums(image[:, :, window[0], window[1]], layer, scales, core)

        sums = sum_over_tiles(tiles, (height, width), layer + 1, block_sums, cancel)
        means = (sums / float(height * width)).to(image.dtype)
        scales.append(encoder.blocks[layer][1].scales_from_mean(means))
    return scales



# ---------------------------------------------------------------------------------------- activity
#: Features as one N×C×H×W tensor or as its channel groups in order (each N×c×H×W, dense),
#: the channels-last :class:`FastEncoder`'s output (its blocks' parts, never concatenated).
Features: TypeAlias = "torch.Tensor | Sequence[torch.Tensor]"  # a string: torch loads lazily


def feature_parts(features: Features) -> list[torch.Tensor]:
    return [features] if isinstance(features, torch.Tensor) else list(features)


def gradient_energy_difference(features_a: Features, features_b: Features | None = None) -> torch.Tensor:
    """Per-channel E(a) − E(b) of :func:`squared_gradient_energy` (E(a) alone without b), in
    fewer passes over memory: multiply-adds straight into the output (the sums associate
    differently, so values differ from ``squared_gradient_energy(a, False, minus=b)`` at
    float-rounding level). Channel parts are read as they are and their results placed in one
    N×C×H×W output with the first part's layout; this costs one strided copy per part and band,
    less than joining the parts first."""
    parts_a = feature_parts(features_a)
    parts_b = None if features_b is None else feature_parts(features_b)
    first = parts_a[0]
    count, _, height, width = first.shape
    channels = sum(part.shape[1] for part in parts_a)
    layout = torch.channels_last if is_channels_last(first) else torch.contiguous_format
    out = torch.empty((count, channels, height, width), dtype=first.dtype, device=first.device, memory_format=layout)
    buffers: tuple[torch.Tensor, torch.Tensor] | None = None
    energy: torch.Tensor | None = None
    for start in range(0, height, BAND_ROWS):
        check_cancelled()
        stop = min(start + BAND_ROWS, height)
        offset = 0
        for k, part_a in enumerate(parts_a):
            target = out[:, offset : offset + part_a.shape[1], start:stop]
            offset += part_a.shape[1]
            if buffers is not None and buffers[0].shape != target.shape:
                buffers = energy = None
            horizontal, vertical = buffers = row_differences(part_a, start, stop, buffers)
            if len(parts_a) == 1:
                energy = target
            elif energy is None:
                energy = torch.empty_like(horizontal)
            torch.mul(horizontal, horizontal, out=energy).addcmul_(vertical, vertical)
            if parts_b is not None:
                horizontal, vertical = row_differences(parts_b[k], start, stop, buffers)
                energy.addcmul_(horizontal, horizontal, value=-1.0).addcmul_(vertical, vertical, value=-1.0)
            if energy is not target:
                target.copy_(energy)
    return out



def window_sum_sigmoid(
    energy: torch.Tensor, radius: int, gain: float, group_width: int | None = None
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(sigmoid(gain · W), per-group sums of W or None) where W is the per-channel zero-padded
    (2r+1)² window sum of ``energy`` (:func:`channel_box_sum`); the groups are consecutive runs of
    ``group_width`` channels (GACN's per-scale maps). ``energy`` may be overwritten.

    Channels-last on the CPU: the gain rides in the vertical pass's weights and the sigmoid is that
    convolution's post-op (:func:`conv2d_activation`), so W itself is never written; the group sums
    come from the horizontal pass (sums and windows commute) at 1/16 of the channels."""
    channels = energy.shape[1]
    if energy.device.type != "cpu" or not is_channels_last(energy):
        window = channel_box_sum(energy, radius)
        grouped = None if group_width is None else gacn_arch.per_scale_sum(window, group_width)
        return torch.sigmoid_(window.mul_(gain)), grouped
    size = 2 * radius + 1
    layout = torch.channels_last
    row = torch.ones((channels, 1, 1, size), dtype=energy.dtype).contiguous(memory_format=layout)
    column = torch.full((channels, 1, size, 1), gain, dtype=energy.dtype).contiguous(memory_format=layout)
    horizontal = F.conv2d(energy, row, padding=(0, radius), groups=channels)
    grouped = None
    if group_width is not None:
        groups = channels // group_width
        selector = torch.zeros((groups, channels, 1, 1), dtype=energy.dtype)
        for k in range(groups):
            selector[k, k * group_width : (k + 1) * group_width] = 1.0
        partial = F.conv2d(horizontal, selector.contiguous(memory_format=layout))
        ones = torch.ones((groups, 1, size, 1), dtype=energy.dtype).contiguous(memory_format=layout)
        grouped = F.conv2d(partial, ones, padding=(radius, 0), groups=groups).contiguous()
    return conv2d_activation(horizontal, column, None, (radius, 0), "sigmoid", groups=channels), grouped



def single_output_conv(x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Zero-padded k×k convolution with one output channel (GACN's spatial SE), N×C×H×W → N×1×H×W.

    oneDNN runs C→1 convolutions at a tenth of its usual speed. Here the channels are reduced
    first with one matrix product per image (k² projections P_d = Σ_c w[c, d]·x_c) and the k²
    shifted planes are then added: same sums, ~5× less CPU time for C = 64. A channels-last
    input takes :func:`_single_output_conv_by_rows`. GPUs keep conv2d.
    """
    if x.device.type != "cpu" or x.shape[1] < 8:
        return F.conv2d(x, weight, padding=weight.shape[-1] // 2)
    if is_channels_last(x):
        return _single_output_conv_by_rows(x, weight)
    count, channels, height, width = x.shape
    size = weight.shape[-1]
    radius = size // 2
    projection_matrix = weight.reshape(channels, size * size).t().contiguous()
    out = torch.zeros((count, 1, height, width), dtype=x.dtype, device=x.device)
    for n in range(count):
        planes = torch.mm(projection_matrix, x[n].reshape(channels, height * width)).view(size, size, height, width)
        target = out[n, 0]
        for dy in range(size):
            shift_y = dy - radius
            y0, y1 = max(0, -shift_y), height - max(0, shift_y)
            if y1 <= y0:
                continue
            for dx in range(size):
                shift_x = dx - radius
                x0, x1 = max(0, -shift_x), width - max(0, shift_x)
                if x1 <= x0:
                    continue
                source = planes[dy, dx, y0 + shift_y : y1 + shift_y, x0 + shift_x : x1 + shift_x]
                target[y0:y1, x0:x1] += source
    return out


#: Output channels of the row convolution in :func:`_single_output_conv_by_rows`: oneDNN's
#: channels-last kernels run 8 outputs faster than 7 (the kernel's rows; the 8th is zero).
_ROW_CONV_OUTPUTS = 8


def _single_output_conv_by_rows(x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """:func:`single_output_conv` of a channels-last N×C×H×W tensor: one 1×k convolution with k
    outputs (output d applies kernel row d to every channel and sums them), then the k rows are
    added along a diagonal: out[y, x] = Σ_d R[y + d − r, x, d]. Same multiply-adds as the k×k
    convolution, ~30 % faster here than k² projections and shifted adds.

    The row convolution also pads r rows above and below (zero rows give zero outputs), so the
    diagonal is one strided view of its output and the adds are a single reduction."""
    count, channels, height, width = x.shape
    size = weight.shape[-1]
    radius = size // 2
    outputs = max(size, _ROW_CONV_OUTPUTS)
    rows = torch.zeros((outputs, channels, 1, size), dtype=x.dtype, device=x.device)
    rows[:size] = weight[0].permute(1, 0, 2).reshape(size, channels, 1, size)
    per_row = F.conv2d(x, rows.contiguous(memory_format=torch.channels_last), padding=(radius, radius))
    if not per_row.is_contiguous(memory_format=torch.channels_last):
        per_row = per_row.contiguous(memory_format=torch.channels_last)
    out = torch.empty((count, 1, height, width), dtype=x.dtype, device=x.device)
    row_stride = width * outputs
    for n in range(count):
        planes = per_row[n]  # (H + 2r)×W×outputs in memory
        diagonal = planes.as_strided((height, width, size), (row_stride, outputs, row_stride + 1),
                                     planes.storage_offset())
        torch.sum(diagonal, dim=-1, out=out[n, 0])
    return out
