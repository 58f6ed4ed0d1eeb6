"""Prototype, not a package option: the image's own intensity as one more fused part, beside the learned ones.

    INTENSITY_SIDES=both python bench/proto_intensity.py --rescore RUN [RUN ...] --name NAME \\
        --scorer '{"k": 10, "fusion_tasks": ["inpaint", "denoise", "tissue", "pseudo_anomaly", "features", "intensity"]}' \\
        [--loto [--singles]] [--log LOG] [--device cpu]

The part `intensity` takes the image itself (the mean of its channels) as its "error map". The run's per-location
calibration (`mtlmad.calibration.local_z`) turns that into the z of each pixel against the k most similar normal
training slices: the no-learning lookup (`fit_baseline('lookup')`), inside mtlmad's scoring. `INTENSITY_SIDES=both`
(the default) keeps |z|, a pixel unlike its neighbours' either way; `one` keeps the signed z, brighter only. The part is
then fused like any other (`ScoringConfig.top_parts`, `groups`), so the rows answer two questions at once: does the
lookup's z help mtlmad's learned parts, and (`--loto --singles`: `NAME-no_intensity`, `NAME-only_intensity`) do the
learned parts add anything to the lookup's z?

It patches three names of the installed package for this process only (`mtlmad.score.task_errors`,
`mtlmad.score.Scorer.parts`, `mtlmad.calibration.local_z`), then runs `bench/ablate.py` with the arguments given. The
scorer must name `fusion_tasks` (the part is not a task of the run) and any setting that calibrates again (`"k": 10`
does, changing nothing): the run's saved calibration has no intensity part. Nothing is written into the runs."""
import os, sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
import ablate
import mtlmad.calibration as calibration
import mtlmad.score as score
from mtlmad.tasks.base import top_fraction_mean

PART = 'intensity'
SIDES = os.environ.get('INTENSITY_SIDES', 'both')
if SIDES not in ('both', 'one'): raise SystemExit(f"INTENSITY_SIDES must be 'both' or 'one', got {SIDES!r}")

_task_errors, _local_z, _parts = score.task_errors, calibration.local_z, score.Scorer.parts


def task_errors(model, tasks, images, density=None, brighter=()):
    "The model's parts, and the image's grey level as the intensity part's map."
    maps, scores, gates = _task_errors(model, tasks, images, density, brighter)
    grey = images.float().mean(1)
    maps[PART], scores[PART] = grey, top_fraction_mean(grey)
    return maps, scores, gates


def local_z(maps, thumbs, reference, *args, **kw):
    "Each part's z against similar normals; the intensity part's as |z| when both sides count."
    out = _local_z(maps, thumbs, reference, *args, **kw)
    if PART in out and SIDES == 'both': out[PART] = np.abs(out[PART])
    return out


score.task_errors, calibration.local_z = task_errors, local_z
score.Scorer.parts = property(lambda self: _parts.fget(self) + [PART], doc='The scorer\'s parts, then the intensity part.')

if __name__ == '__main__': ablate.main()
