"""Inference path of the generator with its transposed convolutions rewritten as sub-pixel convolutions.

A ConvTranspose3d with kernel 4 and stride 2 equals, for each of the 8 output
parities (rx, ry, rz), an ordinary convolution with a 2×2×2 slice of its kernel
over the input padded by one voxel; the 8 results interleave into the output
("pixel shuffle"). The helpers (``subpixel_kernel``, ``subpixel_conv``,
``interleave``) live in :mod:`.nets`, which trains with them on CUDA; a layer
padding of 2 or 3 drops the border steps, so those are not computed at all.
Ordinary convolutions run far faster in cuDNN than transposed 3D ones, so
generation uses this form. Batch norm (eval mode) is folded into the
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

from .nets import Generator, interleave, subpixel_conv, subpixel_kernel, subpixel_supported


def for_generator(G: Generator, dtype: torch.dtype, channels_last: bool) -> "SubpixelGenerator":
    """A :class:`SubpixelGenerator` for ``G``, reused while G's weights and statistics are
    unchanged (rebuilding costs a few tenths of a second on a CPU)."""
    tensors = [*G.parameters(), *G.buffers()]
    key = (dtype, channels_last, str(tensors[0].device), tuple(t._version for t in tensors),
           tuple(t.data_ptr() for t in tensors))
    cached = getattr(G, "_subpixel_cache", None)
    if cached is not None and cached[0] == key:
        return cached[1]
    fast = SubpixelGenerator(G, dtype, channels_last)
    G._subpixel_cache = (key, fast)
    return fast


class SubpixelGenerator:
    """Eval-mode logits of a :class:`Generator`, computed with sub-pixel convolutions.

    Build it after the weights are final (it copies them); ``channels_last`` lays
    activations out as (B, D, H, W, C), which cuDNN prefers on GPUs.
    """

    def __init__(self, G: Generator, dtype: torch.dtype | None = None, channels_last: bool = False):
        if not subpixel_supported(G.params):
            raise ValueError("sub-pixel generation needs kernel 4 and stride 2 in every layer")
        dtype = dtype or torch.float32
        self.channels_last = channels_last
        self.layers = []
        self.w_diff = None
        n = len(G.convs)
        work = torch.float64 if dtype == torch.float64 else torch.float32  # bf16 only at the end
        with torch.no_grad():
            for i, bn in enumerate(G.bns):
                w = G.kernel(i).detach().to(work)  # (Cin, Cout, 4, 4, 4)
                cin, cout = w.shape[:2]
                k = subpixel_kernel(w).view(8, cout, cin, 2, 2, 2)
                if i < n - 1:  # fold eval-mode batch norm: y = s·x + t
                    s = bn.weight.to(work) / torch.sqrt(bn.running_var.to(work) + bn.eps)
                    t = bn.bias.to(work) - bn.running_mean.to(work) * s
                    k = k * s.view(1, cout, 1, 1, 1, 1)
                    b8 = t.repeat(8).to(dtype)
                else:
                    b8 = None
                w8 = k.reshape(8 * cout, cin, 2, 2, 2)
                if i == n - 1 and cout == 2:
                    # two phases: the label is the sign of logit 1 − logit 0, one convolution of the
                    # weights' difference (half the work, and a sign survives rounding to bf16)
                    kd = k[:, 1] - k[:, 0]
                    self.w_diff = self._layout(kd.reshape(8, cin, 2, 2, 2).to(dtype))
                self.layers.append((self._layout(w8.to(dtype)), b8, cout, int(G.params.gp[i])))

    def _layout(self, w: torch.Tensor) -> torch.Tensor:
        return w.contiguous(memory_format=torch.channels_last_3d) if self.channels_last else w

    @torch.no_grad()
    def logits(self, z: torch.Tensor) -> torch.Tensor:
        """(B, nz, a, b, c) latent → (B, nc, X, Y, Z) logits (channels-last strides when asked)."""
        w8, _, cout, pad = self.layers[-1]
        return interleave(subpixel_conv(self._hidden(z), w8, pad), cout, pad)

    @torch.no_grad()
    def labels(self, z: torch.Tensor, offsets=None) -> torch.Tensor:
        """(B, nz, a, b, c) latent → (B, X, Y, Z) uint8 phase labels (argmax of the logits).

        The argmax is taken per parity before the interleave, so only one byte per voxel
        is interleaved instead of nc logits. ``offsets`` (one per phase) are added, in float32,
        to the logits :meth:`logits` gives before the argmax (:mod:`.calibrate` fits them on
        those: in bf16 the two-phase shortcut's rounding differs).
        """
        x = self._hidden(z)
        w8, _, cout, pad = self.layers[-1]
        if self.w_diff is not None and offsets is None:
            lab = subpixel_conv(x, self.w_diff, pad) > 0  # (B, 8, D, H, W), ties → phase 0 as argmax
        else:
            y = subpixel_conv(x, w8, pad)
            B, _, D, H, W = y.shape
            y = y.permute(0, 2, 3, 4, 1).reshape(B, D, H, W, 8, cout)
            if offsets is not None:
                y = y.float() + torch.tensor([float(v) for v in offsets], device=y.device)
            lab = y.argmax(-1).permute(0, 4, 1, 2, 3)
        return interleave(lab.to(torch.uint8), 1, pad)[:, 0]

    def _hidden(self, z: torch.Tensor) -> torch.Tensor:
        """The last layer's input."""
        x = z.to(self.layers[0][0].dtype)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last_3d)
        for w8, b8, cout, pad in self.layers[:-1]:
            y = F.relu_(subpixel_conv(x, w8, pad, b8))  # (B, 8·C, ...) parities
            x = interleave(y, cout, pad)
            if self.channels_last:
                x = x.contiguous(memory_format=torch.channels_last_3d)
        return x
