"""SliceGAN networks: a 3D transposed-convolution generator and a 2D critic.

Module and parameter names follow the published code (``convs.N.weight``,
``bns.N.*``) so state dicts load in both directions.

A generator layer can also be a *resize* layer: nearest-neighbour upsampling by 2 then a
3×3×3 convolution, the usual cure for the checkerboard a transposed convolution can leave.
It is run as the kernel-4, stride-2 transposed convolution it equals (:func:`resize_kernel`),
so its geometry, speed and fast paths are those of the published layer; only its weight is
stored as the 3³ kernel (published code cannot load such a generator).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn
import torch.nn.functional as F


#: Kinds of generator layer (:class:`NetParams` ``g_layers``).
G_LAYER_KINDS = ("transpose", "resize")


def upsampling(kinds) -> str:
    """How a generator with layer kinds ``kinds`` upsamples, in one word: "resize" when any layer
    is a resize layer, else "transpose" (the published layers)."""
    return "resize" if "resize" in kinds else "transpose"


@dataclass(frozen=True)
class NetParams:
    """Layer lists in the published order ``[dk, ds, df, dp, gk, gs, gf, gp]``, and the kind
    of each generator layer (``g_layers``; empty: all ``"transpose"``, the published network).
    A ``"resize"`` layer has the geometry ``gk``/``gs``/``gp`` of its equivalent transposed
    convolution (kernel 4, stride 2)."""

    dk: tuple[int, ...]
    ds: tuple[int, ...]
    df: tuple[int, ...]
    dp: tuple[int, ...]
    gk: tuple[int, ...]
    gs: tuple[int, ...]
    gf: tuple[int, ...]
    gp: tuple[int, ...]
    g_layers: tuple[str, ...] = ()

    @classmethod
    def from_list(cls, lists, g_layers=()) -> "NetParams":
        return cls(*(tuple(int(v) for v in x) for x in lists), g_layers=tuple(g_layers))

    def to_list(self) -> list[list[int]]:
        """The published eight lists (without ``g_layers``, which the published format lacks)."""
        d = asdict(self)
        d.pop("g_layers")
        return [list(v) for v in d.values()]

    def layer_kind(self, i: int) -> str:
        return self.g_layers[i] if self.g_layers else "transpose"

    @property
    def has_resize(self) -> bool:
        return upsampling(self.g_layers) == "resize"

    def g_weight_shape(self, i: int) -> tuple[int, ...]:
        """Shape of generator layer ``i``'s stored weight (``convs.i.weight``)."""
        k = 3 if self.layer_kind(i) == "resize" else self.gk[i]
        return (self.gf[i], self.gf[i + 1], k, k, k)

    @property
    def nz(self) -> int:
        return self.gf[0]

    @property
    def nc(self) -> int:
        return self.gf[-1]

    def out_side(self, latent_side: int) -> int:
        """Side of the generated volume for a latent of side ``latent_side``."""
        n = latent_side
        for k, s, p in zip(self.gk, self.gs, self.gp):
            n = (n - 1) * s - 2 * p + k
        return n

    @property
    def stride(self) -> int:
        """Output voxels per latent voxel."""
        out = 1
        for s in self.gs:
            out *= s
        return out

    @property
    def shrink(self) -> int:
        """``c`` in ``out_side(a) = stride * a - c``."""
        return self.stride * 8 - self.out_side(8)  # the map is affine, any side works

    @property
    def tileable(self) -> bool:
        """True when every output voxel has its full receptive field (padding ≥ kernel − stride).

        Then a window of the latent gives exactly the matching window of the
        volume, which makes tiled and periodic generation exact.
        """
        return all(p >= k - s for k, s, p in zip(self.gk, self.gs, self.gp))

    def check(self) -> None:
        """Raise ValueError when the lists do not describe a usable pair of networks."""
        g, d = len(self.gf) - 1, len(self.df) - 1
        if g < 1 or d < 1:
            raise ValueError("the networks need at least one layer")
        for name, v, n in (("gk", self.gk, g), ("gs", self.gs, g), ("gp", self.gp, g),
                           ("dk", self.dk, d), ("ds", self.ds, d), ("dp", self.dp, d)):
            if len(v) != n:
                raise ValueError(f"{name} has {len(v)} entries for {n} layers")
        if any(v <= 0 for v in self.gf + self.df + self.gk + self.dk + self.gs + self.ds):
            raise ValueError("channel counts, kernels and strides must be positive")
        if self.df[-1] != 1 or self.df[0] != self.gf[-1]:
            raise ValueError("the critic must map the generator's channels to one score")
        if self.g_layers:
            if len(self.g_layers) != g or any(kind not in G_LAYER_KINDS for kind in self.g_layers):
                raise ValueError(f"g_layers must name one of {', '.join(G_LAYER_KINDS)} for each of the {g} "
                                 "generator layers")
            if any(kind == "resize" and (self.gk[i], self.gs[i]) != (4, 2) for i, kind in enumerate(self.g_layers)):
                raise ValueError("a resize layer needs the geometry of a kernel-4, stride-2 transposed convolution")


