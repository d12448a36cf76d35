"""Two-stream's network split for the ``neighbours`` strategy (issue 20): each frame's part computed
once per frame, only the joint part per pair pass, channels-last with oneDNN's fused ReLU on the CPU.

The module's forward (:class:`~focusstudio.core.methods.archs.twostream_arch.TwoStreamNet`) is

    (C₁, D₁) = stream_1(A₁), (C₂, D₂) = stream_2(A₂), E = ReLU(conv_e(D₁ + D₂)),
    F = ReLU(conv_f([A₁ + A₂, E])), G = ReLU(conv_g([C₁, D₁, F, C₂, D₂])), α = head(G).

A convolution of a channel concatenation is the sum of the convolutions of its parts, so

    conv_g([C₁, D₁, F, C₂, D₂]) = (conv([C₁, D₁], W_g¹) + b_g) + conv(F, W_g^F) + conv([C₂, D₂], W_g²)

and the first and last terms depend on one frame only. In ``neighbours`` a frame is the first input
of two passes and the second input of two (its pairs with both neighbours, both orders), so
:meth:`TwoStreamInference.encode` computes, once per frame, both streams and their shares of
``conv_g`` (``g``), keeping D and g of each stream (4 × ``width`` channels a pixel);
:meth:`TwoStreamInference.joint` runs E, F, the rest of G and the head for one ordered pair. Per
pass that is the joint part and, on average, one stream instead of two: about half of the
multiply-adds of a pass (width 32: 74 k of 149 k a pixel in the streams, 37 k of conv_g's 46 k in
the frames' shares). Sums run in another order than the module's (split conv_g, oneDNN's kernels),
so α agrees with the module within float rounding (``tests/core/test_twostream_cache.py`` derives
the bound).

The network is purely local (receptive radius 10 px), so both parts run in tiles with that halo
and equal an untiled run within rounding; the features themselves are held whole at the
analysis resolution.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from focusstudio.core.lazy import lazy_import
from focusstudio.core.methods.backends.fast_cpu import conv2d_activation, conv2d_add_activation

if TYPE_CHECKING:
    from focusstudio.core.methods.archs.twostream_arch import Stream, TwoStreamNet

torch = lazy_import("torch")
F = lazy_import("torch.nn.functional")

#: Working memory per pixel of :meth:`TwoStreamInference.encode` over one tile, per channel of the
#: stream width (float32): a stream's three live activations, the joined [C, D] and the four kept
#: maps of the tile, with margin.
ENCODE_BYTES_PER_PIXEL_PER_CHANNEL = 4.0 * 10
#: Working memory per pixel of :meth:`TwoStreamInference.joint` over one tile, per channel: D₁ + D₂,
#: E, F's input share, F, G's other terms, G and the head's activation, with margin.
JOINT_BYTES_PER_PIXEL_PER_CHANNEL = 4.0 * 8


def feature_bytes_per_pixel(width: int) -> int:
    """What :meth:`TwoStreamInference.encode` keeps of one frame per pixel: D and g of each stream."""
    return 4 * 4 * width


@dataclass
class FrameFeatures:
    """One frame's part of every pass it is in (1×c×h×w tensors at the analysis resolution)."""

    image: torch.Tensor  # A: the network's input (its sum with the other frame feeds conv_f)
    d: tuple[torch.Tensor, torch.Tensor]  # D of stream 1, of stream 2
    g: tuple[torch.Tensor, torch.Tensor]  # conv_g's share of [C, D] of stream 1 (with conv_g's bias), of stream 2


def _weight(conv: torch.nn.Conv2d, channels: slice | None = None, channels_last: bool = True) -> torch.Tensor:
    weight = conv.weight.detach()
    if channels is not None:
        weight = weight[:, channels]
    return weight.contiguous(memory_format=torch.channels_last if channels_last else torch.contiguous_format)


def _bias(conv: torch.nn.Conv2d) -> torch.Tensor | None:
    return None if conv.bias is None else conv.bias.detach()


