"""Inference path of the generator with its transposed convolutions rewritten as sub-pixel convolutions.

A ConvTranspose3d with kernel 4 and stride 2 equals, for each of the 8 output
parities (rx, ry, rz), an ordinary convolution with a 2×2×2 slice of its kernel
over the input padded by one voxel; the 8 results interleave into the output
("pixel shuffle"). Ordinary convolutions run far faster in cuDNN than transposed
3D ones, so generation uses this form. Batch norm (eval mode) is folded into the
convolution's weights and bias. The result equals ``Generator.logits`` up to
floating-point rounding (tests compare them in float64).

In 1D, with ``y_full`` the uncropped transposed convolution of ``x`` (length n)::

    y_full[2m + r] = w[r] · x[m] + w[r + 2] · x[m − 1],   m = 0..n, r ∈ {0, 1}

which is a correlation of ``x`` padded by one with the kernel ``[w[r + 2], w[r]]``;
the layer's output is ``y_full[p : 2n + 2 − p]``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .nets import Generator


def supported(G: Generator) -> bool:
    """True when every layer has kernel 4 and stride 2 (MicroLib's generators)."""
    p = G.params
    return all(k == 4 and s == 2 and 0 <= pad <= 3 for k, s, pad in zip(p.gk, p.gs, p.gp))


class SubpixelGenerator:
    """Eval-mode logits of a :class:`Generator`, computed with sub-pixel convolutions.

    Build it after the weights are final (it copies them); ``channels_last`` lays
    activations out as (B, D, H, W, C), which cuDNN prefers on GPUs.
    """

    def __init__(self, G: Generator, dtype: torch.dtype | None = None, channels_last: bool = False):
        if not supported(G):
            raise ValueError("sub-pixel generation needs kernel 4 and stride 2 in every layer")
        dev = next(G.parameters()).device
        dtype = dtype or torch.float32
        self.channels_last = channels_last
        self.layers = []
        n = len(G.convs)
        # parity-major channel order (r·C + c): the interleave then moves whole C-vectors
        parities = [(rx, ry, rz) for rx in (0, 1) for ry in (0, 1) for rz in (0, 1)]
        with torch.no_grad():
            for i, (conv, bn) in enumerate(zip(G.convs, G.bns)):
                w = conv.weight.detach().double()  # (Cin, Cout, 4, 4, 4)
                cout = w.shape[1]
                if i < n - 1:  # fold eval-mode batch norm: y = s·x + t
                    s = bn.weight.double() / torch.sqrt(bn.running_var.double() + bn.eps)
                    t = bn.bias.double() - bn.running_mean.double() * s
                else:
                    s = torch.ones(cout, dtype=torch.float64, device=dev)
                    t = None
                blocks = []
                for rx, ry, rz in parities:
                    # taps: index 0 multiplies x[m − 1] (kernel r + 2), index 1 multiplies x[m] (kernel r)
                    k = w[:, :, [rx + 2, rx]][:, :, :, [ry + 2, ry]][:, :, :, :, [rz + 2, rz]]
                    blocks.append(k.permute(1, 0, 2, 3, 4) * s.view(-1, 1, 1, 1, 1))
                w8 = torch.cat(blocks).to(dtype)  # (8·Cout, Cin, 2, 2, 2)
                b8 = None if t is None else t.repeat(8).to(dtype)
                if channels_last:
                    w8 = w8.contiguous(memory_format=torch.channels_last_3d)
                self.layers.append((w8, b8, cout, int(G.params.gp[i]), i < n - 1))

    @torch.no_grad()
    def logits(self, z: torch.Tensor) -> torch.Tensor:
        """(B, nz, a, b, c) latent → (B, nc, X, Y, Z) logits (channels-last strides when asked)."""
        x = z.to(self.layers[0][0].dtype)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last_3d)
        for w8, b8, cout, pad, relu in self.layers:
            y = F.conv3d(x, w8, b8, padding=1)  # (B, 8·C, n+1, n+1, n+1)
            if relu:
                y = F.relu_(y)
            x = _interleave(y, cout, pad)
            if self.channels_last and relu:
                x = x.contiguous(memory_format=torch.channels_last_3d)
        return x


def _interleave(y: torch.Tensor, c: int, pad: int) -> torch.Tensor:
    """(B, 8·C, D, H, W) in parity-major channel order → (B, C, 2D − 2p, 2H − 2p, 2W − 2p)."""
    B, _, D, H, W = y.shape
    # work on the (B, D, H, W, 8C) view: free for channels-last y, a view for any y
    v = y.permute(0, 2, 3, 4, 1).reshape(B, D, H, W, 2, 2, 2, c) if not y.permute(0, 2, 3, 4, 1).is_contiguous() \
        else y.permute(0, 2, 3, 4, 1).view(B, D, H, W, 2, 2, 2, c)
    h = pad // 2  # whole (m) steps cropped on each side; an odd pad leaves one voxel more
    v = v[:, h:D - h, h:H - h, h:W - h]
    d, hh, w = v.shape[1:4]
    out = torch.empty((B, 2 * d, 2 * hh, 2 * w, c), dtype=y.dtype, device=y.device)
    out.view(B, d, 2, hh, 2, w, 2, c).copy_(v.permute(0, 1, 4, 2, 5, 3, 6, 7))
    if pad % 2:
        out = out[:, 1:-1, 1:-1, 1:-1]
    return out.permute(0, 4, 1, 2, 3)  # logical NCDHW over channels-last memory
