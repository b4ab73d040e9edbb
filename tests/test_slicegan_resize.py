"""Resize layers (nearest-neighbour upsampling + a 3³ convolution) in the generator: the
equivalent transposed kernel, the fast paths, training, the file format, tiling."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from microlib_gui.core.jobs import run_inline
from microlib_gui.core.slicegan import SliceGANError
from microlib_gui.core.slicegan.fileformat import load_generator, save_generator
from microlib_gui.core.slicegan.generate import generate, load_model
from microlib_gui.core.slicegan.nets import Generator, resize_kernel
from microlib_gui.core.slicegan.presets import get_preset
from microlib_gui.core.slicegan.subpixel import SubpixelGenerator
from microlib_gui.core.slicegan.train import read_run

TARGET = "microlib_gui.core.slicegan.train:train_job"
pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.mark.parametrize("pad", [2, 3])
def test_resize_kernel_is_upsampling_then_convolution(pad):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 3, 5, 6, 7, generator=g, dtype=torch.float64)
    w = torch.randn(3, 4, 3, 3, 3, generator=g, dtype=torch.float64)  # (Cin, Cout, 3, 3, 3)
    ref = F.conv3d(F.interpolate(x, scale_factor=2, mode="nearest"), w.transpose(0, 1))
    if pad == 3:  # one more voxel cropped on each side
        ref = ref[:, :, 1:-1, 1:-1, 1:-1]
    got = F.conv_transpose3d(x, resize_kernel(w), stride=2, padding=pad)
    assert got.shape == ref.shape
    assert torch.allclose(got, ref, atol=1e-12)
    # an unconstrained kernel-4 transposed convolution is not of that form
    w4 = torch.randn(3, 4, 4, 4, 4, generator=g, dtype=torch.float64)
    assert not torch.allclose(F.conv_transpose3d(x, w4, stride=2, padding=pad), ref, atol=1e-3)


def _resize_generator(kinds=("resize",) * 4):
    p = get_preset("tiny", g_layers=tuple(kinds)).net_params(2)
    G = Generator(p).double()
    torch.manual_seed(3)
    for bn in G.bns:
        torch.nn.init.normal_(bn.running_mean)
        torch.nn.init.uniform_(bn.running_var, 0.5, 2.0)
    return G.eval()


def test_resize_generator_fast_paths_and_gradients():
    G = _resize_generator(("transpose", "resize", "resize", "resize"))
    assert tuple(G.convs[1].weight.shape[2:]) == (3, 3, 3) and tuple(G.convs[0].weight.shape[2:]) == (4, 4, 4)
    z = torch.randn(2, 8, 4, 4, 4, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    plain = G.logits(z)
    assert plain.shape == (2, 2, 32, 32, 32)
    G.subpixel = True
    assert torch.allclose(G.logits(z), plain, atol=1e-10)
    assert torch.allclose(SubpixelGenerator(G, torch.float64).logits(z), plain, atol=1e-10)
    # the 3³ weights are what training updates
    G.train()
    G(z).square().sum().backward()
    assert G.convs[2].weight.grad is not None and G.convs[2].weight.grad.abs().sum() > 0


def test_resize_generator_is_saved_as_the_published_network_it_equals(tmp_path):
    from microlib_gui.core.slicegan.fileformat import read_params

    G = _resize_generator().float()
    path = save_generator(tmp_path / "rz_Gen.pt", G, {"phases": [0, 255]})
    meta = json.loads((tmp_path / "rz_meta.json").read_text())
    assert meta["trained_layers"] == ["resize"] * 4 and "g_layers" not in meta
    # published files: the eight lists, 4³ kernels — what the published code builds and loads
    sd = torch.load(path, weights_only=True)
    assert all(tuple(sd[f"convs.{i}.weight"].shape[2:]) == (4, 4, 4) for i in range(4))
    assert read_params(tmp_path / "rz_params.data").to_list() == G.params.to_list()
    z = torch.randn(1, 8, 4, 4, 4, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        want = G(z)
        (tmp_path / "rz_meta.json").unlink()  # not needed to load it
        G2, _ = load_generator(path)
        assert G2.params.g_layers == ()
        assert torch.equal(G2(z), want)  # the same float32 kernel the resize layers run


def test_earlier_resize_files_still_load_and_refusals(tmp_path):
    """Files of the version before kept the 3³ taps and named the layers in the meta file."""
    from microlib_gui.core.slicegan.fileformat import write_params

    G = _resize_generator().float()
    torch.save({k: v.float() for k, v in G.state_dict().items()}, tmp_path / "rz_Gen.pt")
    write_params(tmp_path / "rz_params.data", G.params)
    meta = {"imtype": "nphase", "g_layers": ["resize"] * 4, "phases": [0, 255]}
    (tmp_path / "rz_meta.json").write_text(json.dumps(meta))
    G2, _ = load_generator(tmp_path / "rz_Gen.pt")
    assert G2.params.g_layers == ("resize",) * 4
    z = torch.randn(1, 8, 4, 4, 4, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        assert torch.equal(G(z), G2(z))
    # without the layer kinds the 3³ weights do not fit the published layers: a clear refusal
    bad = dict(meta)
    del bad["g_layers"]
    (tmp_path / "rz_meta.json").write_text(json.dumps(bad))
    with pytest.raises(SliceGANError, match="does not match its _params.data.*needs its rz_meta.json beside it"):
        load_generator(tmp_path / "rz_Gen.pt")
    for kinds, why in ((["resize"] * 3, "each of the 4"), (["resize"] * 3 + ["blur"], "each of the 4"),
                       ("resize", "a list of layer kinds")):
        (tmp_path / "rz_meta.json").write_text(json.dumps({**bad, "g_layers": kinds}))
        with pytest.raises(SliceGANError, match=why):
            load_generator(tmp_path / "rz_Gen.pt")


def test_training_with_resize_layers_saves_resumes_and_tiles(tmp_path, shared_data):
    img = str(shared_data / "microlib" / "micro001.png")
    base = dict(images=[img], preset="tiny", device="cpu", seed=1, log_every=1, checkpoint_every=1)
    run_inline(TARGET, {**base, "out": str(tmp_path / "r"), "iters": 2, "g_layers": "resize"})
    assert read_run(tmp_path / "r")["preset"]["g_layers"] == ["resize"] * 4
    # resume keeps the run's own layers (and may not be told others)
    run_inline(TARGET, {**base, "out": str(tmp_path / "r"), "iters": 3, "resume": True})
    G, _ = load_model(tmp_path / "r")
    assert G.params.g_layers == ()  # saved as the published network it equals
    z = torch.randn(1, 8, 6, 5, 4, generator=torch.Generator().manual_seed(5)).numpy()
    one = generate(G, latent=z, device="cpu")
    assert one.shape == (64, 48, 32)
    assert np.array_equal(one, generate(G, latent=z, device="cpu", max_block_voxels=24 ** 3))
    with pytest.raises(SliceGANError, match="g_layers"):
        run_inline(TARGET, {**base, "out": str(tmp_path / "x"), "iters": 1, "g_layers": ["resize", "blur"]})


def test_cli_g_layers_option(tmp_path, shared_data, capsys):
    from microlib_gui.cli import main

    img = str(shared_data / "microlib" / "micro001.png")
    args = ["--preset", "tiny", "--iters", "1", "--device", "cpu"]
    assert main(["train", img, "--out", str(tmp_path / "r"), "--g-layers", "resize", *args]) == 0
    assert json.loads((tmp_path / "r" / "slicegan_meta.json").read_text())["trained_layers"] == ["resize"] * 4
    assert read_run(tmp_path / "r")["preset"]["g_layers"] == ["resize"] * 4
    assert main(["train", img, "--out", str(tmp_path / "t"), "--g-layers", "transpose", *args]) == 0
    assert "trained_layers" not in json.loads((tmp_path / "t" / "slicegan_meta.json").read_text())
    with pytest.raises(SystemExit) as exc:  # argparse's own usage error, exit code 2
        main(["train", img, "--out", str(tmp_path / "x"), "--g-layers", "blur", *args])
    assert exc.value.code == 2 and "blur" in capsys.readouterr().err
    assert main(["generate", str(tmp_path / "r"), "--size", "32", "--out", str(tmp_path / "v.tif"),
                 "--device", "cpu"]) == 0
