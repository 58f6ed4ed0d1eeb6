"""Sensitivity of the scoring settings, measured on the validation split only, from trained run folders (no training).

    python bench/scoring_sweep.py RUN [RUN ...]

    python bench/scoring_sweep.py --around '{"score_sigma": 0.5}' --settings '[{}, {"k": 5}]' RUN ...

Each RUN is a run folder (`mtlmad train`, or kept by `bench/ablate.py --runs DIR`, e.g. one per fold of `--fold`,
each with its three seeds), validated on the valid split of the data it recorded (`--data` for another folder).
Every row starts from the run's own scoring (what `mtlmad.jobs.open_scorer` gives: its fused tasks, its settings)
and changes the row's settings; `--around` applies its settings under every row (a sweep around another point than
the run's); `--settings` replaces the list of rows. Calibration as `mtlmad.jobs.train_run` calibrates: each
location against `reference_subset` of the training normals `calibration_split` leaves, each task's scale on the
valid normals, so the first row (no change) is what `mtlmad evaluate --split valid` reports, for each run.

For each setting (k similar reference images, pixels eroded off the tissue's edge, map smoothing, the floor of the
per-location spread, the smoothing of the reference statistics, the smoothing before each task's image score, a
test-time flip, the fusion) it prints the validation image AUROC (the fused score), pixel AUROC and AUPRO, averaged
over the runs, and the image AUROC of each run. The test split is never read."""
import argparse, json
from pathlib import Path
import numpy as np
import torch

from mtlmad.checkpoint import run_data
from mtlmad.data.loading import load_images, load_split
from mtlmad.jobs import calibration_split, open_scorer, reference_subset
from mtlmad.metrics import image_metrics, pixel_metrics, as_percent
from mtlmad.ops import gaussian_blur
from mtlmad.calibration import ScoringConfig, calibrated_errors, foreground_masks, image_thumbs, make_reference, region_max
from mtlmad.score import TaskNorm, fuse_maps, fuse_scores

SETTINGS = [dict(), dict(k=5), dict(k=20), dict(erode=2), dict(erode=4), dict(sigma=3), dict(sigma=1.5),
            dict(floor=0.25), dict(floor=1.0), dict(ref_sigma=0), dict(ref_sigma=2),
            # the smoothing before each task's maximum only (sigma smooths the maps)
            dict(score_sigma=0), dict(score_sigma=1), dict(score_sigma=2), dict(score_sigma=1.5), dict(score_sigma=4),
            # test-time flip: each error map the mean of the image's and its mirror image's (twice the model runs)
            dict(flip=True),
            # the image score from the fused map's maximum instead of the mean of the tasks' z-scored image scores
            dict(fusion='max')]
EXTRA = ('flip', 'tasks', 'scales', 'top', 'add')   # row settings the package does not have (yet); the rest are ScoringConfig's


def split_row(row: dict, base: ScoringConfig = ScoringConfig()) -> tuple[ScoringConfig, dict]:
    "A row's `ScoringConfig` (its fields over `base`, a run's own scoring: never a copy of it) and its experimental settings."
    fields = {k: v for k, v in row.items() if k not in EXTRA}
    extra = {k: v for k, v in row.items() if k in EXTRA}
    if 'tasks' in extra: fields['fusion_tasks'] = extra.pop('tasks')   # `tasks`: the fused tasks
    if extra.pop('add', False):   # `scales` added to each task's score: the package's own several smoothings
        fields['score_sigma'] = (*_sigmas(base.replace(**fields).score_sigma), *extra.pop('scales', ()))
    return base.replace(**fields), extra


def _sigmas(score_sigma): return score_sigma if isinstance(score_sigma, tuple) else (score_sigma,)


