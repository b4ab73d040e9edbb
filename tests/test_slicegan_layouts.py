"""The critic's space-to-depth input and the slice copies: the same arithmetic as the published
layers (float64), in values and in gradients."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F

from microlib_gui.core.slicegan.nets import Critic, depth_to_space, s2d_kernel, space_to_depth
from microlib_gui.core.slicegan.presets import get_preset
from microlib_gui.core.slicegan.train import volume_slices


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.mark.parametrize("pad", [0, 1, 2])
def test_space_to_depth_convolution_equals_the_strided_one(pad):
    torch.manual_seed(0)
    x = torch.rand(3, 2, 16, 12, dtype=torch.float64)
    w = torch.randn(5, 2, 4, 4, dtype=torch.float64)
    ref = F.conv2d(x, w, stride=2, padding=pad)
    y = space_to_depth(x, pad)
    assert y.shape == (3, 8, 8 + pad, 6 + pad) and y.is_contiguous(memory_format=torch.channels_last)
    out = F.conv2d(y, s2d_kernel(w))
    assert out.shape == ref.shape and torch.allclose(out, ref, rtol=1e-12, atol=1e-13)
    assert torch.equal(depth_to_space(y, pad, (16, 12)), x)


@pytest.mark.parametrize("linear_head", [False, True])
def test_critic_on_space_to_depth_input_equals_the_published_critic(linear_head):
    # scores, the penalty's input gradient (adjoint chain) and the weight gradients of a loss
    # on both: the same with the first layer on space-to-depth input
    torch.manual_seed(3)
    ref = Critic(get_preset("microlib").net_params(2)).double().to(memory_format=torch.channels_last)
    ref.linear_head = linear_head
    s2d = copy.deepcopy(ref)
    s2d.s2d_input = True
    x = torch.rand(3, 2, 64, 64, dtype=torch.float64).contiguous(memory_format=torch.channels_last)
    res = []
    for D, inp in ((ref, x), (s2d, space_to_depth(x, 1))):
        score, hidden = D.forward_hidden(inp)
        g = D.input_gradient([h > 0 for h in hidden], (64, 64), torch.full_like(score, 0.5))
        loss = (score ** 2).sum() + (g ** 2).sum()
        res.append((score, g, torch.autograd.grad(loss, list(D.parameters()))))
    (s0, g0, w0), (s1, g1, w1) = res
    assert torch.allclose(s1, s0, rtol=1e-12, atol=1e-14)
    assert g1.shape == g0.shape == x.shape and torch.allclose(g1, g0, rtol=1e-12, atol=1e-14)
    for a, b in zip(w1, w0):
        assert b.abs().max() > 0 and torch.allclose(a, b, rtol=1e-10, atol=1e-13)


@pytest.mark.parametrize("axes", [0, 2, (0, 1, 2)])
@pytest.mark.parametrize("pad", [None, 0, 1])
def test_slice_copies_and_their_gradient(axes, pad):
    # the channels-last copies (plain or space-to-depth) against the published permute + cat,
    # and their backward pass against autograd's on that reference
    torch.manual_seed(1)
    vol = torch.rand(2, 3, 8, 8, 8, dtype=torch.float64).contiguous(memory_format=torch.channels_last_3d)
    ref_in = vol.detach().clone().requires_grad_(True)
    ref = volume_slices(ref_in, axes)
    if pad is not None:
        ref = space_to_depth(ref, pad)
    vin = vol.detach().clone().requires_grad_(True)
    out = volume_slices(vin, axes, channels_last=True, s2d_pad=pad)
    assert out.shape == ref.shape and torch.equal(out, ref)
    weights = torch.randn_like(ref)
    (g_ref,) = torch.autograd.grad((ref * weights).sum(), ref_in)
    (g,) = torch.autograd.grad((out * weights).sum(), vin)
    assert torch.allclose(g, g_ref, rtol=1e-12, atol=1e-13)
    assert g.is_contiguous(memory_format=torch.channels_last_3d)


@pytest.mark.parametrize("kind", ["grayscale", "colour", "anisotropic", "joint"])
def test_space_to_depth_trains_every_image_type_alike(shared_data, tmp_path, kind):
    # the CUDA default (space-to-depth critic input) on the CPU, against the published first layer:
    # one channel (4 after the rearrangement), three (12), three critics, and the joint update
    from dataclasses import replace

    import numpy as np
    from PIL import Image

    from microlib_gui.core.slicegan.data import load_training_images
    from microlib_gui.core.slicegan.train import Trainer

    lib = shared_data / "microlib"
    if kind == "colour":
        rgb = (np.random.default_rng(0).random((48, 50, 3)) * 255).astype(np.uint8)
        Image.fromarray(rgb).save(tmp_path / "c.png")
        paths = [tmp_path / "c.png"]
    elif kind == "anisotropic":
        paths = [lib / f"micro{n}.png" for n in ("001", "006", "010")]
    else:
        paths = [lib / ("micro016.png" if kind == "grayscale" else "micro001.png")]
    imgs = load_training_images([str(p) for p in paths], "auto", min_side=32)
    preset = replace(get_preset("tiny"), critic_axes="joint" if kind == "joint" else "sequential")
    nets = []
    for s2d in (False, True):
        torch.manual_seed(0)
        t = Trainer(preset, imgs, torch.device("cpu"), s2d=s2d)
        assert all(D.s2d_input is s2d for D in t.Ds) and len(t.Ds) == (3 if kind == "anisotropic" else 1)

        def flat():
            return torch.cat([p.detach().double().flatten() for D in t.Ds for p in D.parameters()]
                             + [p.detach().double().flatten() for p in t.G.parameters()])

        start = flat()
        t.step()
        nets.append((start, flat(), t.take_stats()))
    (s0, a, st0), (s1, b, st1) = nets
    assert torch.equal(s0, s1) and all(np.isfinite(v) for v in st1.values())
    assert (a - b).norm() < 0.03 * (a - s0).norm()  # the same update up to float32 rounding
