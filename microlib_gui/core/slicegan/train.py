"""SliceGAN training as a job function: ``train(ctx, images=[...], out=RUN, ...)``.

Run it inline (CLI), or in its own process from the GUI::

    ProcessJob("microlib_gui.core.slicegan.train:train_job", {"images": [...], "out": "RUN"})

The run folder ``RUN`` holds ``run.json`` (settings and state), ``checkpoint.pt``
(everything needed to continue, written atomically every ``checkpoint_every``
iterations, on cancel and at the end) and the generator in the published format
(``slicegan_Gen.pt``, ``slicegan_params.data``, ``slicegan_meta.json``).

One generator iteration is ``critic_iters`` critic steps then one generator step,
as in the published code. On CUDA the work stays on the device: patches are cut
from the image tensor there, losses are kept as device tensors and read only
when progress is reported, and (``graphs``) a whole iteration is captured once
as a CUDA graph and replayed.
"""

from __future__ import annotations

import copy
import json
import math
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from ..atomic import atomic_path, atomic_write_json
from ..jobs import JobCancelled
from . import SliceGANError
from .convergence import CHECK_SEED, Figures, Tracker
from .data import PatchSampler, TrainingImage, load_training_images
from .fileformat import save_generator
from .nets import (Critic, Generator, depth_to_space, s2d_buffer, s2d_parts, s2d_supported, space_to_depth,
                   subpixel_supported)
from .presets import Preset, get_preset

CHECKPOINT = "checkpoint.pt"
RUN_JSON = "run.json"
GEN_NAME = "slicegan_Gen.pt"
CRITIC_AXES = ("sequential", "joint", "separate")

# (slice dim, in-plane dims) of a (B, C, X, Y, Z) volume for the x, y and z critics,
# in the published order so anisotropic images meet the same axes.
AXES = ((2, 3, 4), (3, 2, 4), (4, 2, 3))


def _slice_copies(vol: torch.Tensor, out: torch.Tensor, axes, pad):
    """(part of ``out``, part of ``vol``) pairs that :func:`volume_slices` copies: for each axis,
    one pair, or with ``pad`` (space-to-depth; ``out`` is then (N, I, J, 2, 2, C)) the pairs of
    :func:`~.nets.s2d_parts`."""
    B = vol.shape[0]
    off = 0
    for k in axes:
        d, a, b = AXES[k]
        L = vol.shape[d]
        src = vol.permute(0, d, a, b, 1)  # (B, L, A, Bb, C)
        dst = out[off:off + B * L].unflatten(0, (B, L))
        off += B * L
        if pad is None:
            yield dst, src
        else:
            yield from s2d_parts(dst, src, pad)


class _VolumeSlices(torch.autograd.Function):
    """Channels-last :func:`volume_slices`: strided copies into one buffer, and in the backward
    pass the gradient gathered back the same way (autograd's own copy-into-view backward would
    clone the whole buffer once per copy)."""

    @staticmethod
    def forward(ctx, vol, axes, pad):
        B, c = vol.shape[:2]
        _, a, b = AXES[axes[0]]
        size = (vol.shape[a], vol.shape[b])
        n = sum(B * vol.shape[AXES[k][0]] for k in axes)
        out = vol.new_empty(n, *size, c) if pad is None else s2d_buffer(vol, n, size, c, pad)
        for dst, src in _slice_copies(vol, out, axes, pad):
            dst.copy_(src)
        ctx.axes, ctx.pad = axes, pad
        ctx.vol_meta = (vol.shape, vol.is_contiguous(memory_format=torch.channels_last_3d))
        return out.view(*out.shape[:3], -1).permute(0, 3, 1, 2)

    @staticmethod
    def backward(ctx, grad):
        shape, cl3d = ctx.vol_meta
        g = grad.permute(0, 2, 3, 1).contiguous()
        if ctx.pad is not None:
            g = g.unflatten(3, (2, 2, -1))  # (N, I, J, 2, 2, C), as the forward buffer
        gvol = torch.empty(shape, dtype=grad.dtype, device=grad.device,
                           memory_format=torch.channels_last_3d if cl3d else torch.contiguous_format)
        n0 = 0
        for i, k in enumerate(ctx.axes):  # the first axis' copies cover every voxel once
            nk = shape[0] * shape[AXES[k][0]]
            for part, voxels in _slice_copies(gvol, g[n0:n0 + nk], (k,), ctx.pad):
                if i:
                    voxels.add_(part)
                else:
                    voxels.copy_(part)
            n0 += nk
        return gvol, None, None


