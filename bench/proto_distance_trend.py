"""Ways to use each image's distance from its reference images in the parts' image scores, compared on one scoring pass
per split: the prototype behind `ScoringConfig.distance_trend` (mtlmad 0.2.20).

    python bench/proto_distance_trend.py RUN [RUN ...] [--variants none,trend,...] [--scorer JSON] [--halves 20] [--out OUT.json]

Each run is calibrated without the trend (`--scorer` settings, `distance_trend` false); its parts' image z-scores
(`crossfit.one_scores`, z-scored) and three covariates of every image are made once per split: `d`, the log of the
mean squared thumbnail distance to its k references (`Scorer._distance`, `mtlmad.calibration.reference_distance`),
`tissue`, the fraction of the image that is tissue (`foreground_masks`), and `grey`, its mean grey level. Every variant
is fitted on the calibration normals only and changes the z-scores before the fusion (`fuse_votes` under the run's
`image_votes`, as `fuse_scores` fuses). For each run and variant it prints the fused image AUROC (percent) on `valid` (the run's
calibration normals, as `mtlmad evaluate --split valid`), `cross` (cross-fitted on halves of the validation patients,
`bench/crossfit.py`) and `test` (reported only), then each variant paired against the first. The variants (`VARIANTS`):
- `none`: the z-scores as they are (mtlmad 0.2.18/0.2.19);
- `lookup_divide`, `divide`: the lookup part's z, or every part's, divided by the image's distance relative to the
  normals' median distance, where that is above 1;
- `trend`: every part's score less its least-squares trend in `d` (`TaskNorm.fit_trend` and `.detrend`: the package's
  own, so this is what `distance_trend=True` scores); `trend_clipped`: the slopes clipped at 0;
  `trend_not_lookup`, `trend_learned`: the lookup part, or both no-learning parts, left as they are;
- `trend+tissue`, `trend+grey`: least squares in `d` and a second covariate;
- `mirror`, `mirror_trend`: the mirror part alone, as it is and less its trend."""
import argparse, json, shlex, sys
from pathlib import Path

import numpy as np
import torch

from ablate import run_scorer
from crossfit import fit_norms, halves, one_scores, patient_groups
from fusion_rules import figures, split_passes
from mtlmad.calibration import LOOKUP, MIRROR, NO_MODEL_PARTS, foreground_masks
from mtlmad.checkpoint import run_data
from mtlmad.jobs import load_run_split
from mtlmad.metrics import image_auroc
from mtlmad.score import fuse_votes

VARIANTS = ('none', 'lookup_divide', 'divide', 'trend', 'trend_clipped', 'trend_not_lookup', 'trend_learned',
            'trend+tissue', 'trend+grey', 'mirror', 'mirror_trend')


def covariates(sc, images) -> dict:
    "Each image's covariates: `d` (log distance from its references), `tissue` (its tissue fraction), `grey` (its mean grey level)."
    return dict(d=sc._distance(images), tissue=foreground_masks(images, sc.scoring.erode).mean((1, 2)),
                grey=images.float().mean((1, 2, 3)).numpy())


def least_squares(z: np.ndarray, cov: dict, names) -> tuple:
    "The slopes of z in the covariates `names`, centred at their medians, and those medians."
    centre = {n: float(np.median(cov[n])) for n in names}
    X = np.stack([np.ones(len(z))] + [cov[n] - centre[n] for n in names], 1)
    return np.linalg.lstsq(X, z, rcond=None)[0][1:], centre


def adjusted(variant: str, norms: dict, z: dict, one: dict, cov: dict, keep: np.ndarray) -> dict:
    """The parts' z-scores under `variant`, fitted on the images `keep` selects (normals): `z` the z-scores, `one` the
    scores they come from (for the package's `TaskNorm.fit_trend`), `cov` the covariates of every image."""
    if variant in ('none', 'mirror'): return z
    d = cov['d']
    rel = np.maximum(np.exp(d - np.median(d[keep])), 1.0)
    if variant == 'lookup_divide': return {**z, LOOKUP: z[LOOKUP] / rel}
    if variant == 'divide': return {t: v / rel for t, v in z.items()}
    if variant in ('trend', 'mirror_trend'):   # the package's own fit, on the scores, then z-scored again
        return {t: norms[t].z_score(norms[t].fit_trend(one[t][keep], d[keep]).detrend(one[t], d)) for t in z}
    if variant.startswith('trend+'):
        names = ('d', variant.split('+')[1])
        out = {}
        for t, v in z.items():
            b, c = least_squares(v[keep], {n: cov[n][keep] for n in names}, names)
            out[t] = v - sum(bi * (cov[n] - c[n]) for bi, n in zip(b, names))
        return out
    left = {'trend_not_lookup': (LOOKUP,), 'trend_learned': NO_MODEL_PARTS}.get(variant, ())
    out = {}
    for t, v in z.items():
        b, c = least_squares(v[keep], {'d': d[keep]}, ('d',))
        slope = max(b[0], 0.0) if variant == 'trend_clipped' else b[0]
        out[t] = v if t in left else v - slope * (d - c['d'])
    return out


