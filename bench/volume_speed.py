"""Time to score one whole volume with the default model (MTLConfig defaults: 128 px, width 32, 4 experts, 5 tasks).

    python bench/volume_speed.py [--volume FILE.nii.gz] [--threads N] [--device auto] [--repeats 3]

The default volume is the full Colin27 T1 template from Debian's mricron-data (181 x 217 x 181 voxels of 1 mm,
/usr/share/mricron/templates/ch2.nii.gz): all 181 axial slices are scored (min_foreground=0), so the figure is for
181 slices whatever they hold. The run is trained for one epoch on the embedded MRI's slices (the weights do not
change the time). Prints the time to read, to score (model + maps + stacking) and to write the NIfTI map, and the
round trip (the written map's affine and shape against the input's)."""
import argparse, tempfile, time
from pathlib import Path

import numpy as np
import torch

from mtlmad.core import MTLConfig
from mtlmad.jobs import train_run, open_scorer
from mtlmad.volumes import brain_mri_volume, read_volume, score_volume, write_map, volumes_to_dataset, require


def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--volume', type=Path, default=Path('/usr/share/mricron/templates/ch2.nii.gz'))
    p.add_argument('--threads', type=int, default=1)
    p.add_argument('--device', default='auto')
    p.add_argument('--repeats', type=int, default=3)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    nib = require('nibabel')
    with tempfile.TemporaryDirectory() as d:
        d = Path(d); (d / 'normal').mkdir()
        nib.save(brain_mri_volume()[0], d / 'normal' / 'ch2.nii.gz')
        data = volumes_to_dataset(d / 'normal', d / 'data', image_size=128, progress=False)
        run = train_run(data, d / 'run', MTLConfig(epochs=1), device=a.device, progress=False)
        scorer = open_scorer(run, a.device)
        t0 = time.perf_counter(); vol = read_volume(a.volume); t_read = time.perf_counter() - t0
        times = []
        for _ in range(a.repeats):
            t0 = time.perf_counter()
            vs = score_volume(scorer, vol, min_foreground=0, progress=False)
            times.append(time.perf_counter() - t0)
        t0 = time.perf_counter(); out = write_map(vol, vs.amap, d / 'map.nii.gz'); t_write = time.perf_counter() - t0
        src, back = nib.load(a.volume), nib.load(out)
        print(f'{a.volume} {src.shape}: {len(vs.scored)} axial slices scored on {vs.device} ({a.threads} thread(s))')
        print(f'read {t_read:.2f} s | score {np.median(times):.2f} s (median of {a.repeats}: {", ".join(f"{t:.2f}" for t in times)}) '
              f'= {1000 * np.median(times) / len(vs.scored):.0f} ms/slice | write {t_write:.2f} s')
        print(f'round trip: affine equal {np.allclose(back.affine, src.affine)}, shape {back.shape} == {src.shape}: {back.shape == src.shape}')


if __name__ == '__main__':
    main()