def volume_slices(vol: torch.Tensor, axis, channels_last: bool = False, s2d_pad: int | None = None) -> torch.Tensor:
    """All 2D slices of ``vol`` (B, C, X, Y, Z) perpendicular to ``axis`` as (B·L, C, a, b).

    ``axis`` may be a tuple: the slices of each axis one after another (a cube's axes
    give slices of one shape). With ``channels_last`` each axis' slices are copied once,
    straight into one NHWC buffer; with ``s2d_pad`` too, straight into the layout of
    :func:`~.nets.space_to_depth` with that padding: (B·L, 4·C, (a + 2·pad) / 2, ...).
    """
    axes = (axis,) if isinstance(axis, int) else tuple(axis)
    B, c = vol.shape[:2]
    if channels_last:
        return _VolumeSlices.apply(vol, axes, s2d_pad)
    if s2d_pad is not None:
        raise ValueError("space-to-depth slices are channels-last")
    return torch.cat([vol.permute(0, AXES[k][0], 1, AXES[k][1], AXES[k][2])
                      .reshape(B * vol.shape[AXES[k][0]], c, vol.shape[AXES[k][1]], vol.shape[AXES[k][2]])
                      for k in axes])


def resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device not in ("cpu", "cuda") and not device.startswith("cuda:"):
        raise SliceGANError(f"unknown device {device!r} (use auto, cpu or cuda)")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise SliceGANError("--device cuda was asked for but no CUDA GPU is available")
    return torch.device(device)


