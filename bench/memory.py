"""Peak memory of the data layer on a small and a large folder: does reading stream, or grow with the file count?

    python bench/memory.py            # N = 100 and 10000 PNGs of 128x128 (about 30 s to write)
    python bench/memory.py 100 2000   # other sizes

Each size is written once (BMAD layout, train/good) into a temporary folder; then a fresh Python process runs
find_samples + one pass of a DataLoader over AnomalyDataset and reports its peak RSS (ru_maxrss), and a second
fresh process does the same through `mtlmad.train.train_source(..., stream=True)`, the path `fit` streams through.
"""
import json, subprocess, sys, tempfile, time
from pathlib import Path

import numpy as np
from PIL import Image

CHILD = r'''
import json, resource, sys, time
t0 = time.time()
import torch
from torch.utils.data import DataLoader
from mtlmad.datasets import find_samples, AnomalyDataset
from mtlmad.core import MTLConfig
from mtlmad.datasets import train_source
root, how = sys.argv[1], sys.argv[2]
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
n = 0
if how == 'dataloader':
    ss = find_samples(root, splits=['train'])
    for b in DataLoader(AnomalyDataset(ss, 128), batch_size=32, num_workers=0): n += len(b['image'])
else:
    src = train_source(root, MTLConfig(image_size=128), stream=True)
    for i in range(0, len(src), 32): n += len(src.batch(torch.arange(i, min(i + 32, len(src)))))
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({'n': n, 'peak_mib': peak / 1024, 'after_imports_mib': base / 1024, 's': time.time() - t0}))
'''


def write_folder(root: Path, n: int, size: int = 128):
    "n random 8-bit PNGs in root/train/good (BMAD layout)."
    d = root / 'train' / 'good'; d.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(n): Image.fromarray(rng.integers(0, 256, (size, size), dtype=np.uint8)).save(d / f'{i:06d}.png', compress_level=1)
    return root


def measure(root: Path, how: str) -> dict:
    out = subprocess.run([sys.executable, '-c', CHILD, str(root), how], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


if __name__ == '__main__':
    sizes = [int(a) for a in sys.argv[1:]] or [100, 10_000]
    with tempfile.TemporaryDirectory() as tmp:
        res = {}
        for n in sizes:
            t0 = time.time(); root = write_folder(Path(tmp) / f'n{n}', n)
            print(f'wrote {n} PNGs in {time.time() - t0:.0f} s')
            for how in ('dataloader', 'train_source'):
                r = res[n, how] = measure(root, how)
                print(f'N={n:6d} {how:12s}: peak RSS {r["peak_mib"]:7.1f} MiB (after imports {r["after_imports_mib"]:.1f} MiB), {r["s"]:.1f} s')
        a, b = sizes[0], sizes[-1]
        for how in ('dataloader', 'train_source'):
            print(f'{how}: peak RSS at N={b} / N={a} = {res[b, how]["peak_mib"] / res[a, how]["peak_mib"]:.2f} '
                  f'(in-memory float32 images would need {b * 128 * 128 * 4 / 2**20:.0f} MiB at N={b})')
