"""The feature part's design measured on saved runs: which Gaussian, and whether the features must be learnt.

    python bench/feature_variants.py RUN [RUN ...] [--out DIR]              # Gaussians: full, PPCA-64/32/16, diagonal
    python bench/feature_variants.py RUN [RUN ...] --untrained [--out DIR]  # the same part from an untrained model's features

For each run folder (trained by `mtlmad train` or `bench/ablate.py --runs`, calibrated without the feature part), this
stacks the head features of every task that sees the image (`mtlmad.features.model_features`), fits each Gaussian on
every normal training image's tissue locations, calibrates its distance maps the way the package calibrates a task
(`local_z` against the run's reference subset, `TaskNorm` on the held-out normals), and reports the part alone and
fused (mean z) with the run's tasks on the valid and the test split. `--untrained` takes the features from a model of
the same config with fresh random weights (seed 0): if the part scores as well from those, what it measures is not
learnt. The package's default (`mtlmad.features.COMPONENTS` components, fitted on the reference subset) is what
`bench/ablate.py --rescore RUN --scorer '{"features": true}' --fusion-tasks ...,features` measures.
Writes DIR/feature_variants_RUNNAME[_untrained].json and prints one line per variant."""
import argparse, json, time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from mtlmad.calibration import calibrated_errors, foreground_masks, image_thumbs, make_reference
from mtlmad.checkpoint import run_data
from mtlmad.data.loading import samples_source
from mtlmad.features import model_features, tissue_cells
from mtlmad.jobs import calibration_split, load_run_split, open_scorer, reference_subset
from mtlmad.metrics import as_percent, image_metrics, pixel_metrics
from mtlmad.moe import MTLModel
from mtlmad.ops import gaussian_blur
from mtlmad.score import TaskNorm

KINDS = ('full', 'ppca64', 'ppca32', 'ppca16', 'diag')
METRICS = ('image_auroc', 'pixel_auroc', 'aupro')


def fit(feats, cells, kind):
    "One Gaussian of the features at `cells`: ('full' | 'ppca' | 'diag', mean, its parameters)."
    x = feats.permute(0, 2, 3, 1)[cells].double(); mu = x.mean(0); c = torch.cov(x.T); d = len(c)
    if kind == 'diag': return 'diag', mu, c.diagonal()
    if kind == 'full': return 'full', mu, torch.linalg.inv(0.99 * c + 0.01 * torch.eye(d, dtype=c.dtype) * c.diagonal().mean())
    k = int(kind[4:]); ev, vec = torch.linalg.eigh(c); ev, vec = ev.flip(0), vec.flip(1)
    return 'ppca', mu, (vec[:, :k], ev[:k], ev[k:].mean())


def distance(feats, g, size):
    "Each location's Mahalanobis distance under Gaussian `g`, upsampled to `size`: (N, H, W) numpy."
    kind, mu, p = g; d = feats.permute(0, 2, 3, 1).double() - mu
    if kind == 'diag': q = (d ** 2 / p).sum(-1)
    elif kind == 'full': q = torch.einsum('nhwc,cd,nhwd->nhw', d, p, d)
    else:
        vec, ev, rest = p; a = d @ vec
        q = (a ** 2 / ev).sum(-1) + ((d ** 2).sum(-1) - (a ** 2).sum(-1)) / rest
    return F.interpolate(q.clamp_min(0).sqrt().float()[:, None], size=size, mode='bilinear', align_corners=False)[:, 0].numpy()


def measure(es, scores, maps, sigma) -> dict:
    m = image_metrics(es.labels, scores); m.update(pixel_metrics(es.masks, gaussian_blur(maps, sigma))); return as_percent(m)


def run_variants(run: Path, kinds, untrained: bool) -> dict:
    sc = open_scorer(run, device='cpu'); cfg, sco = sc.cfg, sc.scoring
    model = sc.model.eval()
    if untrained: torch.manual_seed(0); model = MTLModel(cfg, model.out_channels).eval()
    train, cal, _ = calibration_split(run_data(run), cfg); src = samples_source(train, cfg)
    every = src.batch(torch.arange(len(src))).cpu(); ref = src.batch(reference_subset(torch.arange(len(src)))).cpu()
    feats = lambda x: model_features(model, sc.tasks, x)[0]
    f_all = feats(every); G = {k: fit(f_all, tissue_cells(every, f_all.shape[-1]), k) for k in kinds}
    size = (cfg.image_size, cfg.image_size)
    raw = lambda x: (lambda f: {k: distance(f, G[k], size) for k in kinds})(feats(x))
    reference = make_reference(raw(ref), image_thumbs(ref), foreground_masks(ref, sco.erode), floor=sco.floor, k=sco.k)
    calib = lambda x, m: calibrated_errors(m, x, reference, sco.k, sco.score_sigma, sco.erode, sco.ref_sigma)
    maps, scores, fg = calib(cal, raw(cal))
    norms = {k: TaskNorm.from_errors(scores[k], maps[k][fg]) for k in kinds}
    out = {}
    for split in ('valid', 'test'):
        es = load_run_split(run, cfg, split=split); res = sc.score(es.images, every_part=True); base = [t for t in sc.fusion_tasks if t in sc.tasks]
        maps, scores, _ = calib(es.images, raw(es.images))
        zs = [sc.norms[t].z_score(res.task_scores[t]) for t in base]; zm = [sc.norms[t].z_map(res.task_maps[t]) for t in base]
        r = out[split] = {'fused': measure(es, np.mean(zs, 0), np.mean(zm, 0), sco.sigma)}
        for k in kinds:
            r[k] = measure(es, scores[k], maps[k], sco.sigma)
            r[f'fused+{k}'] = measure(es, np.mean(zs + [norms[k].z_score(scores[k])], 0), np.mean(zm + [norms[k].z_map(maps[k])], 0), sco.sigma)
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('runs', nargs='+'); ap.add_argument('--untrained', action='store_true')
    ap.add_argument('--kinds', default=','.join(KINDS)); ap.add_argument('--out', default='bench/results')
    ap.add_argument('--threads', type=int, default=1)
    a = ap.parse_args(argv); torch.set_num_threads(a.threads)
    kinds = a.kinds.split(','); Path(a.out).mkdir(parents=True, exist_ok=True)
    for run in map(Path, a.runs):
        t0 = time.time(); r = run_variants(run, kinds, a.untrained)
        (Path(a.out) / f'feature_variants_{run.name}{"_untrained" if a.untrained else ""}.json').write_text(json.dumps(r, indent=1))
        print(f'{run} ({time.time() - t0:.0f} s){" untrained features" if a.untrained else ""}')
        for k, v in r['valid'].items():
            print(f'  {k:14s} valid', ' / '.join(f'{v[m]:.1f}' for m in METRICS), '| test', ' / '.join(f"{r['test'][k][m]:.1f}" for m in METRICS))


if __name__ == '__main__': main()
