"""Sensitivity of the scoring settings, measured on the validation split only, from saved models (no training).

    python bench/scoring_sweep.py DATA_DIR MODEL.pt [MODEL.pt ...] [DATA_DIR MODEL.pt ...]

    python bench/scoring_sweep.py --around '{"score_sigma": 0.5}' --settings '[{}, {"k": 5}]' DATA_DIR MODEL.pt ...

`--around` applies its settings under every row (a sweep around another point than the defaults); `--settings` replaces
the list of rows. Each data folder is followed by the models trained on it (for example one folder per fold of `bench/ablate.py
--fold`, each with its three seeds); every model is validated on its own folder's valid split.

MODEL.pt files are written by `bench/ablate.py --save DIR`. For each setting (k similar reference images, pixels
eroded off the tissue's edge, map smoothing, the floor of the per-location spread, the smoothing of the reference
statistics, the smoothing before each task's image score, a test-time flip, the fusion) it prints the validation image
AUROC (mean of the tasks' z-scores), pixel AUROC and AUPRO, averaged over the models, and the image AUROC of each model. The test split is never read."""
import argparse, json
from pathlib import Path
import numpy as np
import torch

from mtlmad.datasets import load_split
from mtlmad.metrics import image_metrics, pixel_metrics, as_percent
from mtlmad.ops import gaussian_blur
from mtlmad.calibration import ScoringConfig, calibrated_errors, foreground_masks, image_thumbs, make_reference, region_max
from mtlmad.score import Scorer, TaskNorm, fuse_maps, fuse_scores

SETTINGS = [dict(), dict(k=5), dict(k=20), dict(erode=2), dict(erode=4), dict(sigma=3), dict(sigma=1.5),
            dict(floor=0.25), dict(floor=1.0), dict(ref_sigma=0), dict(ref_sigma=2),
            # the smoothing before each task's maximum only (sigma smooths the maps)
            dict(score_sigma=0), dict(score_sigma=1), dict(score_sigma=2), dict(score_sigma=1.5), dict(score_sigma=4),
            # test-time flip: each error map the mean of the image's and its mirror image's (twice the model runs)
            dict(flip=True),
            # the image score from the fused map's maximum instead of the mean of the tasks' z-scored image scores
            dict(fusion='max')]
EXTRA = ('flip', 'tasks', 'scales', 'top', 'add')   # row settings the package does not have (yet); the rest are ScoringConfig's


def split_row(row: dict) -> tuple[ScoringConfig, dict]:
    "A row's `ScoringConfig` (its fields over mtlmad's defaults: never a copy of them) and its experimental settings."
    fields = {k: v for k, v in row.items() if k not in EXTRA}
    extra = {k: v for k, v in row.items() if k in EXTRA}
    if 'tasks' in extra: fields['fusion_tasks'] = extra.pop('tasks')   # `tasks`: the fused tasks
    if extra.pop('add', False):   # `scales` added to each task's score: the package's own several smoothings
        base = _sigmas(ScoringConfig.from_dict(fields).score_sigma)
        fields['score_sigma'] = (*base, *extra.pop('scales', ()))
    return ScoringConfig.from_dict(fields), extra


def _sigmas(score_sigma): return score_sigma if isinstance(score_sigma, tuple) else (score_sigma,)


def validation_metrics(train, valid, e_train, e_valid, scoring: ScoringConfig = ScoringConfig(),
                       scales=(), top=0.0) -> dict:
    """Validation metrics of one model's errors under one scoring setting, as `Scorer` calibrates (reference: the training
    normals; norms: the validation normals) and scores. Settings the package does not have (yet): `scales` (more smoothings
    before each task's image score, each z-scored as a task of its own and averaged into the fusion; a row's `add` turns them
    into `ScoringConfig.score_sigma` smoothings instead, summed into the task's own score, see `split_row`), `top` (a task's image score is the mean of the top `top` fraction
    of its tissue pixels instead of their maximum)."""
    s, normal = scoring, valid.labels == 0
    ref = make_reference(e_train, image_thumbs(train.images), foreground_masks(train.images, s.erode), floor=s.floor, k=s.k)
    z, score, fg = calibrated_errors(e_valid, valid.images, ref, s.k, s.score_sigma, s.erode, s.ref_sigma, s.foreground_only)
    tasks = [t for t in z if s.fusion_tasks is None or t in s.fusion_tasks]
    if top: score = {t: np.sum([top_mean(gaussian_blur(z[t], g), fg, top) for g in _sigmas(s.score_sigma)], 0) for t in tasks}
    for g in scales:
        for t in tasks:
            score[f'{t}@{g}'] = top_mean(gaussian_blur(z[t], g), fg, top) if top else region_max(gaussian_blur(z[t], g), fg)
    parts = [t for t in score if t.split('@')[0] in tasks]
    norms = {t: TaskNorm.from_errors(score[t][normal], z[t.split('@')[0]][normal][fg[normal]]) for t in parts}
    zz = {t: z[t.split('@')[0]] for t in parts}
    m = image_metrics(valid.labels, fuse_scores(score, norms, s.fusion, parts, zz, s.sigma))
    m.update(pixel_metrics(valid.masks, fuse_maps(z, norms, tasks, s.sigma)))
    return as_percent(m)


