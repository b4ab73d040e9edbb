"""Generation: tiled equals one pass, periodic volumes tile, streamed files, bad input."""

from __future__ import annotations

import os

import numpy as np
import pytest
import tifffile
import torch

from microlib_gui.core.slicegan import SliceGANError
from microlib_gui.core.slicegan.generate import Plan, generate, generate_to_file, load_model, parse_periodic
from microlib_gui.core.slicegan.nets import Generator
from microlib_gui.core.slicegan.presets import get_preset


@pytest.fixture(scope="module")
def G(shared_data):
    g, _ = load_model(shared_data / "slicegan-compat" / "tiny_Gen.pt")
    return g


def _probs(G, z):
    with torch.no_grad():
        return G(torch.from_numpy(z)).numpy()[0]


def test_tiled_equals_one_pass(G):
    z = torch.randn(1, 8, 6, 5, 4, generator=torch.Generator().manual_seed(5)).numpy()
    one = generate(G, latent=z, device="cpu")
    assert one.shape == (128, 96, 64)
    # blocks of at most 32^3 voxels: 4*3*2 tiles from overlapping latent windows
    tiled = generate(G, latent=z, device="cpu", max_block_voxels=32 ** 3)
    assert np.array_equal(one, tiled)
    # and the labels are the argmax of the one-pass probabilities
    assert np.array_equal(one, np.argmax(_probs(G, z), 0).astype(np.uint8))
    assert 0.05 < one.mean() < 0.95


def test_sizes_crop_and_seed(G):
    a = generate(G, size=(40, 33, 70), seed=7, device="cpu")
    b = generate(G, size=(40, 33, 70), seed=7, device="cpu", max_block_voxels=20 ** 3)
    c = generate(G, size=(40, 33, 70), seed=8, device="cpu")
    assert a.shape == (40, 33, 70) and np.array_equal(a, b) and not np.array_equal(a, c)


def test_periodic_volume_is_one_period(G):
    z = torch.randn(1, 8, 3, 3, 3, generator=torch.Generator().manual_seed(1)).numpy()
    per = (True, False, True)
    one = generate(G, latent=z, periodic=per, device="cpu")
    assert one.shape == (96, 32, 96)
    # two periods of the latent give two copies of the volume, so it tiles seamlessly
    zz = np.concatenate([np.concatenate([z, z], 2)] * 2, 4)
    two = generate(G, latent=zz, periodic=per, device="cpu")
    assert np.array_equal(two, np.tile(one, (2, 1, 2)))
    # a non-periodic axis does not tile that way
    assert not np.array_equal(generate(G, latent=np.concatenate([z, z], 3), periodic=per, device="cpu")[:, :32],
                              generate(G, latent=np.concatenate([z, z], 3), periodic=per, device="cpu")[:, 32:64])
    with pytest.raises(SliceGANError, match="multiple of 32"):
        Plan(G, size=100, periodic=per)


def test_streamed_tiff_and_zarr_equal_memory(G, tmp_path):
    ref = generate(G, size=(70, 64, 50), seed=3, periodic=(False, True, False), device="cpu")
    r = generate_to_file(G, tmp_path / "v.tif", size=(70, 64, 50), seed=3, periodic=(False, True, False),
                         device="cpu", max_block_voxels=32 ** 3)
    assert r["shape"] == [70, 64, 50]
    with tifffile.TiffFile(tmp_path / "v.tif") as tf:
        assert tf.is_bigtiff
        vol = tf.asarray()
    assert vol.dtype == np.uint8 and np.array_equal(vol, ref)
    import zarr

    generate_to_file(G, tmp_path / "v.zarr", size=(70, 64, 50), seed=3, periodic=(False, True, False),
                     device="cpu", max_block_voxels=32 ** 3)
    assert np.array_equal(zarr.open_array(str(tmp_path / "v.zarr"), mode="r")[:], ref)
    assert not list(tmp_path.glob(".tmp-*"))