def validation_metrics(train_images, valid, e_train, e_valid, scoring: ScoringConfig = ScoringConfig(),
                       scales=(), top=0.0) -> dict:
    """Validation metrics of one model's errors under one scoring setting, as `Scorer` calibrates (reference:
    `train_images`, the training normals `mtlmad.jobs.train_run` calibrates each location on; norms: the validation
    normals) and scores. Settings the package does not have (yet): `scales` (more smoothings
    before each task's image score, each z-scored as a task of its own and averaged into the fusion; a row's `add` turns them
    into `ScoringConfig.score_sigma` smoothings instead, summed into the task's own score, see `split_row`), `top` (a task's image score is the mean of the top `top` fraction
    of its tissue pixels instead of their maximum)."""
    s, normal = scoring, valid.labels == 0
    ref = make_reference(e_train, image_thumbs(train_images), foreground_masks(train_images, s.erode), floor=s.floor, k=s.k,
                         part_floors=s.part_floors)
    per = s.score_scales == 'max' and not top   # one maximum per smoothing, each z-scored against the normals', as `Scorer` scores
    z, score, fg = calibrated_errors(e_valid, valid.images, ref, s.k, s.score_sigma, s.erode, s.ref_sigma, s.foreground_only,
                                     s.rms_parts, s.both_sides, per, s.score_shrink, s.own_spread_parts)
    tasks = [t for t in z if s.fusion_tasks is None or t in s.fusion_tasks]
    if top: score = {t: np.sum([top_mean(gaussian_blur(z[t], g), fg, top) for g in _sigmas(s.score_sigma)], 0) for t in tasks}
    for g in scales:
        for t in tasks:
            extra = top_mean(gaussian_blur(z[t], g), fg, top) if top else region_max(gaussian_blur(z[t], g), fg)
            score[f'{t}@{g}'] = extra[:, None] if per else extra
    parts = [t for t in score if t.split('@')[0] in tasks]
    norms = {t: TaskNorm.from_errors(score[t][normal], z[t.split('@')[0]][normal][fg[normal]]) for t in parts}
    if per: score = {t: norms[t].scale_z(score[t]) for t in parts}
    zz = {t: z[t.split('@')[0]] for t in parts}
    m = image_metrics(valid.labels, fuse_scores(score, norms, s.fusion, parts, zz, s.sigma, s.top_parts, s.groups, s.lookup_map, s.image_votes))
    m.update(pixel_metrics(valid.masks, fuse_maps(z, norms, tasks, s.sigma, s.top_parts, s.groups, s.lookup_map)))
    return as_percent(m)


def top_mean(maps: np.ndarray, fg: np.ndarray, q: float) -> np.ndarray:
    "The mean of each map's top `q` fraction of tissue pixels: (N,)."
    out = []
    for m, f in zip(maps, fg):
        v = np.sort(m[f])[::-1]
        out.append(v[:max(1, int(round(q * len(v))))].mean())
    return np.asarray(out)


def errors(sc, images, flip=False) -> dict:
    "The scorer's per-task error maps; with `flip`, averaged with those of the mirrored images (mirrored back)."
    e = sc.errors(images)[0]
    if not flip: return e
    ef = sc.errors(images.flip(-1))[0]
    return {t: (e[t] + ef[t][..., ::-1]) / 2 for t in e}


def read_run(run, data=None) -> tuple:
    "(scorer, training normals that calibrate each location, valid split) of a run folder, as `train_run` calibrated it."
    sc = open_scorer(run, 'cpu')
    data = data or run_data(run)
    if data is None: raise SystemExit(f'{run}: the run records no data folder; give --data')
    prep = dict(image_size=sc.cfg.image_size, channels=sc.cfg.channels, intensity=sc.cfg.intensity)
    train, _, _ = calibration_split(data, sc.cfg)
    return sc, load_images(reference_subset(train), sc.cfg), load_split(data, 'valid', **prep)   # only the reference images are read


def sweep(runs: list, settings: list[dict], around: dict | None = None, data=None) -> list[list[dict]]:
    "Validation metrics (percent) of each run under each row of settings: one list per row, one dict per run."
    try: [split_row({**(around or {}), **row}) for row in settings]   # a setting the package does not know fails here, at once
    except ValueError as e: raise SystemExit(f'--settings / --around: {e}')
    flips = {bool(row.get('flip', False)) for row in settings} | {bool((around or {}).get('flip', False))}
    out = [[] for _ in settings]
    for run in runs:
        sc, train, valid = read_run(run, data)
        errs = {flip: (errors(sc, train, flip), errors(sc, valid.images, flip)) for flip in flips}   # the mirrored images run only if a row asks
        for i, row in enumerate(settings):
            scoring, extra = split_row({**(around or {}), **row}, sc.scoring)
            flip = extra.pop('flip', False)
            out[i].append(validation_metrics(train, valid, *errs[flip], scoring, **extra))
    return out


def main(argv=None):
    torch.set_num_threads(1)
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--around', type=json.loads, default={}, help='settings under every row, as JSON')
    ap.add_argument('--settings', type=json.loads, default=SETTINGS, help='the rows, as a JSON list of settings')
    ap.add_argument('--data', default=None, help="dataset folder to validate on (default: each run's own)")
    ap.add_argument('runs', nargs='+', metavar='RUN', help='run folders')
    a = ap.parse_args(argv)
    res = sweep(a.runs, a.settings, a.around, a.data)
    print('| setting | valid image AUROC | pixel AUROC | AUPRO | image AUROC per run |\n|---|---|---|---|---|')
    if a.around: print(f'Every row also sets {a.around}.\n')
    for row, rs in zip(a.settings, res):
        mean = lambda k: f"{np.mean([r[k] for r in rs]):.1f}"
        per = ' '.join(f"{r['image_auroc']:.0f}" for r in rs)
        name = row or ('the --around settings' if a.around else "each run's own scoring")
        print(f"| {name} | {mean('image_auroc')} | {mean('pixel_auroc')} | {mean('aupro')} | {per} |", flush=True)
    return res


if __name__ == '__main__': main()