def fused(sc, variant: str, z: dict) -> np.ndarray:
    "The fused image scores from the parts' z-scores, as `fuse_scores` fuses them under the run's votes (the mirror part alone for `mirror*`)."
    if variant.startswith('mirror'): return z[MIRROR]
    return fuse_votes(z, sc.scoring.image_votes, sc.scoring.groups, sc.scoring.top_parts)


def judge(sc, variants, valid, test, groups, n_halves: int = 20, seed: int = 0) -> dict:
    "Every variant's valid / cross-fitted / test image AUROC (percent) on one run (calibrated without the trend)."
    vmaps, vscores, vfg, _, tscores, vl, tl = split_passes(sc, valid, test)
    vc, tc = covariates(sc, valid.images), covariates(sc, test.images)
    full = {t: sc.norms[t] for t in vscores}
    def aurocs(norms, scores, cov, labels, keep, judged):
        o = one_scores(norms, scores)
        z = {t: norms[t].z_score(v) for t, v in o.items()}
        return [image_auroc(labels[judged], fused(sc, v, adjusted(v, norms, z, o, cov, keep))[judged]) for v in variants]
    everything = np.ones(len(vl), bool)
    # the test split is fitted on the validation normals: its covariates join theirs for the fit
    def test_aurocs():
        scores = {t: np.concatenate([vscores[t], tscores[t]]) for t in vscores}
        cov = {k: np.concatenate([vc[k], tc[k]]) for k in vc}
        labels = np.concatenate([vl, tl]); keep = np.r_[vl == 0, np.zeros(len(tl), bool)]
        return aurocs(full, scores, cov, labels, keep, np.r_[np.zeros(len(vl), bool), np.ones(len(tl), bool)])
    v = aurocs(full, vscores, vc, vl, vl == 0, everything)
    t = test_aurocs()
    cross = [aurocs(fit_norms(vscores, vmaps, vfg, a & (vl == 0)), vscores, vc, vl, a & (vl == 0), ~a) for a in halves(groups, vl, n_halves, seed)]
    return figures(variants, v, t, cross)


def main(argv=None):
    torch.set_num_threads(1)
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('runs', nargs='+', metavar='RUN')
    ap.add_argument('--variants', default=','.join(VARIANTS), help=f'comma list of {VARIANTS}; the first is the one the others are paired against')
    ap.add_argument('--scorer', type=json.loads, default={}, help='scoring settings to calibrate each run under, as JSON (distance_trend is set false)')
    ap.add_argument('--halves', type=int, default=20, help='random halves of the validation patients (default 20; `bench/crossfit.py`)')
    ap.add_argument('--data', default=None, help="dataset folder (default: each run's own)")
    ap.add_argument('--out', default=None, help="also write every run's figures here, as JSON")
    a = ap.parse_args(argv)
    variants = a.variants.split(',')
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown: raise SystemExit(f'unknown variants {unknown}: choose from {VARIANTS}')
    res = {}
    for run in a.runs:
        data = a.data or run_data(run)
        sc = run_scorer(Path(run), {**a.scorer, 'distance_trend': False}, data)
        valid, test = (load_run_split(run, sc.cfg, data, s) for s in ('valid', 'test'))
        res[run] = judge(sc, variants, valid, test, patient_groups(valid.paths, valid.labels), a.halves)
        print(Path(run).name, ' '.join(f"{v}={res[run][v]['valid']:.1f}/{res[run][v]['cross']:.1f}/{res[run][v]['test']:.1f}" for v in variants), flush=True)
        if a.out: Path(a.out).write_text(json.dumps(dict(command=shlex.join(['python', 'bench/proto_distance_trend.py', *(argv if argv is not None else sys.argv[1:])]), runs=res), indent=1))
    se = lambda d: np.std(d, ddof=1) / np.sqrt(len(d)) if len(d) > 1 else float('nan')
    print(f'| variant | valid | cross | test | vs {variants[0]}: valid | cross | test |\n' + '|---' * 7 + '|')
    for v in variants:
        row = [f"{np.mean([x[v][k] for x in res.values()]):.2f}" for k in ('valid', 'cross', 'test')]
        for k in ('valid', 'cross', 'test'):
            d = [x[v][k] - x[variants[0]][k] for x in res.values()]
            row.append(f'{np.mean(d):+.2f} ({se(d):.2f}; {sum(x > 0 for x in d)}/{len(d)})')
        print(f'| {v} | ' + ' | '.join(row) + ' |')
    return res


if __name__ == '__main__':
    main()