def test_bad_generation_input(G, tmp_path):
    with pytest.raises(SliceGANError, match="shape"):
        generate(G, latent=np.zeros((1, 3, 4, 4, 4), np.float32), device="cpu")
    with pytest.raises(SliceGANError, match=".tif"):
        generate_to_file(G, tmp_path / "v.png", size=32, device="cpu")
    with pytest.raises(SliceGANError, match="axes"):
        parse_periodic("x,w")
    assert parse_periodic("z, x") == (True, False, True)
    with pytest.raises(SliceGANError):
        load_model(tmp_path / "nothing_Gen.pt")
    with pytest.raises(SliceGANError, match="no generator"):
        load_model(tmp_path)


def test_cli_generate_published_file_with_latent(shared_data, tmp_path, capsys):
    from microlib_gui.cli import main

    compat = shared_data / "slicegan-compat"
    out = tmp_path / "vol.tif"
    code = main(["generate", str(compat / "tiny_Gen.pt"), "--latent", str(compat / "tiny_noise.npy"),
                 "--out", str(out), "--device", "cpu", "--precision", "fp32"])
    assert code == 0, capsys.readouterr().err
    vol = tifffile.imread(out)
    expected = np.load(compat / "tiny_expected.npy").reshape(vol.shape)
    assert vol.dtype == np.uint8 and vol.shape == (96, 96, 96)
    assert np.array_equal(vol[np.abs(expected - 0.5) > 1e-4], (expected > 0.5)[np.abs(expected - 0.5) > 1e-4])


@pytest.mark.parametrize("preset", ["tiny", "microlib"])
@pytest.mark.parametrize("channels_last", [False, True])
def test_subpixel_path_equals_transposed_convolutions(preset, channels_last):
    # Generation rewrites each ConvTranspose3d(k=4, s=2) as 8 small convolutions + interleave,
    # with eval-mode batch norm folded in; in float64 it must equal the published network.
    from microlib_gui.core.slicegan.subpixel import SubpixelGenerator

    torch.manual_seed(0)
    G = Generator(get_preset(preset).net_params(3)).double()
    for bn in G.bns:  # trained-looking statistics, so the folding is really exercised
        bn.running_mean.normal_()
        bn.running_var.uniform_(0.5, 2.0)
        bn.weight.data.normal_()
        bn.bias.data.normal_()
    G.eval()
    z = torch.randn(1, G.params.nz, 5, 4, 6, dtype=torch.float64)
    with torch.no_grad():
        ref = G.logits(z)
    out = SubpixelGenerator(G, torch.float64, channels_last).logits(z)
    assert out.shape == ref.shape
    assert torch.allclose(out, ref, atol=1e-10, rtol=0)


@pytest.mark.parametrize("gp", [(2, 2, 2, 3), (0, 1, 2, 3), (3, 1, 0, 2)])
@pytest.mark.parametrize("channels_last", [False, True])
def test_subpixel_training_path_has_the_same_outputs_and_gradients(gp, channels_last):
    # Training runs the generator's transposed convolutions as sub-pixel convolutions with
    # the kernel rearranged on each call: in train mode (batch statistics) the outputs, the
    # weight gradients and the running statistics must equal the published layers'.
    import copy

    from microlib_gui.core.slicegan.nets import NetParams

    p = get_preset("tiny").net_params(3)
    params = NetParams(**{**p.__dict__, "gp": gp})
    torch.manual_seed(1)
    ref = Generator(params).double().train()
    sub = copy.deepcopy(ref)
    sub.subpixel = True
    fmt = torch.channels_last_3d if channels_last else torch.contiguous_format
    ref.to(memory_format=fmt)
    sub.to(memory_format=fmt)
    z = torch.randn(2, params.nz, 4, 5, 3, dtype=torch.float64).contiguous(memory_format=fmt)
    outs = [g(z) for g in (ref, sub)]
    w = torch.randn(outs[0].shape, dtype=torch.float64)
    for out in outs:
        (out * w).sum().backward()
    assert outs[1].shape == outs[0].shape
    assert torch.allclose(outs[1], outs[0], atol=1e-10, rtol=0)
    for a, b in zip(ref.parameters(), sub.parameters()):
        if a.grad is None:  # the last layer's batch norm is kept but unused
            assert b.grad is None
        else:
            assert torch.allclose(b.grad, a.grad, atol=1e-9, rtol=1e-9)
    for a, b in zip(ref.buffers(), sub.buffers()):
        assert torch.allclose(b.double(), a.double(), atol=1e-12)