class Trainer:
    """Networks, optimisers and one training iteration (eager or as a CUDA graph)."""

    def __init__(self, preset: Preset, images: list[TrainingImage], device: torch.device,
                 precision: str = "auto", graphs: bool = False, channels_last: bool = True, gp: str = "adjoint",
                 subpixel: bool | None = None, linear_head: bool = True, s2d: bool | None = None):
        self.p = preset
        if gp not in ("adjoint", "autograd"):
            raise SliceGANError(f"unknown gradient-penalty method {gp!r}")
        self.gp = gp  # same penalty either way; "autograd" is the published double backpropagation
        self.dev = device
        self.cuda = device.type == "cuda"
        self.imtype = images[0].imtype
        self.nc = images[0].nc
        self.params = preset.net_params(self.nc)
        try:
            self.params.check()
        except ValueError as exc:
            raise SliceGANError(f"preset: {exc}") from None
        if self.params.out_side(preset.latent_side) != preset.img_side:
            raise SliceGANError("preset: the generator's output side does not match the training side")
        self.bf16 = self.cuda and precision in ("auto", "bf16")
        self.channels_last = channels_last  # NHWC: faster in cuDNN and in oneDNN (CPU: 16-20 % per iteration)
        self.graphs = graphs and self.cuda
        self.anisotropic = len(images) == 3
        # one critic per axis: three images, or one image with critic_axes "separate"
        self.separate = self.anisotropic or preset.critic_axes == "separate"
        self.G = Generator(self.params, self.imtype).to(device)
        # transposed convolutions as sub-pixel convolutions: the same function, faster in cuDNN
        # (default on CUDA only: on the CPU, oneDNN was no faster that way; docs/benchmarks.md)
        self.G.subpixel = (self.cuda if subpixel is None else subpixel) and subpixel_supported(self.params)
        self.Ds = [Critic(self.params).to(device) for _ in range(3 if self.separate else 1)]
        # the critic's first layer on space-to-depth input (slices and patches written that way):
        # the same arithmetic, 2-4x faster in cuDNN (default on CUDA; docs/benchmarks.md)
        s2d = (self.cuda if s2d is None else s2d) and channels_last and s2d_supported(self.params, preset.img_side)
        self.s2d_pad = self.params.dp[0] if s2d else None
        for D in self.Ds:
            D.linear_head = linear_head  # a one-pixel last layer as a matrix product: the same arithmetic
            D.s2d_input = s2d
        if self.channels_last:
            self.G.to(memory_format=torch.channels_last_3d)
            for D in self.Ds:
                D.to(memory_format=torch.channels_last)
        opt_kw = dict(lr=preset.lr, betas=tuple(preset.betas))
        if self.cuda:
            opt_kw["fused"] = True
            if self.graphs:
                opt_kw["capturable"] = True
        self.optG = torch.optim.Adam(self.G.parameters(), **opt_kw)
        self.optDs = [torch.optim.Adam(D.parameters(), **opt_kw) for D in self.Ds]
        self.samplers = [PatchSampler(im, preset.img_side, device) for im in images]
        # per-iteration losses accumulated on the device: critic, wasserstein, gp, generator
        self.acc = torch.zeros(4, device=device)
        self.acc_n = 0
        self._graph = None
        self._warmup_left = 3
        self.iteration = 0
        # optional moving average of the generator's weights (the exported generator when on)
        self.G_ema = None
        if preset.ema > 0:
            self.G_ema = copy.deepcopy(self.G).requires_grad_(False)
            self._ema_w = torch.zeros((), device=device)  # lerp weight, a tensor so graphs can replay it

    # -- one iteration ------------------------------------------------------
    def _autocast(self):
        # the cast-weight cache must be off inside CUDA graph capture
        return torch.autocast("cuda", dtype=torch.bfloat16, enabled=self.bf16, cache_enabled=not self.graphs)

    def _noise(self, batch: int) -> torch.Tensor:
        s = self.p.latent_side
        z = torch.randn(batch, self.p.nz, s, s, s, device=self.dev)
        return z.contiguous(memory_format=torch.channels_last_3d) if self.channels_last else z

    def _slices(self, fake: torch.Tensor, axis) -> torch.Tensor:
        return volume_slices(fake, axis, self.channels_last, self.s2d_pad)

    def _real(self, axis: int) -> torch.Tensor:
        # isotropic runs may see the image under all 8 symmetries of the square (three images
        # come in the published orientation and stay as they are)
        real = self.samplers[axis if self.anisotropic else 0].sample(
            self.p.batch_real, dihedral=self.p.augment and not self.anisotropic)
        if self.s2d_pad is not None:
            return space_to_depth(real, self.s2d_pad)
        return real.contiguous(memory_format=torch.channels_last) if self.channels_last else real

    def _critic_fakes(self) -> list[torch.Tensor]:
        """The fake volumes of all ``critic_iters`` critic steps (the generator does not change
        between them): one generator call with batch statistics per step's batch, which is
        what one call per step gives."""
        p = self.p
        with torch.no_grad(), self._autocast():
            return list(self.G(self._noise(p.batch_d * p.critic_iters), groups=p.critic_iters).chunk(p.critic_iters))

    def _critic_step(self, fake: torch.Tensor):
        p = self.p
        if p.critic_axes == "joint" and not self.anisotropic:
            D, opt = self.Ds[0], self.optDs[0]
            real = torch.cat([self._real(axis) for axis in range(3)])
            slices = self._slices(fake, (0, 1, 2))
            n = slices.shape[0] // 3
            # one update for the three axes (not the published order; fewer, larger calls)
            return self._critic_update(D, opt, real, slices,
                                       torch.cat([slices[k * n:k * n + p.batch_real] for k in range(3)]))
        tot = []
        for axis in range(3):
            k = axis if self.separate else 0
            fs = self._slices(fake, axis)
            tot.append(self._critic_update(self.Ds[k], self.optDs[k], self._real(axis), fs, fs[:p.batch_real]))
        return torch.stack(tot).mean(0)

    def _critic_update(self, D, opt, real, fake, fake_gp):
        """One Adam step of critic ``D`` on loss mean D(fake) − mean D(real) + gradient penalty."""
        nr, nf = real.shape[0], fake.shape[0]
        alpha = torch.rand(nr, 1, 1, 1, device=self.dev)
        interp = alpha * real + (1 - alpha) * fake_gp.float()
        opt.zero_grad(set_to_none=True)
        if self.gp == "autograd":  # reference: double backpropagation, as published
            with self._autocast():
                out = D(torch.cat([real.to(fake.dtype), fake])).float()
            gp = self._gp_autograd(D, interp)
        else:
            # real, fake and interpolates in one call (the critic has no batch statistics); the
            # interpolates' ReLU masks give the penalty's input gradient as an adjoint chain
            with self._autocast():
                x = torch.cat([real.to(fake.dtype), fake, interp.to(fake.dtype)])
                if self.channels_last:
                    x = x.contiguous(memory_format=torch.channels_last)
                score, hidden = D.forward_hidden(x)
                out = score[: nr + nf].float()
                masks = [h[nr + nf:] > 0 for h in hidden]
                g = D.input_gradient(masks, (self.p.img_side,) * 2, torch.ones_like(score[nr + nf:]))
            gp = self._penalty(g)
        d_real = out[:nr].mean()
        d_fake = out[nr:].mean()
        loss = d_fake - d_real + gp
        loss.backward()
        opt.step()
        return torch.stack([loss.detach(), (d_real - d_fake).detach(), gp.detach()])

    def _penalty(self, g):
        return self.p.gp_lambda * ((g.flatten(1).float().norm(2, dim=1) - 1.0) ** 2).mean()

    def _gp_autograd(self, D, x):
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        x.requires_grad_(True)
        with self._autocast():
            out = D(x)
        (g,) = torch.autograd.grad(out.float().sum(), x, create_graph=True)
        if self.s2d_pad is not None:  # the gradient with respect to the image, not its padding
            g = depth_to_space(g, self.s2d_pad, (self.p.img_side,) * 2)
        return self._penalty(g)

    def _generator_step(self):
        for D in self.Ds:
            D.requires_grad_(False)  # no critic weight gradients needed here
        self.optG.zero_grad(set_to_none=True)
        with self._autocast():
            fake = self.G(self._noise(self.p.batch_g))
            if self.separate:
                loss = 0.0
                for axis in range(3):
                    loss = loss - self.Ds[axis](self._slices(fake, axis)).float().mean()
            else:  # one shared critic: the three axes in one call (the same sum of three equal-size means)
                loss = -3.0 * self.Ds[0](self._slices(fake, (0, 1, 2))).float().mean()
        loss.backward()
        self.optG.step()
        for D in self.Ds:
            D.requires_grad_(True)
        if self.G_ema is not None:
            with torch.no_grad():
                for e, g in zip(self.G_ema.parameters(), self.G.parameters()):
                    e.lerp_(g, self._ema_w)
        return loss.detach()

    def _iteration(self):
        for fake in self._critic_fakes():
            c = self._critic_step(fake)
        g = self._generator_step()
        self.acc += torch.cat([c, g.reshape(1)])

    def step(self) -> None:
        """One generator iteration (``critic_iters`` critic steps + one generator step)."""
        if self.G_ema is not None:  # warm-up: average over the run so far until that is longer than 1/(1-ema)
            decay = min(self.p.ema, (1.0 + self.iteration) / (10.0 + self.iteration))
            self._ema_w.fill_(1.0 - decay)
        self.iteration += 1
        if not self.graphs:
            self._iteration()
        elif self._graph is not None:
            self._graph.replay()
        elif self._warmup_left > 0:  # eager iterations on a side stream before capture
            s = torch.cuda.Stream()
            s.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(s):
                self._iteration()
            torch.cuda.current_stream().wait_stream(s)
            self._warmup_left -= 1
        else:
            self._capture()  # on failure it runs this iteration eagerly and turns graphs off
            if self._graph is not None:
                self._graph.replay()
        self.acc_n += 1

    def _capture(self):
        try:
            g = torch.cuda.CUDAGraph()
            for opt in [self.optG, *self.optDs]:
                opt.zero_grad(set_to_none=True)
            # thread_local: other threads may train their own networks meanwhile
            with torch.cuda.graph(g, capture_error_mode="thread_local"):
                self._iteration()
            self._graph = g
        except Exception:  # noqa: BLE001 - capture is an optimisation: fall back to eager
            self.graphs = False
            self._graph = None
            torch.cuda.synchronize()
            self._iteration()

    def take_stats(self) -> dict[str, float]:
        """Mean losses since the last call (one host synchronisation)."""
        n = max(self.acc_n, 1)
        vals = (self.acc / n).tolist()
        self.acc.zero_()
        self.acc_n = 0
        return dict(zip(("critic_loss", "wasserstein", "gradient_penalty", "generator_loss"), vals))

    @torch.no_grad()
    def sample_slices(self) -> dict[str, np.ndarray]:
        """Middle slices along x, y, z of one volume from a fixed latent (uint8 images)."""
        gen = torch.Generator().manual_seed(1234)  # fixed, and leaves the training RNG alone
        s = self.p.latent_side
        z = torch.randn(1, self.p.nz, s, s, s, generator=gen).to(self.dev)
        was = self.G.training
        self.G.eval()
        vol = self.G(z).float()[0].cpu().numpy()  # (C, X, Y, Z)
        self.G.train(was)
        img = to_display(vol, self.imtype)
        m = img.shape[0] // 2
        return {"slice_x": img[m], "slice_y": img[:, m], "slice_z": img[:, :, m]}

    @torch.no_grad()
    def check_volume(self) -> tuple[list[torch.Tensor], Generator]:
        """The convergence check's volumes (C, X, Y, Z), float, on the device, from fixed latents of
        side ``converge_latent`` (``converge_volumes`` of them, seeds CHECK_SEED, CHECK_SEED + 1, ...),
        made by the generator that would be saved now; and that generator."""
        if getattr(self, "_check_z", None) is None:  # drawn once from their own streams: checks are comparable
            s = self.p.converge_latent
            self._check_z = [torch.randn(1, self.p.nz, s, s, s, generator=torch.Generator().manual_seed(CHECK_SEED + i))
                             .to(self.dev) for i in range(self.p.converge_volumes)]
        G = self.export_generator()
        was = G.training
        G.eval()  # running statistics, as generation uses (no batch-statistics updates)
        with self._autocast():
            vols = [G(z).float()[0] for z in self._check_z]
        G.train(was)
        return vols, G

    def generator_from(self, state: dict) -> Generator:
        """A generator (eval mode) with the weights and statistics of a saved ``state_dict``."""
        G = copy.deepcopy(self.G if self.G_ema is None else self.G_ema)
        G.load_state_dict(state)
        return G.eval()

    def export_generator(self) -> Generator:
        """The generator to save: ``G``, or the moving average with batch-norm statistics
        re-estimated for its own weights (from a private random stream)."""
        if self.G_ema is None:
            return self.G
        G = copy.deepcopy(self.G_ema)
        for bn in G.bns:
            bn.reset_running_stats()
            bn.momentum = None  # cumulative average over the batches below
        G.train()
        gen = torch.Generator(device=self.dev).manual_seed(4321)
        s = self.p.latent_side
        with torch.no_grad(), self._autocast():
            for _ in range(16):
                G(torch.randn(self.p.batch_d, self.p.nz, s, s, s, device=self.dev, generator=gen))
        for bn in G.bns:
            bn.momentum = 0.1
        return G.eval()

    # -- checkpoints --------------------------------------------------------
    def state(self) -> dict:
        return {"G": self.G.state_dict(), "D": [D.state_dict() for D in self.Ds],
                "G_ema": None if self.G_ema is None else self.G_ema.state_dict(),
                "optG": self.optG.state_dict(), "optD": [o.state_dict() for o in self.optDs],
                "rng_cpu": torch.get_rng_state(),
                "rng_cuda": torch.cuda.get_rng_state(self.dev) if self.cuda else None}

    def load(self, ck: dict) -> None:
        self.G.load_state_dict(ck["G"])
        for D, sd in zip(self.Ds, ck["D"]):
            D.load_state_dict(sd)
        self.optG.load_state_dict(ck["optG"])
        for o, sd in zip(self.optDs, ck["optD"]):
            o.load_state_dict(sd)
        if self.G_ema is not None:
            self.G_ema.load_state_dict(ck["G_ema"] if ck.get("G_ema") is not None else ck["G"])
        self.iteration = int(ck.get("iteration", 0))  # written beside the state by _save_checkpoint
        torch.set_rng_state(ck["rng_cpu"])
        if self.cuda and ck.get("rng_cuda") is not None:
            torch.cuda.set_rng_state(ck["rng_cuda"], self.dev)


