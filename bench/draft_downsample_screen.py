"""Screen for the CPU draft (issue 21): train on a MicroLib image downsampled by f, upsample the
generator's output by f (trilinear, on the phase probabilities) and score the 128³ volume at the
image's own resolution (app statistics of the rarer phase, and the stripe score).

    OMP_WAIT_POLICY=PASSIVE python bench/draft_downsample_screen.py micro237 check 1500 2 [OUTDIR]

A bench experiment only: the app has no downsampled training (yet); runs and ``results.jsonl``
go to OUTDIR (default bench/_out/ds).
"""
import json
import os
import sys
import time
from pathlib import Path
import numpy as np, torch
import torch.nn.functional as F
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO)); sys.path.insert(0, str(REPO / 'bench'))
torch.set_num_threads(1)
from skimage.transform import resize
from skimage.io import imsave
from microlib_gui.core.images import load_labels
from microlib_gui.core.jobs import run_inline
from microlib_gui.core.slicegan.generate import load_model
from microlib_gui.core.stats.compare import compare
from microlib_gui.core.stats.artefacts import stripe_score
import draft_preset
name, cand, iters, f = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
OUT = Path(sys.argv[5]) if len(sys.argv) > 5 else REPO / 'bench' / '_out' / 'ds'
OUT.mkdir(parents=True, exist_ok=True)
DATA = Path(os.environ.get('MICROLIB_SHARED_DATA', REPO.parent / 'shared' / 'data'))
out = OUT / f'{name}_{cand}_{iters}_f{f}'
img = load_labels(DATA / 'microlib' / f'{name}.png')
n = int(img.max()) + 1
if f > 1:
    onehot = np.stack([(img == k).astype(np.float32) for k in range(n)])
    small = np.argmax(np.stack([resize(o, (img.shape[0] // f, img.shape[1] // f), anti_aliasing=True, order=1) for o in onehot]), 0)
else:
    small = img
sp = out.with_suffix('.png')
imsave(sp, (small * (255 // (n - 1))).astype(np.uint8), check_contrast=False)
draft_preset.candidate(cand)
if not (out / 'slicegan_Gen.pt').exists():
    t0 = time.process_time()
    r = run_inline('microlib_gui.core.slicegan.train:train', dict(images=[str(sp)], out=str(out), preset=cand, iters=iters, device='cpu', seed=0, converge=False))
    cpu = time.process_time() - t0
else:
    cpu = None
G, meta = load_model(out); G.eval()
side = 128
coarse = side // f
L = next(L for L in range(1, 64) if G.params.out_side(L) >= coarse)
res = []
for seed in (1, 2):
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(1, G.params.gf[0], L, L, L, generator=g)
    with torch.no_grad():
        p = G(z)[:, :, :coarse, :coarse, :coarse]
        if f > 1:
            p = F.interpolate(p, scale_factor=f, mode='trilinear', align_corners=False)
    vol = p[0].argmax(0).numpy().astype(np.uint8)
    c = compare(img, vol, tortuosity=False)
    ph = c['headline_phase']; e = c['errors']
    st = stripe_score(vol, img)
    res.append(dict(seed=seed, vf=round(100 * e['volume_fraction'][ph], 1), sa=round(100 * e['surface_area'], 1), s2=round(e['two_point'][ph], 3), stripe=round(st['score'], 2), period=round(st['period'], 1)))
    if seed == 1:
        m = side // 2
        row = np.concatenate([vol[m], np.full((side, 4), n // 2), vol[:, m], np.full((side, 4), n // 2), img[:side, :side]], 1)
        imsave(str(out) + '_slices.png', np.kron((row * (255 // (n - 1))).astype(np.uint8), np.ones((3, 3), np.uint8)), check_contrast=False)
print(json.dumps(dict(image=name, cand=cand, iters=iters, f=f, cpu_s=cpu, res=res)), flush=True)
with open(OUT / 'results.jsonl', 'a') as fh:
    fh.write(json.dumps(dict(image=name, cand=cand, iters=iters, f=f, cpu_s=cpu, res=res)) + '\n')