@pytest.mark.parametrize("subpixel", [False, True])
def test_grouped_batch_statistics_equal_separate_calls(subpixel):
    # The critic steps' fakes come from one generator call with batch statistics per group;
    # that must equal one call per group, outputs and running statistics alike. The grouped
    # call runs channels-last (batch norm on a 4D view), the reference on plain tensors
    # (nn.BatchNorm3d itself), so the 4D-view batch norm is checked as well.
    import copy

    torch.manual_seed(2)
    ref = Generator(get_preset("tiny").net_params(2)).double().train()
    ref.subpixel = subpixel
    grp = copy.deepcopy(ref).to(memory_format=torch.channels_last_3d)
    z = torch.randn(6, ref.params.nz, 4, 4, 4, dtype=torch.float64)
    zc = z.contiguous(memory_format=torch.channels_last_3d)
    with torch.no_grad():
        want = torch.cat([ref(part) for part in z.chunk(3)])
        got = grp(zc, groups=3)
        h = grp._conv(0, zc)  # what the first batch norm gets
    if subpixel:  # channels-last (so the 4D view is used); torch's float64 CPU transposed conv is not
        assert h.is_contiguous(memory_format=torch.channels_last_3d) and not h.is_contiguous()
    assert torch.allclose(got, want, atol=1e-12, rtol=0)
    for a, b in zip(ref.buffers(), grp.buffers()):
        assert torch.allclose(b.double(), a.double(), atol=1e-12)
    assert int(grp.bns[0].num_batches_tracked) == 3
    with pytest.raises(ValueError, match="without gradients"):
        grp(z, groups=3)


def test_generation_uses_subpixel_path_and_agrees_with_reference(G):
    from microlib_gui.core.slicegan.generate import Runner

    assert Runner(G, torch.device("cpu")).fast is not None
    z = np.random.default_rng(2).standard_normal((1, G.params.nz, 4, 5, 6)).astype(np.float32)
    fast = generate(G, latent=z, device="cpu")
    os.environ["MICROLIB_GEN_SUBPIXEL"] = "0"
    try:
        plain = generate(G, latent=z, device="cpu")
    finally:
        del os.environ["MICROLIB_GEN_SUBPIXEL"]
    # float32 rounding may flip a voxel whose two phase logits are within rounding of each other
    assert (fast != plain).mean() < 1e-3


def test_subpixel_weights_reused_until_the_generator_changes():
    from microlib_gui.core.slicegan.subpixel import for_generator

    G = Generator(get_preset("tiny").net_params(2)).eval()
    a = for_generator(G, torch.float32, False)
    assert for_generator(G, torch.float32, False) is a
    assert for_generator(G, torch.float32, True) is not a  # another layout
    with torch.no_grad():
        G.bns[0].running_mean.add_(1.0)  # e.g. a checkpoint loaded into the same module
    b = for_generator(G, torch.float32, False)
    assert b is not a
    z = torch.randn(1, G.params.nz, 4, 4, 4)
    with torch.no_grad():
        assert torch.allclose(b.logits(z), G.logits(z), atol=1e-4)


@pytest.mark.parametrize("nc", [2, 3])
@pytest.mark.parametrize("channels_last", [False, True])
def test_subpixel_labels_are_the_argmax_of_the_logits(nc, channels_last):
    # labels are taken per parity before the interleave (two phases: the sign of one difference
    # convolution); they must be the argmax of the published network's logits
    from microlib_gui.core.slicegan.subpixel import SubpixelGenerator

    torch.manual_seed(1)
    G = Generator(get_preset("tiny").net_params(nc)).double().eval()
    z = torch.randn(2, G.params.nz, 5, 4, 6, dtype=torch.float64)
    with torch.no_grad():
        ref = G.logits(z)
    lab = SubpixelGenerator(G, torch.float64, channels_last).labels(z)
    assert lab.dtype == torch.uint8 and lab.shape == (2, *ref.shape[2:])
    top2 = ref.topk(2, dim=1).values
    clear = (top2[:, 0] - top2[:, 1]) > 1e-9
    assert clear.float().mean() > 0.99
    assert torch.equal(lab[clear], ref.argmax(1).to(torch.uint8)[clear])
    assert len(torch.unique(lab)) == nc
