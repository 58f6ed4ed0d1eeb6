"""Prototype (not in the package): the option `lookup_own_spread`, measured against the calibration normals' own spread.

    python bench/proto_lookup_relative.py ABLATE_ARGS ...   (bench/ablate.py's arguments, e.g. --rescore RUN --name N --scorer JSON)

`ScoringConfig.lookup_own_spread` divides each image's signed lookup z-map by its robust spread over the tissue (the
median |z| / 0.6745) where that is above 1 (`mtlmad.calibration.own_spread`). A run whose calibration normals already
differ from their references (a 48 px run, `tests/test_doors.py`) has nearly every map divided, a lesion's too. Here the
spread counts relative to the calibration normals' own: the first lookup map this process calibrates is the
calibration normals' (`Scorer.calibrate` makes them first, as `bench/ablate.py --rescore` and `calibrate_run` run it), and
the median of their spreads, m0, is kept; every map is then divided by max(1, spread / max(1, m0)). Where the normals'
spread is 1 or less this is the option as it is. Run it with `--scorer '{..., "lookup_own_spread": true}'`, one run
per process for a calibrated run (`--rescore` with one RUN), since m0 belongs to the run it was measured on."""
import contextlib, sys
from pathlib import Path

import numpy as np

import mtlmad.calibration as calibration

NORMALS = {}   # 'm0': the calibration normals' median spread, set by the first call


def relative_spread(z: np.ndarray, fg: np.ndarray) -> np.ndarray:
    "`own_spread`, with each spread (`image_spread`) taken relative to the calibration normals' median spread (where that is above 1)."
    s = calibration.image_spread(z, fg)
    if 'm0' not in NORMALS: NORMALS['m0'] = float(np.median(s))
    return (z / np.maximum(s / max(1.0, NORMALS['m0']), 1.0)[:, None, None]).astype(np.float32)


@contextlib.contextmanager
def patched():
    "The package's `own_spread` replaced by `relative_spread` (m0 measured afresh), and as it was afterwards."
    old = calibration.own_spread
    calibration.own_spread = relative_spread
    NORMALS.clear()
    try: yield
    finally: calibration.own_spread = old; NORMALS.clear()


if __name__ == '__main__':
    sys.path.insert(0, str(Path(__file__).parent))
    import ablate
    with patched(): ablate.main()