def to_display(vol: np.ndarray, imtype: str) -> np.ndarray:
    """(C, ...) generator output → uint8 for display: phase labels spread over 0..255,
    grey levels, or (..., 3) colour."""
    if imtype == "nphase":
        return (np.argmax(vol, 0) * (255 // max(vol.shape[0] - 1, 1))).astype(np.uint8)
    img = np.clip(np.rint(vol * 255), 0, 255).astype(np.uint8)
    return img[0] if imtype == "grayscale" else np.moveaxis(img, 0, -1)


def _convergence_record(tracker: Tracker | None, iteration: int) -> dict:
    """What run.json and the result say about convergence (converge off: no checks, the last
    iteration is the generator's)."""
    if tracker is None:
        return {"convergence": [], "converged_at": None, "best_iteration": iteration}
    best = tracker.best_iteration if tracker.best_state is not None else None
    return {"convergence": list(tracker.history), "converged_at": tracker.converged_at,
            "stop_reason": tracker.stop_reason,
            "best_iteration": iteration if best is None else best}


def _save_checkpoint(out: Path, trainer: Trainer, iteration: int, config: dict,
                     tracker: Tracker | None = None) -> None:
    if trainer.cuda:
        torch.cuda.synchronize()
    ck = trainer.state()
    ck["iteration"] = iteration
    ck["config"] = config
    if tracker is not None:
        ck["convergence"] = tracker.state()
    with atomic_path(out / CHECKPOINT) as tmp:
        torch.save(ck, tmp)
    record = _convergence_record(tracker, iteration)
    # converge on: the generator of the best check so far (until the first check, the current one)
    if tracker is not None and tracker.best_state is not None:
        G = trainer.generator_from(tracker.best_state)
    else:
        G = trainer.export_generator()
    save_generator(out / GEN_NAME, G,
                   {"phases": config.get("phases"), "iteration": record["best_iteration"],
                    "preset": config["preset"]["name"], "ema": config["preset"].get("ema", 0.0),
                    "converged_at": record["converged_at"], "stop_reason": record.get("stop_reason"),
                    "trained_iterations": iteration})
    atomic_write_json(out / RUN_JSON, {**config, "iteration": iteration, **record})


def _check_message(it: int, total: int, errors: dict, imtype: str) -> str:
    """``iteration 1500/5000 · vf 2.1 % · surface area 3.4 %`` (grayscale: mean and spread)."""
    a, b = ("vf", "surface area") if imtype == "nphase" else ("mean", "spread")
    return (f"iteration {it}/{total} · {a} {100 * errors['vf_error']:.1f} % · "
            f"{b} {100 * errors['sa_error']:.1f} %")


def _converge_settings(p: Preset, **given) -> Preset:
    """The preset with the given convergence settings (``None``: the preset's), checked."""
    p = replace(p, **{k: type(getattr(p, k))(v) for k, v in given.items() if v is not None})
    if p.converge:
        if (min(p.converge_every, p.converge_patience, p.converge_latent, p.converge_volumes) < 1
                or min(p.converge_min_iters, p.converge_plateau) < 0):
            raise SliceGANError("--converge: the check interval, patience, latent side and number of check "
                                "volumes must be at least 1")
        if not (p.converge_tol > 0 and p.converge_s2_tol > 0):
            raise SliceGANError("--converge: the tolerances must be above 0")
    return p


def train(ctx, images: list, out: str, preset: str = "microlib", iters: int | None = None, device: str = "auto",
          seed: int = 0, resume: bool = False, imtype: str = "auto", checkpoint_every: int | None = None,
          log_every: int | None = None, precision: str = "auto", graphs: bool | str = "auto",
          ema: float | None = None, critic_axes: str | None = None, augment: bool | None = None,
          converge: bool | None = None, converge_every: int | None = None, converge_min_iters: int | None = None,
          converge_tol: float | None = None, converge_patience: int | None = None,
          converge_s2_tol: float | None = None, converge_plateau: int | None = None,
          critic_iters: int | None = None, lr: float | None = None, converge_volumes: int | None = None,
          g_layers: str | list | None = None, converge_latent: int | None = None) -> dict:
    """Train a SliceGAN generator (job function, see :mod:`microlib_gui.core.jobs`).

    Parameters
    ----------
    ctx : JobContext
    images : list of path
        One image (isotropic) or three (anisotropic; slices perpendicular to x, y, z).
    out : path
        Run folder (created).
    preset : {"microlib", "tiny"}
    iters : int, optional
        Generator iterations in total (default: the preset's).
    device : {"auto", "cpu", "cuda"}
    seed : int
        Makes runs repeatable (on the same device and software).
    resume : bool
        Continue the run in ``out`` from its checkpoint (its settings win).
    imtype : {"auto", "nphase", "grayscale", "colour"}
    checkpoint_every, log_every : int, optional
        Iterations between checkpoints / progress reports (default: the preset's).
    precision : {"auto", "bf16", "fp32"}
        On CUDA, ``auto`` is bf16 autocast; the CPU always uses float32.
    graphs : bool or "auto"
        Capture each iteration as a CUDA graph (``auto``: on CUDA).
    ema : float, optional
        Keep an exponential moving average of the generator's weights with this
        decay (e.g. 0.999) and save that as the generator (default: the preset's, off).
    critic_axes : {"sequential", "joint", "separate"}, optional
        Isotropic runs: update the shared critic once per axis, as published
        (``sequential``, the default), or once for all three axes (``joint``: faster,
        a different update order), or train one critic per axis on the one image
        (``separate``: the published anisotropic scheme); see docs/slicegan.md.
    augment : bool, optional
        Isotropic runs: show the critic the real patches under random flips and transposes
        (see docs/slicegan.md; default: the preset's: on for ``microlib``, off for ``tiny``).
    converge : bool, optional
        Every ``converge_every`` iterations compare a small generated volume's statistics with the
        image's (:mod:`.convergence`); stop once they agree, and save the generator of the best
        check (default: the preset's: on for ``microlib``). Also settable on resume.
    converge_every, converge_min_iters, converge_tol, converge_patience, converge_s2_tol : optional
        The check interval, the first iteration that may stop, the relative volume-fraction and
        surface-area tolerance, the checks in a row within it, the two-point-correlation tolerance
        (default: the preset's).
    converge_plateau : int, optional
        Also stop once this many checks in a row found no better generator (0: never; default:
        the preset's).
    converge_volumes : int, optional
        Check volumes per check (different fixed latents); the errors are those of their mean
        figures (default: the preset's, 1).
    converge_latent : int, optional
        Latent side of the check volumes (default: the preset's).
    critic_iters, lr : optional
        Critic steps per generator step and the learning rate of both networks (new runs;
        default: the preset's). For measuring variants (bench/quality_study.py).
    g_layers : str or list of str, optional
        New runs: the kind of each generator layer (``"transpose"`` or ``"resize"``), or one kind
        for all of them (default: the preset's).

    Returns
    -------
    dict with ``out``, ``generator`` (path), ``iteration``, ``seconds``, ``s_per_iter``,
    ``converged_at`` (iteration or None), ``best_iteration`` (the saved generator's),
    ``convergence`` (one dict per check: ``iteration``, ``vf_error``, ``sa_error``, ``s2_error``)
    and ``check_seconds`` (time spent in checks).

    Progress events carry scalars ``critic_loss``, ``wasserstein``,
    ``gradient_penalty``, ``generator_loss``, ``s_per_iter`` and images
    ``slice_x``, ``slice_y``, ``slice_z``; at check iterations also ``vf_error``,
    ``sa_error``, ``s2_error`` (fractions). A run that converges ends with an event
    "converged at iteration N". Cancel saves a checkpoint and stops.
    """
    out = Path(out)
    ck = None
    if (out / CHECKPOINT).exists():
        if not resume:
            raise SliceGANError(f"{out} already holds a training run: pass --resume to continue it "
                                "or choose another --out")
        try:
            ck = torch.load(out / CHECKPOINT, map_location="cpu", weights_only=True)
        except Exception as exc:  # noqa: BLE001
            raise SliceGANError(f"{out / CHECKPOINT}: unreadable checkpoint ({' '.join(str(exc).split())[:120]})") \
                from None
        cfg = ck["config"]
        images, imtype, seed = cfg["images"], cfg["imtype"], cfg["seed"]
        p = Preset.from_dict(cfg["preset"])
    else:
        p = get_preset(preset)
    p = replace(p, **{k: int(v) for k, v in (("iters", iters), ("checkpoint_every", checkpoint_every),
                                             ("log_every", log_every)) if v is not None})
    if ck is None:  # settings of a new run; a resumed one keeps its own
        if isinstance(g_layers, str):
            g_layers = [g_layers] * len(p.gp)
        fresh = {"ema": ema, "critic_axes": critic_axes, "augment": augment, "critic_iters": critic_iters, "lr": lr,
                 "g_layers": g_layers}
        p = replace(p, **{k: type(getattr(p, k))(v) for k, v in fresh.items() if v is not None})
    if p.critic_iters < 1 or not p.lr > 0:
        raise SliceGANError(f"critic steps must be at least 1 and the learning rate above 0 "
                            f"(got {p.critic_iters}, {p.lr})")
    if p.critic_axes not in CRITIC_AXES:
        raise SliceGANError(f"--critic-axes must be one of {', '.join(CRITIC_AXES)} (got {p.critic_axes!r})")
    p = _converge_settings(p, converge=converge, converge_every=converge_every,
                           converge_min_iters=converge_min_iters, converge_tol=converge_tol,
                           converge_patience=converge_patience, converge_s2_tol=converge_s2_tol,
                           converge_plateau=converge_plateau, converge_volumes=converge_volumes,
                           converge_latent=converge_latent)
    if not 0.0 <= p.ema < 1.0:
        raise SliceGANError(f"--ema must be at least 0 and below 1 (got {p.ema})")
    if min(p.iters, p.checkpoint_every, p.log_every) < 1:
        raise SliceGANError("iterations, checkpoint and log intervals must be at least 1")
    dev = resolve_device(device)
    imgs = load_training_images([str(x) for x in images], imtype, min_side=p.img_side)
    torch.manual_seed(int(seed))
    use_graphs = dev.type == "cuda" if graphs == "auto" else bool(graphs)
    if dev.type == "cuda":
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    trainer = Trainer(p, imgs, dev, precision, use_graphs)
    config = {"preset": p.to_dict(), "images": [str(Path(x).resolve()) for x in images], "imtype": imgs[0].imtype,
              "phases": imgs[0].phases, "seed": int(seed), "params": trainer.params.to_list(),
              "anisotropic": trainer.anisotropic, "device": dev.type, "precision": "bf16" if trainer.bf16 else "fp32"}
    tracker = figures = None
    if p.converge:
        tracker = Tracker(p.converge_tol, p.converge_s2_tol, p.converge_patience, p.converge_min_iters,
                          p.converge_plateau)
        # the image's figures once, on the device (the patch samplers hold the images there)
        figures = Figures([s.image for s in trainer.samplers], trainer.imtype)
    start = 0
    if ck is not None:
        trainer.load(ck)
        start = int(ck["iteration"])
        if tracker is not None:
            tracker.load(ck.get("convergence"))
            # a resumed run trains past where it stopped
            tracker.converged_at = tracker.stop_reason = tracker.stopped_at = None
    out.mkdir(parents=True, exist_ok=True)
    if ck is None:
        atomic_write_json(out / RUN_JSON, {**config, "iteration": 0})
    total = p.iters
    t0 = time.monotonic()
    it = start
    t_log, it_log = t0, start
    s_per_iter = float("nan")
    check_s = 0.0
    try:
        while it < total:
            ctx.check_cancelled()
            trainer.step()
            it += 1
            check = tracker is not None and (it % p.converge_every == 0 or it == total)
            if it % p.log_every == 0 or it == total or check:
                stats = trainer.take_stats()  # synchronises
                now = time.monotonic()
                s_per_iter = (now - t_log) / max(it - it_log, 1)
                t_log, it_log = now, it
                if not all(math.isfinite(v) for v in stats.values()):
                    raise SliceGANError(f"training diverged at iteration {it} (losses are not finite)")
                scalars, message, stop = {**stats, "s_per_iter": s_per_iter}, f"iteration {it}/{total}", False
                if check:
                    vol, G = trainer.check_volume()
                    errors = figures.errors(vol)
                    stop = tracker.add(it, errors, state=G.state_dict)
                    scalars.update(errors)
                    message = _check_message(it, total, errors, trainer.imtype)
                    t_log = time.monotonic()  # s_per_iter: training only
                    check_s += t_log - now
                ctx.report(it, total, message, scalars=scalars, images=trainer.sample_slices(), force=True)
                if stop:
                    _save_checkpoint(out, trainer, it, config, tracker)
                    ctx.report(it, total, tracker.stop_message(), force=True)
                    break
            if it % p.checkpoint_every == 0 or it == total:
                _save_checkpoint(out, trainer, it, config, tracker)
    except JobCancelled:
        if it > start:
            _save_checkpoint(out, trainer, it, config, tracker)
        raise
    secs = time.monotonic() - t0
    return {"out": str(out), "generator": str(out / GEN_NAME), "iteration": it, "seconds": secs,
            "s_per_iter": secs / max(it - start, 1), "check_seconds": check_s, **_convergence_record(tracker, it)}


#: The name the GUI's ProcessJob uses.
train_job = train


def read_run(run: str | Path) -> dict:
    """``run.json`` of a run folder."""
    path = Path(run) / RUN_JSON
    try:
        return json.loads(path.read_text("utf-8"))
    except (OSError, ValueError):
        raise SliceGANError(f"{run}: not a training run folder (no readable {RUN_JSON})") from None
