"""Prototype, not a package option: the lookup part's own spread floor.

    LOOKUP_FLOOR=0.1 python bench/proto_lookup_floor.py --rescore RUN ... --scorer '{"lookup": "brighter"}' [ablate.py's other arguments]

The per-location reference floors each part's spread at `ScoringConfig.floor` (0.5) times that part's spread over the
tissue (`mtlmad.calibration.make_reference`). For the lookup part that floor is half the spread of the grey levels
themselves, while the bench's lookup (`fit_baseline('lookup')`) chooses an absolute floor of 0.01-0.1 on validation.
This sets the lookup part's fraction alone to `LOOKUP_FLOOR`, for this process only, then runs `bench/ablate.py`."""
import os, sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
import ablate
import mtlmad.score as score
from mtlmad.calibration import LOOKUP

FRACTION = float(os.environ.get('LOOKUP_FLOOR', '0.5'))
_make_reference = score.make_reference


def make_reference(maps, thumbs, fg, *args, **kw):
    "The reference as the package makes it, the lookup part's floor set to `FRACTION` of its spread over the tissue."
    ref = _make_reference(maps, thumbs, fg, *args, **kw)
    if LOOKUP in maps: ref.floor[LOOKUP] = float(FRACTION * np.asarray(maps[LOOKUP])[fg].std() + 1e-6)
    return ref


score.make_reference = make_reference

if __name__ == '__main__': ablate.main()