def subpixel_supported(params: NetParams) -> bool:
    """True when every generator layer has kernel 4, stride 2 and padding 0-3 (MicroLib's)."""
    return all(k == 4 and s == 2 and 0 <= p <= 3 for k, s, p in zip(params.gk, params.gs, params.gp))


def resize_kernel(w: torch.Tensor) -> torch.Tensor:
    """The (Cin, Cout, 4, 4, 4) transposed-convolution kernel that equals nearest-neighbour
    upsampling by 2 followed by the 3³ convolution (cross-correlation) with taps
    ``w`` (Cin, Cout, 3, 3, 3); with padding 2 its output is that of the valid convolution.

    Along each axis, input voxel m reaches output 2m + u − 2 through taps whose upsampled
    positions hold it: the kernel is [w2, w1 + w2, w0 + w1, w0], i.e. the 2-tap box sum of the
    zero-padded taps, flipped. Differentiable (pads, slices, a flip: no host copies, so it can
    run inside a captured CUDA graph).
    """
    p = F.pad(w, (1, 1, 1, 1, 1, 1))
    k = sum(p[:, :, a:a + 4, b:b + 4, c:c + 4] for a in (0, 1) for b in (0, 1) for c in (0, 1))
    return k.flip(2, 3, 4)


def subpixel_kernel(w: torch.Tensor) -> torch.Tensor:
    """A ConvTranspose3d kernel (Cin, Cout, 4, 4, 4) as the (8·Cout, Cin, 2, 2, 2) kernel of its
    sub-pixel convolution, in parity-major channel order (r·Cout + c; r = 4·rx + 2·ry + rz)."""
    # Along each axis, parity r takes kernel taps [r + 2, r] (for x[m − 1], x[m]): tap 2·a + r
    # with a = 1 − t. Views and a flip only, so no index tensor (nothing to copy from the host
    # while a CUDA graph is captured).
    cin, cout = w.shape[:2]
    k = w.reshape(cin, cout, 2, 2, 2, 2, 2, 2).flip(2, 4, 6)  # (Cin, Cout, ax, rx, ay, ry, az, rz), a → t
    return k.permute(3, 5, 7, 1, 0, 2, 4, 6).reshape(8 * cout, cin, 2, 2, 2)


