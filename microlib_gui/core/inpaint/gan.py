"""GAN inpainting, after MicroLib (Squires et al., microstructural inpainting with GANs).

1. Train a 2D WGAN-GP on 64×64 patches of the image itself, taken from windows
   that do not touch the mask.
2. For each masked region, optimise a latent noise map so that the (fully
   convolutional) generator's output matches the known pixels around the mask.
3. Paste the generated pixels inside the mask only.

Runs on the CPU (slowly) or on CUDA. All randomness comes from ``seed``.
"""

from __future__ import annotations

import math
import time
from typing import Callable

import numpy as np
import torch
from scipy import ndimage
from torch import nn

from . import DEFAULT_BLEND as BLEND
from . import DEFAULT_RESTARTS as RESTARTS
from .data import InpaintImage
from .regions import InpaintError, Region, expand_to, find_regions, free_window_corners

NZ = 100
PATCH = 64
GEN_WIDTHS = (512, 256, 128, 64)
GEN_PADDINGS = (2, 2, 2, 2, 3)
CRITIC_WIDTHS = (64, 128, 256, 512)
CRITIC_PADDINGS = (1, 1, 1, 1, 0)
LAMBDA_GP = 10.0
CRITIC_STEPS = 5
#: Extra weight of the known pixels nearest the mask in the latent fit (0: all known pixels alike).
NEAR_WEIGHT = 0.0
#: Distance (px) over which that extra weight fades.
NEAR_SCALE = 3.0


class Generator(nn.Module):
    """Five transposed convolutions (kernel 4, stride 2); a latent of side ``l`` gives ``32 l - 64`` px."""

    def __init__(self, out_channels: int, phases: bool, nz: int = NZ, widths=GEN_WIDTHS):
        super().__init__()
        chans = [nz, *widths, out_channels]
        self.convs = nn.ModuleList(
            nn.ConvTranspose2d(chans[i], chans[i + 1], 4, 2, GEN_PADDINGS[i], bias=False) for i in range(5)
        )
        self.bns = nn.ModuleList(nn.BatchNorm2d(c) for c in chans[1:-1])
        self.phases = phases

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        x = z
        for conv, bn in zip(self.convs[:-1], self.bns):
            x = torch.relu(bn(conv(x)))
        x = self.convs[-1](x)
        # n-phase: a probability per phase; continuous: intensities in [0, 1]
        return torch.softmax(x, dim=1) if self.phases else torch.sigmoid(x)


