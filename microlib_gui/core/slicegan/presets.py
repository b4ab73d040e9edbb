"""Network and training settings: ``microlib`` (the paper's, used for every entry), ``tiny``
(a small network for tests and CPU smoke runs) and ``check`` (the tiny network trained fast
enough to learn a simple structure on a CPU in minutes: the CI quality test's)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace

from . import SliceGANError
from .nets import NetParams, conv_flops, upsampling


@dataclass(frozen=True)
class Preset:
    name: str
    img_side: int            # side l of the training patches and of the critic's input
    nz: int                  # latent channels
    latent_side: int         # latent side during training (volume side = img_side)
    g_hidden: tuple[int, ...]  # generator channels between nz and nc
    gk: int
    gs: int
    gp: tuple[int, ...]
    d_hidden: tuple[int, ...]  # critic channels between nc and 1
    dk: int
    ds: int
    dp: tuple[int, ...]
    lr: float = 1e-4
    betas: tuple[float, float] = (0.0, 0.9)
    gp_lambda: float = 10.0
    critic_iters: int = 5
    batch_g: int = 32        # generator batch (volumes)
    batch_d: int = 8         # fake volumes per critic step
    batch_real: int = 32     # real patches per critic step (and slices in the gradient penalty)
    iters: int = 5000        # generator iterations
    checkpoint_every: int = 500
    log_every: int = 50
    ema: float = 0.0         # decay of an exponential moving average of the generator's weights (0: off)
    critic_axes: str = "sequential"  # isotropic: "sequential" (published: 3 updates), "joint" (1), "separate" (3 critics)
    augment: bool = False    # isotropic runs: real patches under random flips/transposes (dihedral group)
    # stopping when the statistics have converged (docs/slicegan.md, "Stopping when converged"):
    # every converge_every iterations a volume from a latent of side converge_latent (fixed seed)
    # is compared with the training image; the run stops at or after converge_min_iters once
    # converge_patience checks in a row have volume-fraction and surface-area errors within
    # converge_tol (relative) and a two-point-correlation error within converge_s2_tol (absolute)
    converge: bool = False
    converge_every: int = 250
    converge_min_iters: int = 1000
    converge_tol: float = 0.03
    converge_patience: int = 2
    converge_s2_tol: float = 0.02
    converge_latent: int = 6  # latent side of the check volume (tiny network: 64³ voxels)
    converge_plateau: int = 0  # also stop after this many checks in a row with no better one (0: off)
    converge_volumes: int = 1  # check volumes per check (fixed latents); errors of their mean figures
    g_layers: tuple[str, ...] = ()  # kind of each generator layer (nets.G_LAYER_KINDS); empty: all "transpose"

    @property
    def upsampling(self) -> str:
        """"resize" or "transpose": the generator layers, as the Train step offers them."""
        return upsampling(self.g_layers)

    def net_params(self, nc: int) -> NetParams:
        n_g, n_d = len(self.gp), len(self.dp)
        return NetParams(dk=(self.dk,) * n_d, ds=(self.ds,) * n_d, df=(nc, *self.d_hidden, 1), dp=self.dp,
                         gk=(self.gk,) * n_g, gs=(self.gs,) * n_g, gf=(self.nz, *self.g_hidden, nc), gp=self.gp,
                         g_layers=tuple(self.g_layers))

    def iteration_flops(self, nc: int, published: bool = False) -> float:
        """FLOPs of one generator iteration, counted from the layer shapes.

        Forward = 1 unit, a backward = 2 (input and weight gradients), the gradient
        penalty's forward + input gradient + its backward ≈ 6 units. ``published``:
        the published code also computes the critics' weight gradients in the
        generator step (3 units there instead of our 2).
        """
        params = self.net_params(nc)
        side = params.out_side(self.latent_side)

        def g(b):
            return conv_flops(params, self.latent_side, b, 0)[0]

        def d(n):
            return conv_flops(params, self.latent_side, 0, n)[1]

        br, bd, bg = self.batch_real, self.batch_d, self.batch_g
        critic = g(bd) + 3 * (3 * d(br + bd * side) + 6 * d(br))
        gen = 3 * g(bg) + 3 * (3 if published else 2) * d(bg * side)
        return self.critic_iters * critic + gen

    @classmethod
    def from_dict(cls, d: dict) -> "Preset":
        """Inverse of :meth:`to_dict` (a checkpoint's stored settings)."""
        try:
            return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in d.items()})
        except TypeError as exc:
            raise SliceGANError(f"stored settings do not fit this version ({exc})") from None

    def to_dict(self) -> dict:
        d = asdict(self)
        return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}