def subpixel_conv(x: torch.Tensor, w8: torch.Tensor, pad: int, bias: torch.Tensor | None = None) -> torch.Tensor:
    """The parities of a kernel-4, stride-2 transposed convolution with padding ``pad``:
    (B, 8·C, D, H, W) before :func:`interleave`. Only the kept outputs are computed: a
    padding of 2 or 3 drops a whole input step on each side, so the convolution pads
    by 1 − pad // 2."""
    return F.conv3d(x, w8, bias, padding=1 - pad // 2)


def interleave(y: torch.Tensor, c: int, pad: int) -> torch.Tensor:
    """(B, 8·C, D, H, W) parities from :func:`subpixel_conv` → (B, C, 2D, 2H, 2W), less one voxel
    on each side for an odd ``pad``. Channels-last memory in and out (one copy)."""
    B, _, D, H, W = y.shape
    # (B, D, H, W, 8C) is a free view of channels-last y (reshape copies otherwise)
    v = y.permute(0, 2, 3, 4, 1).reshape(B, D, H, W, 2, 2, 2, c)
    out = v.permute(0, 1, 4, 2, 5, 3, 6, 7).reshape(B, 2 * D, 2 * H, 2 * W, c)
    if pad % 2:
        out = out[:, 1:-1, 1:-1, 1:-1]
    return out.permute(0, 4, 1, 2, 3)  # logical NCDHW over channels-last memory


def _batch_norm(bn: nn.BatchNorm3d, x: torch.Tensor) -> torch.Tensor:
    """``bn(x)``, run on a 4D view when ``x`` is channels-last 3D: torch's fast channels-last
    batch-norm kernels take 4D tensors only (5D ones get a slow generic reduction)."""
    if not x.is_contiguous(memory_format=torch.channels_last_3d) or x.is_contiguous():
        return bn(x)
    B, C, D, H, W = x.shape
    momentum = 0.0
    if bn.training:  # what nn.BatchNorm3d.forward does with its counter and momentum
        bn.num_batches_tracked.add_(1)
        momentum = bn.momentum if bn.momentum is not None else 1.0 / float(bn.num_batches_tracked)
    y = F.batch_norm(x.view(B, C, D * H, W), bn.running_mean, bn.running_var, bn.weight, bn.bias,
                     bn.training, momentum, bn.eps)
    return y.view(B, C, D, H, W)


class Generator(nn.Module):
    """ConvTranspose3d stack; BatchNorm3d + ReLU between; softmax (n-phase) or 0.5·(tanh+1).

    One BatchNorm per layer is kept (the last unused), as in the published files.
    Resize layers (``params.g_layers``) keep their 3³ kernel in ``convs.N.weight`` and run
    through :meth:`kernel`, the equivalent transposed kernel. With ``subpixel`` set
    (kernel-4, stride-2 layers only), each transposed convolution runs as one ordinary
    2×2×2 convolution with 8× the output channels plus an interleave: the same function
    and gradients (the weights are rearranged on every call, differentiably), and faster
    in cuDNN.
    """

    def __init__(self, params: NetParams, imtype: str = "nphase"):
        super().__init__()
        self.params = params
        self.imtype = imtype
        gf, gk, gs, gp = params.gf, params.gk, params.gs, params.gp
        # a resize layer's module only holds its 3³ weight (and gives it PyTorch's initialisation)
        self.convs = nn.ModuleList(
            nn.ConvTranspose3d(gf[i], gf[i + 1], params.g_weight_shape(i)[-1], gs[i], gp[i], bias=False)
            for i in range(len(gk)))
        self.bns = nn.ModuleList(nn.BatchNorm3d(gf[i + 1]) for i in range(len(gk)))
        self.subpixel = False

    def logits(self, z: torch.Tensor, groups: int = 1) -> torch.Tensor:
        """The last layer's output before the activation.

        ``groups`` > 1 (training mode, no gradient): batch statistics per group of
        ``B / groups`` consecutive latents, so one call gives what ``groups`` calls on
        the parts would (larger convolutions, fewer launches).
        """
        if groups > 1 and self.training and torch.is_grad_enabled():
            raise ValueError("grouped batch statistics are for generation without gradients")
        x = z
        for i, bn in enumerate(self.bns[:-1]):
            x = self._conv(i, x)
            if groups > 1 and bn.training:
                x = torch.cat([_batch_norm(bn, part) for part in x.chunk(groups)])
            else:
                x = _batch_norm(bn, x)
            x = F.relu_(x)
        return self._conv(len(self.convs) - 1, x)

    def kernel(self, i: int) -> torch.Tensor:
        """Layer ``i``'s transposed-convolution kernel (Cin, Cout, k, k, k)."""
        w = self.convs[i].weight
        return resize_kernel(w) if self.params.layer_kind(i) == "resize" else w

    def _conv(self, i: int, x: torch.Tensor) -> torch.Tensor:
        conv = self.convs[i]
        if not self.subpixel:
            if self.params.layer_kind(i) == "resize":
                return F.conv_transpose3d(x, self.kernel(i), stride=conv.stride, padding=conv.padding)
            return conv(x)
        w8 = subpixel_kernel(self.kernel(i))
        if x.is_contiguous(memory_format=torch.channels_last_3d):
            w8 = w8.contiguous(memory_format=torch.channels_last_3d)
        pad = conv.padding[0]
        return interleave(subpixel_conv(x, w8, pad), conv.out_channels, pad)

    def activate(self, x: torch.Tensor) -> torch.Tensor:
        if self.imtype == "nphase":
            return torch.softmax(x, dim=1)
        return 0.5 * (torch.tanh(x) + 1.0)

    def forward(self, z: torch.Tensor, groups: int = 1) -> torch.Tensor:
        return self.activate(self.logits(z, groups))


def s2d_buffer(like: torch.Tensor, n: int, size, c: int, pad: int) -> torch.Tensor:
    """An (n, I, J, 2, 2, C) buffer for :func:`s2d_parts` with its padding zero: ``n`` images of
    ``size`` (H, W) padded by ``pad`` are I × J blocks of 2 × 2 pixels."""
    H, W = size
    shape = (n, (H + 2 * pad) // 2, (W + 2 * pad) // 2, 2, 2, c)
    return like.new_zeros(shape) if pad else like.new_empty(shape)


def s2d_parts(dst: torch.Tensor, src: torch.Tensor, pad: int):
    """(part of ``dst``, part of ``src``) pairs that write images ``src`` (..., H, W, C) into the
    space-to-depth buffer ``dst`` (..., I, J, 2, 2, C): one pair per row and column parity.
    Image row h = 2i + r is padded row h + pad, i.e. block (h + pad) // 2, parity (h + pad) % 2."""
    H, W = src.shape[-3:-1]
    s = src.unflatten(-3, (H // 2, 2)).unflatten(-2, (W // 2, 2))  # (..., H/2, 2, W/2, 2, C)
    for r in (0, 1):
        i0, pr = divmod(r + pad, 2)
        for q in (0, 1):
            j0, pq = divmod(q + pad, 2)
            yield dst[..., i0:i0 + H // 2, j0:j0 + W // 2, pr, pq, :], s[..., r, :, q, :]


def space_to_depth(x: torch.Tensor, pad: int) -> torch.Tensor:
    """(N, C, H, W) → (N, 4·C, (H + 2·pad) / 2, (W + 2·pad) / 2): zero-padded by ``pad``, each 2×2
    block of pixels as channels in (row parity, column parity, channel) order; channels-last
    memory. A kernel-4, stride-2 convolution with padding ``pad`` of ``x`` is the kernel-2,
    stride-1 convolution of this with :func:`s2d_kernel` (cuDNN runs the latter 2-4× faster
    for few input channels, and 2 or 4 channels are 8 or 16 here, so nothing is padded)."""
    N, C, H, W = x.shape
    buf = s2d_buffer(x, N, (H, W), C, pad)
    for dst, src in s2d_parts(buf, x.permute(0, 2, 3, 1), pad):
        dst.copy_(src)
    return buf.view(*buf.shape[:3], 4 * C).permute(0, 3, 1, 2)


def depth_to_space(y: torch.Tensor, pad: int, size) -> torch.Tensor:
    """The inverse of :func:`space_to_depth` (padding dropped): (N, 4·C, I, J) → (N, C, H, W)."""
    N, C4, I, J = y.shape
    H, W = size
    x = y.permute(0, 2, 3, 1).reshape(N, I, J, 2, 2, C4 // 4).permute(0, 5, 1, 3, 2, 4).reshape(N, C4 // 4, 2 * I, 2 * J)
    return x[:, :, pad:pad + H, pad:pad + W]


def s2d_kernel(w: torch.Tensor) -> torch.Tensor:
    """A (Cout, C, 4, 4) kernel as the (Cout, 4·C, 2, 2) kernel for :func:`space_to_depth` inputs:
    tap 2·a + r along each axis is tap a of parity r."""
    co, c = w.shape[:2]
    return w.reshape(co, c, 2, 2, 2, 2).permute(0, 3, 5, 1, 2, 4).reshape(co, 4 * c, 2, 2)


def s2d_supported(params: NetParams, side: int) -> bool:
    """True when the critic's first layer (kernel 4, stride 2) can take space-to-depth input
    of ``side``-pixel images."""
    return params.dk[0] == 4 and params.ds[0] == 2 and (side + 2 * params.dp[0]) % 2 == 0


class Critic(nn.Module):
    """Conv2d stack with ReLU between, no normalisation; returns the score map.

    With ``linear_head`` set, a last layer whose output is one pixel (MicroLib's: a
    4×4 kernel over a 4×4 input) runs as a matrix product with the flattened kernel,
    and its transpose in :meth:`input_gradient` as the outer product: the same
    arithmetic without the one-channel tensors that cuDNN pads and converts on every
    call (the trainer's default: 4 % faster per iteration on an H100).

    With ``s2d_input`` set, inputs come as :func:`space_to_depth` of the images
    (padded by the first layer's padding) and the first layer runs as a kernel-2,
    stride-1 convolution with :func:`s2d_kernel`: the same arithmetic;
    :meth:`input_gradient` still returns the gradient with respect to the images.
    """

    def __init__(self, params: NetParams):
        super().__init__()
        df, dk, ds, dp = params.df, params.dk, params.ds, params.dp
        self.convs = nn.ModuleList(
            nn.Conv2d(df[i], df[i + 1], dk[i], ds[i], dp[i], bias=False) for i in range(len(dk)))
        self.linear_head = False
        self.s2d_input = False

    def _first(self, x: torch.Tensor) -> torch.Tensor:
        conv = self.convs[0]
        if not self.s2d_input:
            return conv(x)
        w = s2d_kernel(conv.weight)
        if x.is_contiguous(memory_format=torch.channels_last):
            w = w.contiguous(memory_format=torch.channels_last)
        return F.conv2d(x, w)

    def _dot_head(self, size) -> bool:
        """True when the last layer maps an input of ``size`` to one output pixel."""
        conv = self.convs[-1]
        return self.linear_head and conv.padding == (0, 0) and tuple(size) == tuple(conv.kernel_size)

    def _head_matrix(self) -> torch.Tensor:
        """The last kernel as (out, kh·kw·C), matching channels-last flattening of its input."""
        w = self.convs[-1].weight
        return w.permute(0, 2, 3, 1).reshape(w.shape[0], -1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_hidden(x)[0]

    def forward_hidden(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """The score map and the hidden activations (after each ReLU)."""
        hidden = []
        for i, conv in enumerate(self.convs[:-1]):
            x = F.relu(self._first(x) if i == 0 else conv(x))
            hidden.append(x)
        if self._dot_head(x.shape[-2:]):
            score = F.linear(x.permute(0, 2, 3, 1).reshape(x.shape[0], -1), self._head_matrix())
            return score.view(x.shape[0], -1, 1, 1), hidden
        return self.convs[-1](x), hidden

    def input_gradient(self, masks: list[torch.Tensor], in_size, grad_out: torch.Tensor) -> torch.Tensor:
        """d(sum(D(x)·grad_out))/dx from the ReLU masks of x's forward pass (``hidden[i] > 0``);
        ``in_size`` is the images' (H, W), and the gradient is (N, C, H, W) in every layout.

        The critic is piecewise linear, so the gradient is the adjoint chain: transposed
        convolutions with the critic's weights, each followed by its mask. Built from
        ordinary differentiable operations, its gradient with respect to the weights needs
        only first-order autograd; it equals double backpropagation through ``forward``
        (the masks' derivative is zero almost everywhere, and zero in torch's ReLU too).
        """
        sizes = [tuple(in_size)] + [tuple(m.shape[-2:]) for m in masks]
        g = grad_out
        for i in range(len(self.convs) - 1, -1, -1):
            conv = self.convs[i]
            if i == len(self.convs) - 1 and self._dot_head(sizes[i]):
                kh, kw = conv.kernel_size
                g = (g.reshape(g.shape[0], -1) @ self._head_matrix()).view(g.shape[0], kh, kw, -1).permute(0, 3, 1, 2)
            elif i == 0 and self.s2d_input:
                g = depth_to_space(F.conv_transpose2d(g, s2d_kernel(conv.weight)), conv.padding[0], sizes[0])
            else:
                # the size a transposed convolution gives can fall short of the forward input by < stride
                extra = tuple(sizes[i][j] - ((g.shape[-2 + j] - 1) * conv.stride[j] - 2 * conv.padding[j]
                                             + conv.kernel_size[j]) for j in range(2))
                g = F.conv_transpose2d(g, conv.weight, stride=conv.stride, padding=conv.padding,
                                       output_padding=extra)
            if i > 0:
                g = g * masks[i - 1]
        return g


def conv_flops(params: NetParams, latent_side: int, batch: int, slice_batch: int) -> tuple[float, float]:
    """Forward FLOPs (2 per multiply-add) of the generator on ``batch`` latents and of the
    critic on ``slice_batch`` images of the training side; used by the benchmark."""
    g = 0.0
    n = latent_side
    for i, (k, s, p) in enumerate(zip(params.gk, params.gs, params.gp)):
        # a transposed conv costs what its adjoint (a strided conv over the output) costs
        g += 2.0 * params.gf[i] * params.gf[i + 1] * k ** 3 * n ** 3 * batch
        n = (n - 1) * s - 2 * p + k
    side = n
    d = 0.0
    for i, (k, s, p) in enumerate(zip(params.dk, params.ds, params.dp)):
        m = (side + 2 * p - k) // s + 1
        d += 2.0 * params.df[i] * params.df[i + 1] * k ** 2 * m ** 2 * slice_batch
        side = m
    return g, d
