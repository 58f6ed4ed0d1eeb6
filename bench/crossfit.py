"""How much a run's validation figures owe to its calibration: judged on normals it was not calibrated on.

    python bench/crossfit.py RUN [RUN ...] [--halves 20] [--split valid] [--scorer JSON]

`mtlmad.jobs.train_run` calibrates on the validation normals (`calibration_split`): each part's image score is
z-scored against them (per smoothing, `score_scales='max'`, then as a whole), and the fusion averages those z-scores.
`mtlmad evaluate --split valid` then judges the fusion on the same normals, so a validation comparison of the fusion
against one part alone flatters the fusion: its weights were fitted on the images it is judged on. The test split has
no such help.

Here each run's validation split is cut in two halves of its patients (LGG names, `TCGA_<inst>_<id>_<date>_<slice>`:
the name up to its last `_`; in a split whose normals come from fewer than four patients, such as the one-brain demo,
each normal slice with the anomalous copies made from it) many times over. The parts are calibrated again on the normals of one half, and the fusion and each part alone are judged
on the other half. The same halves are judged with the calibration on every validation normal, as `mtlmad` does. The
per-location reference (the training normals) stays as trained; each part's trend in the image's distance from its
references (`ScoringConfig.distance_trend`) is fitted again on the same half's normals. `--scorer` calibrates each run afresh under other
scoring settings first, as `bench/ablate.py --rescore --scorer` does. Printed per run and on average: image AUROC
(percent) of the fusion calibrated on all normals (in-sample), of the fusion cross-fitted, and of each fused part
alone cross-fitted, then the paired difference of the cross-fitted fusion and its best part."""
import argparse, json, shlex, sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from ablate import run_scorer
from mtlmad.checkpoint import run_data
from mtlmad.jobs import load_run_split
from mtlmad.metrics import image_auroc
from mtlmad.score import TaskNorm, fuse_scores

MIN_GROUPS = 4   # fewer patients than this: halves of the images instead


def patient_groups(paths, labels) -> np.ndarray:
    """Each file's patient: its name up to the last `_` (LGG's `TCGA_<inst>_<id>_<date>_<slice>`). Where the normal images
    span fewer than `MIN_GROUPS` such names (one subject, as the demo's `ch2_045.png`), each normal slice is a group of
    its own, with the anomalous copies named after it (`ch2_045_0.png`)."""
    stems = [Path(p).stem for p in paths]
    keys = np.array([s.rsplit('_', 1)[0] for s in stems])
    if len(set(keys[np.asarray(labels) == 0].tolist())) >= MIN_GROUPS: return keys
    own = set(stems)
    return np.array([k if k in own else s for s, k in zip(stems, keys)])