class Critic(nn.Module):
    """Five plain convolutions (kernel 4, stride 2), no normalisation: 64×64 → 1 score."""

    def __init__(self, in_channels: int, widths=CRITIC_WIDTHS):
        super().__init__()
        chans = [in_channels, *widths, 1]
        self.convs = nn.ModuleList(
            nn.Conv2d(chans[i], chans[i + 1], 4, 2, CRITIC_PADDINGS[i], bias=False) for i in range(5)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for conv in self.convs[:-1]:
            x = torch.relu(conv(x))
        return self.convs[-1](x)


def latent_side(pixels: int) -> int:
    """Smallest latent side whose generated side ``32 l - 64`` covers ``pixels``."""
    return max(3, math.ceil((pixels + 64) / 32))


def resolve_device(device: str) -> torch.device:
    """``auto`` → CUDA when present, else CPU; ``cuda`` without a GPU is refused."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise InpaintError("--device cuda was asked for but no CUDA GPU is available (use auto or cpu)")
    if device not in ("cpu", "cuda"):
        raise InpaintError(f"unknown device {device!r} (auto, cpu or cuda)")
    return torch.device(device)


def _gradient_penalty(critic: Critic, real: torch.Tensor, fake: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    alpha = torch.rand(real.shape[0], 1, 1, 1, generator=gen, device=real.device)
    mix = (alpha * real + (1 - alpha) * fake).requires_grad_(True)
    score = critic(mix)
    (grad,) = torch.autograd.grad(score.sum(), mix, create_graph=True)
    return LAMBDA_GP * ((grad.flatten(1).norm(dim=1) - 1) ** 2).mean()


def _to_display(img: InpaintImage, x: np.ndarray) -> np.ndarray:
    """A uint8 picture of a ``(C, h, w)`` network-space array (phases spread over 0..255)."""
    if img.kind == "labels":
        lab = np.argmax(x, axis=0)
        return (lab * (255 // max(1, img.n_phases - 1))).astype(np.uint8)
    pic = np.clip(np.rint(x * 255), 0, 255).astype(np.uint8)
    return pic[0] if pic.shape[0] == 1 else np.moveaxis(pic, 0, -1)


Report = Callable[..., None]


def train_generator(img: InpaintImage, mask: np.ndarray, iters: int, batch_size: int, device: torch.device,
                    seed: int, report: Report, check: Callable[[], None], total: int,
                    widths=GEN_WIDTHS) -> Generator:
    """Train the WGAN-GP on mask-free 64×64 patches of ``img``; returns the generator (eval mode)."""
    corners = free_window_corners(mask, PATCH)
    if len(corners) == 0:
        h, w = mask.shape
        raise InpaintError(
            f"no {PATCH}x{PATCH} px window of the {w}x{h} px image is free of the mask; "
            "the GAN needs clean patches to learn from (use the fast method)"
        )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        gen_net = Generator(img.channels, img.kind == "labels", widths=widths).to(device)
        critic = Critic(img.channels).to(device)
    data = torch.from_numpy(np.ascontiguousarray(np.moveaxis(img.as_float(), -1, 0))).to(device)
    rng = np.random.default_rng(seed)
    tgen = torch.Generator(device=device).manual_seed(seed)
    opt_g = torch.optim.Adam(gen_net.parameters(), lr=1e-4, betas=(0.9, 0.99))
    opt_c = torch.optim.Adam(critic.parameters(), lr=1e-4, betas=(0.9, 0.99))
    lz = latent_side(PATCH)

    def real_batch() -> torch.Tensor:
        pick = corners[rng.integers(len(corners), size=batch_size)]
        return torch.stack([data[:, y:y + PATCH, x:x + PATCH] for y, x in pick])

    def noise() -> torch.Tensor:
        return torch.randn(batch_size, NZ, lz, lz, generator=tgen, device=device)

    gen_net.train()
    preview_every = max(1, iters // 20)
    for it in range(1, iters + 1):
        for _ in range(CRITIC_STEPS):
            real = real_batch()
            with torch.no_grad():
                fake = gen_net(noise())
            w_dist = critic(real).mean() - critic(fake).mean()
            loss_c = -w_dist + _gradient_penalty(critic, real, fake, tgen)
            opt_c.zero_grad(set_to_none=True)
            loss_c.backward()
            opt_c.step()
        fake = gen_net(noise())
        loss_g = -critic(fake).mean()
        opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        opt_g.step()
        check()
        images = None
        if it % preview_every == 0 or it == iters:
            images = {"preview": _to_display(img, fake[0].detach().cpu().numpy())}
        report(it, total, f"training the GAN: iteration {it}/{iters}",
               scalars={"wasserstein": float(w_dist.detach()), "loss_g": float(loss_g.detach())}, images=images)
    gen_net.eval()
    return gen_net


def _near_ring(mask: np.ndarray, width: int = 2) -> np.ndarray:
    """Known pixels within ``width`` px of the mask: where a mismatch shows as a seam."""
    return ~mask & (ndimage.distance_transform_edt(~mask) <= width)


def optimise_region(gen_net: Generator, img: InpaintImage, data: np.ndarray, mask: np.ndarray, region: Region,
                    opt_iters: int, device: torch.device, seed: int, on_step: Callable[[int, float, np.ndarray | None], None],
                    n_frames: int = 30, lr: float = 0.05, near_weight: float = NEAR_WEIGHT, restarts: int = 1
                    ) -> tuple[np.ndarray, list[np.ndarray], Region]:
    """Optimise a latent so the generator matches the known pixels of ``region``.

    ``restarts`` latents are fitted at once (one batch) and the one whose output
    best matches the known pixels next to the mask is kept: the fit has many
    local minima, and a poor one shows as a seam or a fill of the wrong phase.
    The window is grown to the generator's output size (where the image allows).
    Returns the generated window ``(C, h, w)``, the kept fit's animation frames
    (uint8) and the window.
    """
    lh, lw = latent_side(region.shape[0]), latent_side(region.shape[1])
    win = expand_to(region, (32 * lh - 64, 32 * lw - 64), mask.shape)
    h, w = win.shape
    sl = win.slices
    target = torch.from_numpy(np.ascontiguousarray(np.moveaxis(data[sl], -1, 0)))[None].to(device)
    known_np = ~mask[sl]
    weight = known_np.astype(np.float32)
    if near_weight:
        # known pixels next to the mask matter most: a mismatch there is a visible seam
        dist = ndimage.distance_transform_edt(known_np)
        weight *= 1.0 + near_weight * np.exp(-(dist - 1.0) / NEAR_SCALE)
    known = torch.from_numpy(weight)[None, None].to(device=device, dtype=target.dtype)
    k = max(1, int(restarts))
    tgen = torch.Generator(device=device).manual_seed(seed)
    z = torch.randn(k, NZ, lh, lw, generator=tgen, device=device).requires_grad_(True)
    opt = torch.optim.Adam([z], lr=lr)
    n_known = known.sum().clamp_min(1.0)
    for p in gen_net.parameters():
        p.requires_grad_(False)
    frame_every = max(1, opt_iters // max(1, n_frames))
    # per fit, only the masked pixels of each frame: the whole frames are built for the kept fit
    frames: list[list[np.ndarray]] = [[] for _ in range(k)]
    win_mask = mask[sl]
    background = _to_display(img, np.moveaxis(data[sl], -1, 0))

    def masked_pixels(out: torch.Tensor) -> list[np.ndarray]:  # each fit's masked pixels, one host copy
        host = out.detach().cpu().numpy()
        return [_to_display(img, x)[win_mask] for x in host]

    def frame(vals: np.ndarray) -> np.ndarray:
        # known pixels as they are, masked ones as currently generated
        pic = background.copy()
        pic[win_mask] = vals
        return pic

    def losses(out: torch.Tensor) -> torch.Tensor:  # one per latent: the fits are independent
        return (((out - target) ** 4) * known).sum(dim=(1, 2, 3)) / n_known

    with torch.no_grad():
        out = gen_net(z)[..., :h, :w]
    for fit, vals in zip(frames, masked_pixels(out)):
        fit.append(vals)
    for it in range(1, opt_iters + 1):
        out = gen_net(z)[..., :h, :w]
        per = losses(out)
        opt.zero_grad(set_to_none=True)
        per.sum().backward()
        opt.step()
        with torch.no_grad():  # keep the latent where the generator was trained: N(0, 1) per position
            z -= z.mean(dim=1, keepdim=True)
            z /= z.std(dim=1, keepdim=True).clamp_min(1e-6)
        pic = None
        if it % frame_every == 0 or it == opt_iters:
            with torch.no_grad():
                now = gen_net(z)[..., :h, :w]
            for fit, vals in zip(frames, masked_pixels(now)):
                fit.append(vals)
            pic = frame(frames[int(torch.argmin(per.detach()))][-1])
        on_step(it, float(per.detach().min()), pic)
    with torch.no_grad():
        final = gen_net(z)[..., :h, :w]
        best = _best_fit(img, final, target, win_mask, losses(final))
    return final[best].cpu().numpy(), [frame(v) for v in frames[best]], win


def _best_fit(img: InpaintImage, out: torch.Tensor, target: torch.Tensor, win_mask: np.ndarray,
              loss: torch.Tensor) -> int:
    """Index of the fit to keep: for labels, fewest wrong labels on the known ring next to the
    mask (what a seam is made of), ties broken by the match loss; otherwise the lowest loss."""
    if img.kind != "labels" or out.shape[0] == 1:
        return int(torch.argmin(loss))
    ring = torch.from_numpy(_near_ring(win_mask)).to(out.device)
    if not bool(ring.any()):
        return int(torch.argmin(loss))
    wrong = (out.argmax(dim=1) != target.argmax(dim=1)) & ring  # the ring holds known pixels only
    score = wrong.flatten(1).sum(dim=1).double() + loss.double() / (1.0 + float(loss.max()))
    return int(torch.argmin(score))


def harmonise_border(labels: np.ndarray, mask: np.ndarray, width: int = 2, passes: int = 2) -> np.ndarray:
    """Majority-vote (3x3) the masked pixels within ``width`` px of known pixels.

    The latent fit matches the known border only on average, so a generated
    label next to the mask edge often disagrees with its known neighbour: a
    visible seam. A few majority passes over that thin ring let the fill join
    the surrounding structure. Known pixels never change.
    """
    if width <= 0 or passes <= 0 or not mask.any():
        return labels
    ring = mask & (ndimage.distance_transform_edt(mask) <= width)
    out = labels.copy()
    n = int(labels.max()) + 1
    for _ in range(passes):
        counts = np.stack([ndimage.uniform_filter((out == p).astype(np.float32), size=3, mode="nearest")
                           for p in range(n)])
        out[ring] = np.argmax(counts, axis=0)[ring].astype(out.dtype)
    return out


def blend_border(gan: np.ndarray, smooth: np.ndarray, mask: np.ndarray, width: float) -> np.ndarray:
    """Feather the GAN fill into a smooth continuation of the known pixels.

    Masked pixels next to known ones take the smooth fill (``smooth``, e.g. the
    biharmonic continuation) with weight ``w = clip((width + 0.5 - d) / width, 0, 1)``
    at distance ``d`` (px) from the nearest known pixel, the GAN's fill the rest:
    ``width = 1`` averages the two on the first masked ring only; wider ramps
    reach deeper (and, wider than 1, already make the border smoother than the
    real microstructure). A generator fitted to the border
    only on average cannot match it pixel for pixel, and thin masks (a label's
    strokes) are nearly all border; the ramp hides that seam while the interior
    keeps the GAN's texture. ``width <= 0`` returns ``gan`` unchanged.
    """
    if width <= 0 or not mask.any():
        return gan
    d = ndimage.distance_transform_edt(mask)  # 1 on the first masked ring
    w = np.clip((width + 0.5 - d) / width, 0.0, 1.0)[..., None] * mask[..., None]
    return (w * smooth + (1.0 - w) * gan).astype(gan.dtype, copy=False)


def inpaint_gan(img: InpaintImage, mask: np.ndarray, *, iters: int = 1000, opt_iters: int = 300,
                batch_size: int = 32, device: str = "auto", seed: int = 0, border: int = 16,
                generator_state: dict | None = None, report: Report | None = None,
                check: Callable[[], None] | None = None, widths=GEN_WIDTHS,
                harmonise: tuple[int, int] = (0, 0), restarts: int = RESTARTS, blend: float = BLEND,
                return_probabilities: bool = False) -> dict:
    """Inpaint ``mask`` in ``img`` with a GAN trained on the image itself.

    Parameters
    ----------
    iters : int
        Generator training iterations (each with 5 critic steps).
    opt_iters : int
        Adam steps of latent optimisation per masked region.
    generator_state : dict, optional
        A generator trained earlier on this image (from a previous result's
        ``"generator_state"``): skips training, so a re-sample only redoes the
        latent optimisation with a new ``seed``.
    border : int
        Known pixels around each region that the latent must match (≥ 16).
    harmonise : (width, passes)
        Label images: majority passes over the masked ring next to known pixels
        (:func:`harmonise_border`), after the join; off by default (the join
        alone gives the truth's border statistics, and the passes bias the
        phase fractions).
    restarts : int
        Latents fitted at once per region; the best match next to the mask is kept
        (:func:`optimise_region`). 1 is MicroLib's single fit.
    blend : float
        Width (px) of the feathered join with the smooth continuation of the
        known pixels (:func:`blend_border`). ``blend=0, restarts=1`` is
        MicroLib's raw argmax paste.
    return_probabilities : bool
        Also return ``probabilities``: the ``(H, W, C)`` fill before the join
        and the argmax (for studying paste variants).

    Returns
    -------
    dict
        ``output`` (stored encoding), ``frames`` (uint8 animation frames),
        ``generator_state`` (numpy arrays), ``device``, ``timings`` (s).
    """
    report = report or (lambda *a, **k: None)
    check = check or (lambda: None)
    if iters < 1 or opt_iters < 1 or batch_size < 1:
        raise InpaintError("iterations and batch size must be at least 1")
    dev = resolve_device(device)
    if dev.type == "cuda":
        torch.backends.cudnn.benchmark = True  # fixed shapes in training: let cuDNN pick its fastest kernels
    regions = find_regions(mask, max(16, border))
    train_total = 0 if generator_state is not None else iters
    total = train_total + opt_iters * len(regions)
    t0 = time.perf_counter()
    if generator_state is None:
        gen_net = train_generator(img, mask, iters, batch_size, dev, seed, report, check, total, widths)
    else:
        gen_net = Generator(img.channels, img.kind == "labels", widths=widths)
        try:
            gen_net.load_state_dict({k: torch.from_numpy(np.asarray(v)) for k, v in generator_state.items()})
        except (RuntimeError, KeyError) as exc:
            raise InpaintError(f"the saved generator does not fit this image ({str(exc).splitlines()[0][:100]})") from None
        gen_net = gen_net.to(dev).eval()
    t_train = time.perf_counter() - t0
    data = img.as_float()
    filled = data.copy()
    frames: list[np.ndarray] = []
    for k, reg in enumerate(regions):
        base = train_total + k * opt_iters

        def on_step(it: int, loss: float, pic, base=base, k=k) -> None:
            check()
            report(base + it, total, f"region {k + 1}/{len(regions)}: latent step {it}/{opt_iters}",
                   scalars={"match_loss": loss}, images={"preview": pic} if pic is not None else None)

        out, region_frames, win = optimise_region(gen_net, img, data, mask, reg, opt_iters, dev,
                                                  seed + 1000 * (k + 1), on_step, restarts=restarts)
        own = np.zeros_like(mask)  # this region's masked pixels only: windows may overlap
        own[reg.slices] = mask[reg.slices]
        ws = win.slices
        filled[ws] = np.where(own[ws][..., None], np.moveaxis(out, 0, -1), filled[ws])
        frames.extend(region_frames)
    output = paste(img, filled, mask, blend, harmonise)
    state = {k: v.detach().cpu().numpy() for k, v in gen_net.state_dict().items()}
    res = {"output": output, "frames": frames, "generator_state": state, "device": str(dev),
           "regions": len(regions),
           "timings": {"train_s": t_train, "total_s": time.perf_counter() - t0}}
    if return_probabilities:
        res["probabilities"] = filled
    return res


def paste(img: InpaintImage, filled: np.ndarray, mask: np.ndarray, blend: float = BLEND,
          harmonise: tuple[int, int] = (0, 0)) -> np.ndarray:
    """The GAN fill ``(H, W, C)`` written into the masked pixels of ``img`` (stored encoding):
    feathered into the smooth continuation (:func:`blend_border`), then for label images the
    argmax and the border majority passes (:func:`harmonise_border`). Known pixels never change."""
    if blend > 0:
        from .fast import fast_fill

        filled = blend_border(filled, fast_fill(img, mask), mask, blend)
    if img.kind == "labels":
        labels = harmonise_border(np.argmax(filled, axis=-1).astype(np.uint8), mask, *harmonise)
        return img.encode(labels, mask)
    return img.encode(filled, mask)