class TwoStreamInference:
    """Inference-only forward of a ``TwoStreamNet`` split into a per-frame part and a joint part
    (module docstring). ``channels_last``: NHWC tensors (oneDNN's fast path on the CPU)."""

    def __init__(self, network: TwoStreamNet, device: torch.device, channels_last: bool = True) -> None:
        self.device = device
        self.channels_last = channels_last
        self.width = network.conv_e[0].out_channels
        self.in_channels = network.in_channels
        width, cl = self.width, channels_last
        self.streams = [self._stream_weights(stream) for stream in (network.stream_1, network.stream_2)]
        conv_e, conv_f, conv_g = network.conv_e[0], network.conv_f[0], network.conv_g[0]
        self.e = (_weight(conv_e, None, cl), _bias(conv_e))
        inputs = self.in_channels
        # conv_f over [A₁ + A₂, E]: the image share (a few input channels, cheap) and E's share
        self.f_image = (_weight(conv_f, slice(0, inputs), cl), _bias(conv_f))
        self.f_e = _weight(conv_f, slice(inputs, inputs + width), cl)
        # conv_g over [C₁, D₁, F, C₂, D₂]: each stream's share and F's
        self.g_stream = tuple(
            (_weight(conv_g, slice(start, start + width), cl),
             _weight(conv_g, slice(start + width, start + 2 * width), cl))
            for start in (0, 3 * width)
        )
        self.g_bias = _bias(conv_g)
        self.g_f = _weight(conv_g, slice(2 * width, 3 * width), cl)
        head = network.head
        self.head = [(_weight(head[0], None, cl), _bias(head[0])), (_weight(head[2], None, cl), _bias(head[2]))]
        self.radius = network.receptive_radius

    def _stream_weights(self, stream: Stream) -> list[tuple[torch.Tensor, torch.Tensor | None]]:
        convs = [stream.head[0], stream.block_1.body[0], stream.block_1.body[2], stream.block_2.body[0],
                 stream.block_2.body[2]]
        return [(_weight(conv, None, self.channels_last), _bias(conv)) for conv in convs]

    def tensor(self, image: torch.Tensor) -> torch.Tensor:
        """``image`` (1×c×h×w) in this inference's memory format."""
        return image.contiguous(memory_format=torch.channels_last) if self.channels_last else image.contiguous()

    def _relu_conv(self, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        return conv2d_activation(x, weight, bias, (1, 1), "relu")

    def encode(self, image: torch.Tensor) -> FrameFeatures:
        """Both streams of one frame (1×c×h×w in [0, 1]) and their shares of conv_g."""
        image = self.tensor(image)
        d: list[torch.Tensor] = []
        g: list[torch.Tensor] = []
        for number, weights in enumerate(self.streams):
            x = self._relu_conv(image, *weights[0])
            c = x
            for block in (1, 3):
                # residual block: x + ReLU(conv(ReLU(conv(x)))), no activation after the addition
                x = self._relu_conv(self._relu_conv(x, *weights[block]), *weights[block + 1]).add_(x)
                if block == 1:
                    c = x
            # conv([C, D], W) as conv(C, W_C) + conv(D, W_D): no joined copy of C and D
            weight_c, weight_d = self.g_stream[number]
            share = conv2d_add_activation(x, F.conv2d(c, weight_c, self.g_bias if number == 0 else None, padding=1),
                                          weight_d, (1, 1), None)
            d.append(x)
            g.append(share)
        return FrameFeatures(image, (d[0], d[1]), (g[0], g[1]))

    def joint(self, first: FrameFeatures, second: FrameFeatures) -> torch.Tensor:
        """α (1×1×h×w, weight of ``first``) of the ordered pair whose features are given."""
        e = self._relu_conv(torch.add(first.d[0], second.d[1]), *self.e)
        image_share = F.conv2d(torch.add(first.image, second.image), self.f_image[0], self.f_image[1], padding=1)
        f = conv2d_add_activation(e, self.tensor(image_share), self.f_e, (1, 1), "relu")
        del e, image_share
        g = conv2d_add_activation(f, torch.add(first.g[0], second.g[1]), self.g_f, (1, 1), "relu")
        del f
        x = self._relu_conv(g, *self.head[0])
        return conv2d_activation(x, *self.head[1], (1, 1), "sigmoid")

    @staticmethod
    def window(features: FrameFeatures, rows: slice, cols: slice) -> FrameFeatures:
        """The features over one tile's read window (views)."""
        def cut(t: torch.Tensor) -> torch.Tensor:
            return t[..., rows, cols]

        return FrameFeatures(cut(features.image), (cut(features.d[0]), cut(features.d[1])),
                             (cut(features.g[0]), cut(features.g[1])))