def top_mean(maps: np.ndarray, fg: np.ndarray, q: float) -> np.ndarray:
    "The mean of each map's top `q` fraction of tissue pixels: (N,)."
    out = []
    for m, f in zip(maps, fg):
        v = np.sort(m[f])[::-1]
        out.append(v[:max(1, int(round(q * len(v))))].mean())
    return np.asarray(out)


DEFAULTS = ', '.join(f'{k}={v}' for k, v in ScoringConfig().to_dict().items() if k not in ('fusion', 'fusion_tasks'))


def errors(sc, images, flip=False) -> dict:
    "The scorer's per-task error maps; with `flip`, averaged with those of the mirrored images (mirrored back)."
    e = sc.errors(images)[0]
    if not flip: return e
    ef = sc.errors(images.flip(-1))[0]
    return {t: (e[t] + ef[t][..., ::-1]) / 2 for t in e}


def main():
    torch.set_num_threads(1)
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--around', type=json.loads, default={}, help='settings under every row, as JSON')
    ap.add_argument('--settings', type=json.loads, default=SETTINGS, help='the rows, as a JSON list of settings')
    ap.add_argument('folders_and_models', nargs='+')
    a = ap.parse_args()
    groups = []
    for arg in a.folders_and_models:
        if Path(arg).is_dir(): groups.append((arg, []))
        elif groups: groups[-1][1].append(arg)
        else: raise SystemExit(f'{arg}: a data folder should come before its models\n\n{__doc__}')
    if not groups or not all(files for _, files in groups): raise SystemExit(__doc__)
    try: rows = [split_row({**a.around, **row}) for row in a.settings]   # a setting the package does not know fails here, at once
    except ValueError as e: raise SystemExit(f'--settings / --around: {e}')
    flips = {bool(extra.get('flip', False)) for _, extra in rows}   # the mirrored images run only if a row asks
    errs, read = [], {}   # errs: (train, valid, {flip: (train errors, valid errors)}) per model; read: splits per folder and preparation
    for data, files in groups:
        for f in files:
            ck = torch.load(f, weights_only=False)   # our own files, written by bench/ablate.py --save
            prep = dict(image_size=ck['cfg']['image_size'], channels=ck['cfg']['channels'], intensity=ck['cfg'].get('intensity', 'none'))
            key = (data, *prep.values())
            if key not in read: read[key] = load_split(data, 'train', normal_only=True, **prep), load_split(data, 'valid', **prep)
            train, valid = read[key]
            sc = Scorer(ck['model'], ck['tasks'], device='cpu')
            errs.append((train, valid, {flip: (errors(sc, train.images, flip), errors(sc, valid.images, flip)) for flip in flips}))
    print('| setting | valid image AUROC | pixel AUROC | AUPRO | image AUROC per model |\n|---|---|---|---|---|')
    if a.around: print(f'Every row also sets {a.around}.\n')
    for row, (scoring, extra) in zip(a.settings, rows):
        flip = extra.pop('flip', False)
        rs = [validation_metrics(tr, va, *e[flip], scoring, **extra) for tr, va, e in errs]
        mean = lambda k: f"{np.mean([r[k] for r in rs]):.1f}"
        per = ' '.join(f"{r['image_auroc']:.0f}" for r in rs)
        name = row or ('the --around settings' if a.around else f'mtlmad defaults ({DEFAULTS})')
        print(f"| {name} | {mean('image_auroc')} | {mean('pixel_auroc')} | {mean('aupro')} | {per} |", flush=True)


if __name__ == '__main__': main()