def halves(groups: np.ndarray, labels: np.ndarray, n: int = 20, seed: int = 0) -> list:
    """Up to `n` boolean masks A of the images, each half of the groups (whole groups only), such that A holds at least two
    normals and the other half holds normal and anomalous images; fewer when the split does not allow more."""
    rng, names, out = np.random.default_rng(seed), np.unique(groups), []
    for _ in range(20 * n):
        a = np.isin(groups, rng.permutation(names)[:len(names) // 2])
        if (a & (labels == 0)).sum() >= 2 and len(set(labels[~a].tolist())) == 2: out.append(a)
        if len(out) == n: break
    return out


def fit_norms(scores: dict, maps: dict, fg: np.ndarray, keep: np.ndarray,
              u: np.ndarray | None = None, # each image's distance from its references (`Scorer._distance`): fit each part's trend in it too
             ) -> dict:
    "Each part's `TaskNorm` from the images `keep` selects (normals), as `Scorer.calibrate` fits them."
    norms = {t: TaskNorm.from_errors(scores[t][keep], maps[t][keep][fg[keep]]) for t in scores}
    return norms if u is None else {t: n.fit_trend(scores[t][keep], u[keep]) for t, n in norms.items()}


def one_scores(norms: dict, scores: dict, idx=slice(None)) -> dict:
    "Each part's one score per image (of the images `idx` selects), as `Scorer._one_score` makes it: its maxima per smoothing made one by `scale_z`."
    return {t: norms[t].scale_z(s[idx]) if s.ndim == 2 else s[idx] for t, s in scores.items()}


def distances(sc, images) -> np.ndarray | None:
    "Each image's distance from its references where the scorer takes each part's trend in it off (`ScoringConfig.distance_trend`), else None."
    return sc._distance(images) if sc.scoring.distance_trend and sc.reference is not None else None


def fused_scores(sc, norms: dict, scores: dict, maps: dict, idx: np.ndarray, standardise: bool = True,
                 without: str | None = None, # a part left out of the fusion
                 u: np.ndarray | None = None, # each image's distance from its references (`distances`): each part's trend in it taken off
                ) -> tuple[np.ndarray, dict]:
    '''The fused image scores of the images `idx` selects under `norms`, and each part's own score (one per image).
    `standardise=False` (a prototype): a part scored per smoothing (`score_scales='max'`) enters the fusion as its
    largest z-score against the normals, without the second z-scoring of that largest z.'''
    one = one_scores(norms, scores, idx)
    if u is not None: one = {t: norms[t].detrend(s, u[idx]) for t, s in one.items()}
    if not standardise: norms = {t: replace(n, score_mean=0.0, score_std=1.0) if scores[t].ndim == 2 else n for t, n in norms.items()}
    return fuse_scores(one, norms, sc.fusion, [t for t in scores if t != without], {t: m[idx] for t, m in maps.items()}, sc.sigma, sc.top_parts,
                       sc.groups, sc.lookup_map, sc.image_votes), one


def crossfit(sc, images: torch.Tensor, labels: np.ndarray, groups: np.ndarray, n: int = 20, seed: int = 0,
             loto: bool = False, # also the cross-fitted fusion with each part left out (`no_<part>`)
            ) -> dict:
    """Image AUROC (percent) of `sc`'s fusion on the whole split calibrated on all its normals (`whole`), and averaged over
    the `halves`: calibrated on all normals (`in_sample`), cross-fitted (`cross`), each fused part alone cross-fitted."""
    labels = np.asarray(labels)
    maps, scores, _, fg = sc._parts(images, parts=list(sc.fusion_tasks), per_scale=True)
    u = distances(sc, images)
    everything = np.ones(len(labels), bool)
    full = fit_norms(scores, maps, fg, labels == 0, u)
    out = dict(whole=100 * image_auroc(labels, fused_scores(sc, full, scores, maps, everything, u=u)[0]), halves=0)
    rows = []
    for a in halves(groups, labels, n, seed):
        b = ~a
        inside = fused_scores(sc, full, scores, maps, b, u=u)[0]
        na = fit_norms(scores, maps, fg, a & (labels == 0), u)
        cross, one = fused_scores(sc, na, scores, maps, b, u=u)
        rows.append(dict(in_sample=image_auroc(labels[b], inside), cross=image_auroc(labels[b], cross),
                         cross_unstandardised=image_auroc(labels[b], fused_scores(sc, na, scores, maps, b, False, u=u)[0]),
                         **{t: image_auroc(labels[b], s) for t, s in one.items()},
                         **{f'no_{t}': image_auroc(labels[b], fused_scores(sc, na, scores, maps, b, without=t, u=u)[0]) for t in (one if loto and len(one) > 1 else ())}))
    if rows: out.update({k: 100 * float(np.mean([r[k] for r in rows])) for k in rows[0]}, halves=len(rows))
    return out


def main(argv=None):
    torch.set_num_threads(1)
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('runs', nargs='+', metavar='RUN', help='run folders')
    ap.add_argument('--halves', type=int, default=20, help='random halves of the patients (default 20)')
    ap.add_argument('--seed', type=int, default=0, help='seed of the halves')
    ap.add_argument('--split', default='valid', choices=('valid', 'test'), help='the split cut in halves (default valid; test only to report)')
    ap.add_argument('--data', default=None, help="dataset folder (default: each run's own)")
    ap.add_argument('--loto', action='store_true', help='also each part left out of the fusion, cross-fitted')
    ap.add_argument('--out', default=None, help="also write every run's figures here, as JSON")
    ap.add_argument('--scorer', type=json.loads, default={}, help='scoring settings to calibrate each run under, as JSON (default: its own)')
    a = ap.parse_args(argv)
    res = []
    for run in a.runs:
        data = a.data or run_data(run)
        sc = run_scorer(Path(run), a.scorer, data)
        es = load_run_split(run, sc.cfg, data, a.split)
        r = crossfit(sc, es.images, es.labels, patient_groups(es.paths, es.labels), a.halves, a.seed, a.loto)
        if not r['halves']: raise SystemExit(f'{run}: its {a.split} split cannot be cut in halves with normals on both sides and both classes in one')
        res.append((Path(run).name, r))
    parts = [k for k in res[0][1] if k not in ('whole', 'halves', 'in_sample', 'cross', 'cross_unstandardised') and not k.startswith('no_')]
    print(f'| run | halves | fused, whole split | fused, in-sample | fused, cross-fitted | fused unstandardised, cross-fitted | '
          + ' | '.join(f'{t} alone' for t in parts) + ' |')
    print('|---|---|---|---|---|---|' + '---|' * len(parts))
    for name, r in res + [('mean', {k: np.mean([r[k] for _, r in res]) for k in res[0][1]})]:
        print(f"| {name} | {r['halves']:.0f} | {r['whole']:.1f} | {r['in_sample']:.1f} | {r['cross']:.1f} | {r['cross_unstandardised']:.1f} | "
              + ' | '.join(f'{r[t]:.1f}' for t in parts) + ' |')
    paired = lambda what, d: print(f'{what}: {np.mean(d):+.2f} (SE {np.std(d, ddof=1) / np.sqrt(len(d)) if len(d) > 1 else float("nan"):.2f}; '
                                   f'{sum(x > 0 for x in d)} of {len(d)} runs above)')
    print()
    paired('in-sample minus cross-fitted fusion', [r['in_sample'] - r['cross'] for _, r in res])
    paired('unstandardised minus standardised fusion, cross-fitted', [r['cross_unstandardised'] - r['cross'] for _, r in res])
    for t in parts:   # paired, run by run: the cross-fitted fusion against each of its parts alone, and without it
        paired(f'cross-fitted fusion minus {t} alone', [r['cross'] - r[t] for _, r in res])
        if f'no_{t}' in res[0][1]: paired(f'    {t} left out of the fusion', [r[f'no_{t}'] - r['cross'] for _, r in res])
    if a.out: Path(a.out).write_text(json.dumps(dict(command=shlex.join(['python', 'bench/crossfit.py', *(argv if argv is not None else sys.argv[1:])]),
                                                     runs={str(run): r for run, (_, r) in zip(a.runs, res)}), indent=1))
    return res


if __name__ == '__main__':
    main()
