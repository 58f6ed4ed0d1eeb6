"""How far a cheaper midline search strays from a reference one: the lines `mtlmad.mirror.find_midlines` finds with a first
search at other sizes, against the lines it finds with a first search at --reference px (0.2.13's 32), on the images
of dataset folders.

    python bench/midline_search.py DATA [DATA ...] [--coarse 24,16] [--reference 32] [--splits valid,test] [--image-size 128]

For each first-search size, per image: the angle between the two lines (degrees), how far apart they cross the tissue's
centre (pixels at --image-size), and the refined mismatch (mean squared grey difference from the mirror image at `SEARCH`
px) of the cheaper line over the reference's (1.0: as good). And what each search costs (`mirror_macs`). No model runs.
The package searches at `COARSE` px first (32; 24 was measured in 0.2.14 and not taken)."""
import argparse

import numpy as np
import torch
import torch.nn.functional as F

from mtlmad.data.loading import load_split
from mtlmad.mirror import SEARCH, find_midlines, mirror_macs, mirror_mismatch, tissue_centres
from mtlmad.ops import foreground


def mismatch_at(images, thetas, size=SEARCH) -> np.ndarray:
    "Each image's `mirror_mismatch` about its line at `size` px, as `find_midlines` refines it."
    grey = images.float().mean(1, keepdim=True); tissue = foreground(grey)
    return mirror_mismatch(F.interpolate(grey, size, mode='area'), F.interpolate(tissue, size, mode='area'), thetas).numpy()


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('data', nargs='+')
    ap.add_argument('--coarse', default='24,16')
    ap.add_argument('--reference', type=int, default=32, help='first-search side of the lines compared against')
    ap.add_argument('--splits', default='valid,test')
    ap.add_argument('--image-size', type=int, default=128)
    a = ap.parse_args()
    sizes = [int(s) for s in a.coarse.split(',')]
    print(f'| data | first search | images | angle apart (deg): median / 95th pct / max | lines apart at the centre (px): median / 95th / max '
          f'| mismatch ratio: median / 95th / max | MMAC per image |')
    print('|---|---|---|---|---|---|---|')
    for d in a.data:
        x = torch.cat([load_split(d, s, a.image_size).images for s in a.splits.split(',')])
        ref = find_midlines(x, coarse=a.reference)
        cx, cy = tissue_centres(foreground(x.float().mean(1, keepdim=True))).T
        base = mismatch_at(x, ref)
        for c in sizes:
            th = find_midlines(x, coarse=c)
            # the two lines' directions: a reflection's matrix is 2uu' - I, so u = (sin a, cos a) up to sign
            ang = lambda T: torch.rad2deg(torch.atan2(T[:, 0, 1], T[:, 1, 1] + 1)).numpy()   # tan(a) = R01 / (1 + R11)
            da = np.abs(ang(th) - ang(ref))
            # where each line crosses the row of the tissue's centre: the midpoint of the centre and its reflection
            p = torch.stack([cx, cy], -1)
            mid = lambda T: (p + (T[:, :, :2] @ p[..., None])[..., 0] + T[:, :, 2]) / 2
            dx = (mid(th) - mid(ref)).norm(dim=1).numpy() * a.image_size / 2
            ratio = mismatch_at(x, th) / np.maximum(base, 1e-12)
            q = lambda v: f'{np.median(v):.2f} / {np.percentile(v, 95):.2f} / {v.max():.2f}'
            print(f'| {d} | {c} px | {len(x)} | {q(da)} | {q(dx)} | {q(ratio)} | {mirror_macs(a.image_size, 6, coarse=c) / 1e6:.2f} |')
        print(f'| {d} | {a.reference} px (the reference) | {len(x)} | | | | {mirror_macs(a.image_size, 6, coarse=a.reference) / 1e6:.2f} |', flush=True)


if __name__ == '__main__':
    main()
