"""Sensitivity of the scoring settings, measured on the validation split only, from saved models (no training).

    python bench/scoring_sweep.py DATA_DIR MODEL.pt [MODEL.pt ...]

MODEL.pt files are written by `bench/ablate.py --save DIR`. For each setting (k similar reference images, pixels
eroded off the tissue's edge, map smoothing, the floor of the per-location spread, the smoothing of the reference
statistics; and, apart, the smoothing before each task's image score only, and a test-time flip) it prints the validation image AUROC (mean of the tasks' z-scores), pixel AUROC and AUPRO, averaged
over the models, and the image AUROC of each model. The test split is never read."""
import sys
import numpy as np
import torch

from mtlmad.datasets import load_split
from mtlmad.metrics import image_metrics, pixel_metrics, as_percent
from mtlmad.ops import gaussian_blur
from mtlmad.score import (Scorer, TaskNorm, calibrated_errors, foreground_masks, fuse_maps, fuse_scores, image_thumbs,
                          make_reference, region_max)

SETTINGS = [dict(), dict(k=5), dict(k=20), dict(erode=2), dict(erode=4), dict(sigma=3), dict(sigma=1.5),
            dict(floor=0.1), dict(floor=0.5), dict(ref_sigma=0), dict(ref_sigma=2),
            # the smoothing before each task's maximum only (the maps keep sigma=2)
            dict(score_sigma=0), dict(score_sigma=0.5), dict(score_sigma=1), dict(score_sigma=1.5), dict(score_sigma=4),
            # test-time flip: each error map the mean of the image's and its mirror image's (twice the model runs)
            dict(flip=True)]


def validation_metrics(train, valid, e_train, e_valid, k=10, erode=3, sigma=2.0, floor=0.25, ref_sigma=1.0, score_sigma=None) -> dict:
    "Validation metrics of one model's errors under one scoring setting (defaults: mtlmad's), as `Scorer` computes them."
    normal = valid.labels == 0
    ref = make_reference(e_train, image_thumbs(train.images), foreground_masks(train.images), floor=floor)
    z, score, fg = calibrated_errors(e_valid, valid.images, ref, k, sigma, erode, ref_sigma)
    if score_sigma is not None: score = {t: region_max(gaussian_blur(m, score_sigma), fg) for t, m in z.items()}
    norms = {t: TaskNorm.from_errors(score[t][normal], z[t][normal][fg[normal]]) for t in z}
    m = image_metrics(valid.labels, fuse_scores(score, norms, 'mean'))
    m.update(pixel_metrics(valid.masks, fuse_maps(z, norms, list(z), sigma)))
    return as_percent(m)


def errors(sc, images, flip=False) -> dict:
    "The scorer's per-task error maps; with `flip`, averaged with those of the mirrored images (mirrored back)."
    e = sc.errors(images)[0]
    if not flip: return e
    ef = sc.errors(images.flip(-1))[0]
    return {t: (e[t] + ef[t][..., ::-1]) / 2 for t in e}


def main():
    torch.set_num_threads(1)
    data, files = sys.argv[1], sys.argv[2:]
    if not files: raise SystemExit(__doc__)
    train, valid = load_split(data, 'train', 128, 1, normal_only=True), load_split(data, 'valid', 128, 1)
    errs = []
    for f in files:
        ck = torch.load(f, weights_only=False)   # our own files, written by bench/ablate.py --save
        sc = Scorer(ck['model'], ck['tasks'], device='cpu')
        errs.append({flip: (errors(sc, train.images, flip), errors(sc, valid.images, flip)) for flip in (False, True)})
    print('| setting | valid image AUROC | pixel AUROC | AUPRO | image AUROC per model |\n|---|---|---|---|---|')
    for s in SETTINGS:
        flip = s.get('flip', False); kw = {k: v for k, v in s.items() if k != 'flip'}
        rs = [validation_metrics(train, valid, *e[flip], **kw) for e in errs]
        mean = lambda k: f"{np.mean([r[k] for r in rs]):.1f}"
        per = ' '.join(f"{r['image_auroc']:.0f}" for r in rs)
        name = s or 'mtlmad defaults (k=10, erode=3, sigma=2, floor=0.25, ref_sigma=1)'
        print(f"| {name} | {mean('image_auroc')} | {mean('pixel_auroc')} | {mean('aupro')} | {per} |", flush=True)


if __name__ == '__main__': main()