PRESETS = {
    "microlib": Preset("microlib", img_side=64, nz=16, latent_side=4, g_hidden=(512, 256, 128, 64), gk=4, gs=2,
                       gp=(2, 2, 2, 2, 3), d_hidden=(64, 128, 256, 512), dk=4, ds=2, dp=(1, 1, 1, 1, 0),
                       # the saved generator is the weights' moving average: on the H100 it had lower vf and
                       # surface-area errors than the plain generator of the same run on both images tried
                       ema=0.999,
                       # real patches under the square's 8 symmetries (isotropic runs): lower surface-area
                       # error on all five images compared on the H100 (docs/benchmarks.md)
                       augment=True,
                       # stop when converged (docs/slicegan.md, "Stopping when converged"; tuned on the GPU)
                       converge=True, converge_every=250, converge_min_iters=1000, converge_patience=2,
                       converge_tol=0.03, converge_s2_tol=0.02,
                       # the check volume 320³ (latent 12), the size volumes are validated at: a 96³ one
                       # disagreed with 320³ by up to 14 points of vf on the H200 (border voxels are a
                       # large share of a small volume); 0.1-0.3 s per check there
                       converge_latent=12,
                       # resize layers (nets.resize_kernel; saved as the published network they equal) and a
                       # plateau of 4 checks: over ten MicroLib images on the H200, 112 s to a generator
                       # (replayed from the recorded checks; 132 s with a plateau of 6) against 146 s for
                       # the transposed layers, mean errors vf 3.5 / SA 3.2 % against 3.0 / 4.0 %, worst
                       # image 8.3 % against 9.5 % (docs/benchmarks.md, "Resize layers in the MicroLib network")
                       converge_plateau=4, g_layers=("resize",) * 5),
    "tiny": Preset("tiny", img_side=32, nz=8, latent_side=4, g_hidden=(32, 16, 8), gk=4, gs=2, gp=(2, 2, 2, 3),
                   d_hidden=(8, 16, 32), dk=4, ds=2, dp=(1, 1, 1, 0), batch_g=4, batch_d=2, batch_real=8,
                   iters=100, checkpoint_every=10, log_every=5),
    # the tiny network at 10x the learning rate, 2 critic steps per generator step and a moving
    # average of the weights: on a thresholded Gaussian field (256 px, correlation ~2 px) each of
    # 13 runs (two machines) was within 7 % volume fraction and 12 % surface area after 300
    # iterations; at the tiny preset's 1e-4, 15 % surface area after 2000 (docs/slicegan.md)
    "check": Preset("check", img_side=32, nz=8, latent_side=4, g_hidden=(32, 16, 8), gk=4, gs=2, gp=(2, 2, 2, 3),
                    d_hidden=(8, 16, 32), dk=4, ds=2, dp=(1, 1, 1, 0), lr=1e-3, critic_iters=2, ema=0.99,
                    batch_g=4, batch_d=2, batch_real=8, iters=300, checkpoint_every=100, log_every=25),
    # for a laptop without a GPU: the check recipe on a 64 px field of view (five generator layers).
    # 1500 iterations on the 2-core development machine (2 threads, shared): 18-19 CPU minutes, so
    # about 9.5 minutes on an idle 2-core CPU (at most 12.3 by a near-idle timing). On micro001,
    # micro054, micro237 (128³, raw): vf 4.1 / 13.7 / 0.6 %, surface area 9.9 / 5.1 / 6.3 %; with
    # --match-vf vf 0.0 % and SA 5.7 / 1.4 / 6.5 %; stripe scores 1.8-2.1 (flag 1.5: mild regular
    # hatching in the fine texture); vf still swings between checkpoints (054: 2.7 % at 1000).
    # bench/draft_preset.py, docs/benchmarks.md "CPU draft preset (issue 21)".
    # Hence the convergence stop: a check every 100 iterations from 600 on (the network tiles
    # before), the best check's generator kept, a stop after 4 checks with no better one; with it
    # (bench/quality_study.py --preset draft --device cpu --size 128): vf 3.7 / 5.9 / 1.2 %, surface
    # area 6.7 / 7.9 / 5.4 % on micro001 / 054 / 237 (stopped at 1500 / 1100 / 1400; benchmarks.md)
    # but a regular hatching stayed (stripe scores 1.9-2.9). Hence resize layers (nearest-neighbour
    # upsampling + a 3³ convolution, nets.resize_kernel): 2 % more CPU time per iteration; on the
    # same three images, scored alike, vf 12.4 / 0.5 / 0.4 %, surface area 11.7 / 2.4 / 1.5 %,
    # stripe scores 1.12 / 2.13 / 1.40, all three stopped at 1000 (benchmarks.md, "Resize layers
    # in the draft"); micro001's large grains stay beyond this field of view
    "draft": Preset("draft", img_side=64, nz=8, latent_side=4, g_hidden=(64, 32, 16, 8), gk=4, gs=2,
                    gp=(2, 2, 2, 2, 3), d_hidden=(8, 16, 32, 64), dk=4, ds=2, dp=(1, 1, 1, 1, 0), lr=1e-3,
                    critic_iters=2, ema=0.99, batch_g=4, batch_d=2, batch_real=8, iters=1500,
                    checkpoint_every=100, log_every=25, converge=True, converge_every=100,
                    converge_min_iters=600, converge_plateau=4, g_layers=("resize",) * 5),
}

