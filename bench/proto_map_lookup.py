"""The prototype of `ScoringConfig.lookup_map`: fused maps that keep the lookup part's map, on the validation split.

    python bench/proto_map_lookup.py RUN [RUN ...]

Each RUN is a run folder calibrated with the lookup part (mtlmad 0.2.12's defaults, or `mtlmad calibrate --run RUN
--scoring '{"lookup": "both"}'`), validated on the data it recorded. Fused like every part (`lookup_map=''`), the
map is at each pixel the mean of the two largest normalised parts; on LGG that dilutes the lookup part's map, which
alone draws the sharper tumours (*mtlmad 0.2.12* in `bench/ablation.md`). The rows, computed here on their own so that
the package's `lookup_map` can be checked against them (`tests/test_bench.py`; the image scores are not touched):

- `default`: the lookup part fused like every part (`fuse_maps(..., lookup_map='')`), whatever the run's own setting;
- `lookup+best_learned`: the mean of the lookup part and the largest learned part;
- `mean(lookup, learned_top2)`: the mean of the lookup part and the learned parts' own fused map (mean of their two largest);
- `max(lookup, learned_top2)`: the larger of the two;
- `lookup_only`: the lookup part alone.

Inpainting and denoising count as one part (`groups`), every map is smoothed by `sigma`, as the package does. Prints each
run's pixel AUROC / AUPRO per row, then the means and the paired differences against `default`."""
import sys
import numpy as np
import torch

from mtlmad.calibration import LOOKUP
from mtlmad.checkpoint import run_data
from mtlmad.data.loading import load_split
from mtlmad.jobs import open_scorer
from mtlmad.metrics import as_percent, pixel_metrics
from mtlmad.ops import gaussian_blur
from mtlmad.score import fuse_maps, largest_mean, merge_groups


def variants(maps: dict, norms: dict, tasks: list, s) -> dict:
    "Each row's fused map (N,H,W) from the calibrated part maps."
    z = {t: norms[t].z_map(maps[t]) for t in tasks}
    learned = merge_groups({t: z[t] for t in tasks if t != LOOKUP}, s.groups)
    lk, top2 = z[LOOKUP], largest_mean(learned, 2)
    blur = lambda m: gaussian_blur(m, s.sigma)
    return {'default': fuse_maps(maps, norms, tasks, s.sigma, s.top_parts, s.groups, lookup_map=''),
            'lookup+best_learned': blur((lk + np.max(learned, 0)) / 2),
            'mean(lookup, learned_top2)': blur((lk + top2) / 2),
            'max(lookup, learned_top2)': blur(np.maximum(lk, top2)),
            'lookup_only': blur(lk)}


def main(runs):
    torch.set_num_threads(1)
    res = {}
    for run in runs:
        sc = open_scorer(run, 'cpu')
        if LOOKUP not in sc.fusion_tasks: raise SystemExit(f"{run}: no lookup part; calibrate it with --scoring '{{\"lookup\": \"both\"}}' first")
        v = load_split(run_data(run), 'valid', image_size=sc.cfg.image_size, channels=sc.cfg.channels, intensity=sc.cfg.intensity)
        maps, _, _ = sc.raw(v.images)
        for name, m in variants(maps, sc.norms, sc.fusion_tasks, sc.scoring).items():
            pm = as_percent(pixel_metrics(v.masks, m))
            res.setdefault(name, []).append((pm['pixel_auroc'], pm['aupro']))
        print(run, {k: tuple(round(x, 1) for x in r[-1]) for k, r in res.items()}, flush=True)
    base = np.array(res['default'])
    for name, r in res.items():
        r = np.array(r); d = r - base
        print(f"{name}: {r[:, 0].mean():.1f} / {r[:, 1].mean():.1f}; paired {d[:, 0].mean():+.2f} ({(d[:, 0] > 0.005).sum()}) / "
              f"{d[:, 1].mean():+.2f} ({(d[:, 1] > 0.005).sum()}) of {len(r)}", flush=True)
    return res


if __name__ == '__main__': main(sys.argv[1:])
