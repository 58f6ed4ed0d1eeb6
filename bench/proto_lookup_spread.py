"""Prototype (not in the package): the lookup part's z-map in units of the image's own spread against its references.

    python bench/proto_lookup_spread.py ABLATE_ARGS ...   (bench/ablate.py's arguments, e.g. --rescore RUN --name N --scorer JSON)

The lookup part is an image's grey level as a z-map against its k most similar training normals (`local_z`). When
the training normals hold no near twin of the image (another person's anatomy), the image differs from them
everywhere and its z-map is high everywhere. Here each image's signed lookup z-map is divided by its robust spread
over the image's tissue (the median |z| / 0.6745, the spread a standard normal z-map has), when that is above 1, and
then counts either way as before (`ScoringConfig.lookup='both'`). A lesion covers a minority of the tissue, so the
spread is the normal tissue's. Everything else is `bench/ablate.py` as it is; calibration runs through the same
change."""
import contextlib, sys
from pathlib import Path

import numpy as np

import mtlmad.calibration as calibration
import mtlmad.score as score
from mtlmad.calibration import LOOKUP, ScoringConfig, foreground_masks

NORMAL_MAD = 0.6745   # the median |z| of a standard normal


def own_spread(maps: dict, images, reference=None, k=ScoringConfig.k, score_sigma=ScoringConfig.score_sigma, erode=ScoringConfig.erode,
               ref_sigma=ScoringConfig.ref_sigma, foreground_only=True, rms_parts=ScoringConfig.rms_parts, both_sides=(), per_scale=False,
               shrink=ScoringConfig.score_shrink):
    "`calibrated_errors`, with the lookup part's signed z-map divided by its robust spread over the tissue (at least 1) before `both_sides`."
    if reference is None or LOOKUP not in maps:
        return calibration.calibrated_errors(maps, images, reference, k, score_sigma, erode, ref_sigma, foreground_only, rms_parts, both_sides, per_scale, shrink)
    fg = foreground_masks(images, erode) if foreground_only else np.ones((len(images), *images.shape[-2:]), bool)
    z = calibration.local_z(maps, calibration.image_thumbs(images), reference, k, ref_sigma, rms_parts, tuple(b for b in both_sides if b != LOOKUP))
    spread = np.array([np.median(np.abs(m[f])) / NORMAL_MAD for m, f in zip(z[LOOKUP], fg)], np.float32)
    lz = z[LOOKUP] / np.maximum(spread, 1)[:, None, None]
    z[LOOKUP] = np.abs(lz) if LOOKUP in both_sides else lz
    z = {t: calibration.mask_outside(m, fg) for t, m in z.items()}
    masks = {}
    return z, {t: calibration.image_scores(m, fg, score_sigma, per_scale, shrink, masks) for t, m in z.items()}, fg


@contextlib.contextmanager
def patched():
    "The package scores with `own_spread` inside, and as it was afterwards."
    old = score.calibrated_errors
    score.calibrated_errors = own_spread
    try: yield
    finally: score.calibrated_errors = old


if __name__ == '__main__':
    sys.path.insert(0, str(Path(__file__).parent))
    import ablate
    with patched(): ablate.main()
