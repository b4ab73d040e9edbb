"""Published SliceGAN file format: exact reproduction, round trip, and refusal of malicious files."""

from __future__ import annotations

import json
import pickle
import subprocess
import sys

import numpy as np
import pytest
import torch

from microlib_gui.core.slicegan import SliceGANError
from microlib_gui.core.slicegan.fileformat import load_generator, read_params, save_generator
from microlib_gui.core.slicegan.generate import generate
from microlib_gui.core.slicegan.nets import Generator
from microlib_gui.core.slicegan.presets import get_preset


@pytest.fixture
def compat(shared_data):
    return shared_data / "slicegan-compat"


def test_published_generator_reproduced(compat):
    fx = json.loads((compat / "tiny_fixture.json").read_text())
    G, meta = load_generator(compat / "tiny_Gen.pt")
    assert meta["imtype"] == "nphase" and meta["nz"] == fx["nz"]
    z = np.load(compat / "tiny_noise.npy")
    expected = np.load(compat / "tiny_expected.npy").astype(np.float32)
    with torch.no_grad():
        out = G(torch.from_numpy(z).float())
    assert list(out.shape) == fx["output_shape"]
    err = np.abs(out[0, 1].numpy() - expected.reshape(out.shape[2:])).max()
    assert err <= 1e-5
    # the labels generator path (argmax of logits) agrees with the probabilities
    labels = generate(G, latent=z, device="cpu")
    assert labels.dtype == np.uint8
    ref = (expected.reshape(labels.shape) > 0.5).astype(np.uint8)
    assert (labels == ref).mean() > 0.999


def test_round_trip_in_published_layout(tmp_path, compat):
    params = get_preset("tiny").net_params(2)
    G = Generator(params, "nphase")
    torch.nn.init.normal_(G.bns[0].running_mean)
    path = save_generator(tmp_path / "mine_Gen.pt", G, {"phases": [0, 255]})
    sd = torch.load(path, weights_only=True)
    assert set(sd) == set(G.state_dict()) and "convs.0.weight" in sd and "bns.0.running_var" in sd
    # the params file is a plain pickled list of 8 lists of ints, like the published one
    raw = (tmp_path / "mine_params.data").read_bytes()
    assert read_params(tmp_path / "mine_params.data") == params
    assert json.loads((tmp_path / "mine_meta.json").read_text())["phases"] == [0, 255]
    G2, meta = load_generator(path)
    assert meta["phases"] == [0, 255]
    for k, v in G.state_dict().items():
        assert torch.equal(v, G2.state_dict()[k]), k
    assert raw.startswith(b"\x80")
    # the published params read back unchanged too
    pub = read_params(compat / "tiny_params.data")
    assert pub.gf == (8, 32, 16, 8, 8, 2) and pub.gp == (2, 2, 2, 2, 3)


class _Payload:
    """Unpickling this calls open(target, "w"): it creates a file."""

    def __init__(self, target):
        self.target = str(target)

    def __reduce__(self):
        return (open, (self.target, "w"))


def _proves_payload(blob_path, target):
    """The crafted file really creates ``target`` under a plain unpickler (in a child process)."""
    code = ("import pickle,sys; pickle.loads(open(sys.argv[1],'rb').read())" if blob_path.suffix == ".data"
            else "import torch,sys; torch.load(sys.argv[1], weights_only=False)")
    subprocess.run([sys.executable, "-c", code, str(blob_path)], check=False, capture_output=True, timeout=120)
    return target.exists()


def test_malicious_params_file_refused(tmp_path, compat):
    G_path = tmp_path / "evil_Gen.pt"
    G_path.write_bytes((compat / "tiny_Gen.pt").read_bytes())
    params = tmp_path / "evil_params.data"
    control = tmp_path / "control.txt"
    params.write_bytes(pickle.dumps(_Payload(control)))
    assert _proves_payload(params, control)
    target = tmp_path / "pwned.txt"
    params.write_bytes(pickle.dumps([[4] * 5, _Payload(target)]))
    with pytest.raises(SliceGANError, match="refused"):
        read_params(params)
    with pytest.raises(SliceGANError):
        load_generator(G_path)
    assert not target.exists()


def test_malicious_generator_file_refused(tmp_path, compat):
    control = tmp_path / "control.txt"
    ctl = tmp_path / "ctl_Gen.pt"
    torch.save({"convs.0.weight": torch.zeros(1), "x": _Payload(control)}, ctl)
    assert _proves_payload(ctl, control)
    target = tmp_path / "pwned.txt"
    gen = tmp_path / "evil_Gen.pt"
    torch.save({"convs.0.weight": torch.zeros(1), "x": _Payload(target)}, gen)
    (tmp_path / "evil_params.data").write_bytes((compat / "tiny_params.data").read_bytes())
    with pytest.raises(SliceGANError, match="refused or unreadable"):
        load_generator(gen)
    assert not target.exists()


@pytest.mark.parametrize("obj, why", [
    ({"a": 1}, "8 lists"),
    ([[4]] * 7, "8 lists"),
    ([["4"]] * 8, "8 lists"),
    ([[4.0]] * 8, "8 lists"),
    ([[True]] * 8, "8 lists"),
])
def test_params_structure_checked(tmp_path, obj, why):
    p = tmp_path / "x_params.data"
    p.write_bytes(pickle.dumps(obj))
    with pytest.raises(SliceGANError, match=why):
        read_params(p)


def test_mismatched_weights_and_garbage(tmp_path, compat):
    (tmp_path / "m_params.data").write_bytes(pickle.dumps(get_preset("tiny").net_params(2).to_list()))
    (tmp_path / "m_Gen.pt").write_bytes((compat / "tiny_Gen.pt").read_bytes())
    with pytest.raises(SliceGANError, match="does not match"):
        load_generator(tmp_path / "m_Gen.pt")
    (tmp_path / "g_Gen.pt").write_bytes(b"not a zip file at all")
    (tmp_path / "g_params.data").write_bytes((compat / "tiny_params.data").read_bytes())
    with pytest.raises(SliceGANError):
        load_generator(tmp_path / "g_Gen.pt")
    (tmp_path / "t_params.data").write_bytes(b"\x80\x04garbage")
    with pytest.raises(SliceGANError, match="not a SliceGAN params file"):
        read_params(tmp_path / "t_params.data")
