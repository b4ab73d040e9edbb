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


def test_resize_generator_file_round_trip_and_refusals(tmp_path):
    G = _resize_generator().float()
    path = save_generator(tmp_path / "rz_Gen.pt", G, {"phases": [0, 255]})
    meta = json.loads((tmp_path / "rz_meta.json").read_text())
    assert meta["g_layers"] == ["resize"] * 4
    G2, _ = load_generator(path)
    assert G2.params.g_layers == ("resize",) * 4
    z = torch.randn(1, 8, 4, 4, 4, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        assert torch.equal(G(z), G2(z))
    # without the meta file the 3³ weights do not fit the published layers: a clear refusal
    bad = dict(meta)
    del bad["g_layers"]
    (tmp_path / "rz_meta.json").write_text(json.dumps(bad))
    with pytest.raises(SliceGANError, match="does not match its _params.data.*needs its rz_meta.json beside it"):
        load_generator(path)
    for kinds, why in ((["resize"] * 3, "each of the 4"), (["resize"] * 3 + ["blur"], "each of the 4"),
                       ("resize", "a list of layer kinds")):
        (tmp_path / "rz_meta.json").write_text(json.dumps({**bad, "g_layers": kinds}))
        with pytest.raises(SliceGANError, match=why):
            load_generator(path)


def test_training_with_resize_layers_saves_resumes_and_tiles(tmp_path, shared_data):
    img = str(shared_data / "microlib" / "micro001.png")
    base = dict(images=[img], preset="tiny", device="cpu", seed=1, log_every=1, checkpoint_every=1)
    run_inline(TARGET, {**base, "out": str(tmp_path / "r"), "iters": 2, "g_layers": "resize"})
    assert read_run(tmp_path / "r")["preset"]["g_layers"] == ["resize"] * 4
    # resume keeps the run's own layers (and may not be told others)
    run_inline(TARGET, {**base, "out": str(tmp_path / "r"), "iters": 3, "resume": True})
    G, _ = load_model(tmp_path / "r")
    assert G.params.g_layers == ("resize",) * 4
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
    assert json.loads((tmp_path / "r" / "slicegan_meta.json").read_text())["g_layers"] == ["resize"] * 4
    assert main(["train", img, "--out", str(tmp_path / "t"), *args]) == 0
    assert "g_layers" not in json.loads((tmp_path / "t" / "slicegan_meta.json").read_text())  # published files
    with pytest.raises(SystemExit) as exc:  # argparse's own usage error, exit code 2
        main(["train", img, "--out", str(tmp_path / "x"), "--g-layers", "blur", *args])
    assert exc.value.code == 2 and "blur" in capsys.readouterr().err
    assert main(["generate", str(tmp_path / "r"), "--size", "32", "--out", str(tmp_path / "v.tif"),
                 "--device", "cpu"]) == 0