#: What each preset was measured to give, for the GUI (gui/steps/train.py) to show beside it.
#: ``draft``: the worst image of bench/draft_preset.py's three (docs/benchmarks.md, "CPU draft
#: preset (issue 21)"); ``cpu_minutes``: training on an idle 2-core CPU (2 torch threads).
#: ``microlib``: the GPU figures (docs/benchmarks.md). ``for_tests``: not for real entries.
PRESET_NOTES = {
    # resize layers with the convergence stop (micro001 / 054 / 237 at 128³, seed 1): vf 12.4 / 0.5 /
    # 0.4 %, surface area 11.7 / 2.4 / 1.5 %; matched phase fractions: vf 0 %, surface area 22.7 /
    # 2.5 / 1.6 %; the 1500-iteration cap at 2 % over the transposed layers' 9.5 min
    # micro365 and micro442 later (seed 1): vf 5.4 / 3.1 %, SA 1.7 / 5.9 %, matched SA 2.4 / 6.0 %,
    # stripe scores 1.14 / 1.02 ("The draft on two more images")
    "draft": {"cpu_minutes": 10, "vf_error_max": 0.124, "sa_error_max": 0.117,
              "images": ["micro001", "micro054", "micro237", "micro365", "micro442"],
              # with generate --match-vf (phase fractions fitted on the volume), and the stripe score
              "vf_error_max_matched": 0.0, "sa_error_max_matched": 0.227, "stripe_score_max": 2.13},
    # ten MicroLib images with the convergence stop, 320³ volumes at seed 1 (docs/benchmarks.md,
    # "Resize layers in the MicroLib network"; the time replayed with the 4-check plateau)
    "microlib": {"gpu_seconds": 112, "gpu": "H200", "vf_error_mean": 0.035, "sa_error_mean": 0.032, "n_images": 10},
    "tiny": {"for_tests": True},
    "check": {"for_tests": True},
}


def get_preset(name: str, **overrides) -> Preset:
    """The named preset, with ``None``-free overrides applied (e.g. ``iters=200``)."""
    try:
        p = PRESETS[name]
    except KeyError:
        raise SliceGANError(f"unknown preset {name!r} (choose from {', '.join(PRESETS)})") from None
    return replace(p, **{k: v for k, v in overrides.items() if v is not None})
