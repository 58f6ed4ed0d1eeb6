"""Tiny dataset folders in the on-disk layout (and quirks) of each BMAD dataset and of MVTec-AD, for tests."""
from __future__ import annotations
from pathlib import Path

import numpy as np
from PIL import Image

# per BMAD key: image mode, extension, img/ level in valid/test (and in train), mask folder (None: image-level set)
LAYOUTS = {
    'Brain':          dict(mode='RGBA', ext='.png',  img_dir=True,  train_img_dir=False, mask_dir='label',        size=(24, 24)),
    'Liver':          dict(mode='L',    ext='.png',  img_dir=True,  train_img_dir=True,  mask_dir='anomaly_mask', size=(32, 32)),
    'Retina_RESC':    dict(mode='L',    ext='.png',  img_dir=True,  train_img_dir=True,  mask_dir='label',        size=(16, 32)),
    'Retina_OCT2017': dict(mode='L',    ext='.jpeg', img_dir=False, train_img_dir=False, mask_dir=None,           size=(30, 28)),
    'Chest':          dict(mode='L',    ext='.png',  img_dir=False, train_img_dir=False, mask_dir=None,           size=(32, 32)),
    'Histopathology': dict(mode='RGB',  ext='.png',  img_dir=False, train_img_dir=False, mask_dir=None,           size=(16, 16)),
}

NAMES = {  # file-name styles seen in each dataset
    'Brain': lambda i, bad: f'{100 + i:05d}_{60 + i}',
    'Liver': lambda i, bad: f'{i}_{40 + i}',
    'Retina_RESC': lambda i, bad: f'{i}_{i + 3}',
    'Retina_OCT2017': lambda i, bad: f'{"CNV" if bad else "NORMAL"}-{5324912 + i}-1',
    'Chest': lambda i, bad: f'{"Lung_Opacity" if bad else "Normal"}_{i:08x}',
    'Histopathology': lambda i, bad: f'{i}',
}

def write_image(path, size=(16, 16), mode='L', seed=0) -> Path:
    "Write a random image of `size` (H, W) in PIL `mode` ('L', 'RGB', 'RGBA' through a grey colour map)."
    path = Path(path); path.parent.mkdir(parents=True, exist_ok=True)
    g = np.random.default_rng(seed).integers(0, 256, size, dtype=np.uint8)
    if mode == 'L': a = g
    elif mode == 'RGB': a = np.dstack([g, np.roll(g, 1, 0), np.roll(g, 1, 1)])
    else: a = np.dstack([g, g, g, np.full(size, 255, np.uint8)])  # RGBA, like a slice saved with a grey colour map
    Image.fromarray(a, mode).save(path)
    return path

def write_mask(path, size=(16, 16), levels=(0, 1, 2, 4), empty=False) -> Path:
    "Write a mask with the given grey levels (BraTS labels by default) in a block at the centre."
    path = Path(path); path.parent.mkdir(parents=True, exist_ok=True)
    m = np.zeros(size, np.uint8)
    if not empty:
        h, w = size; blk = m[h // 4: 3 * h // 4, w // 4: 3 * w // 4]
        blk[...] = levels[-1]
        for k, v in enumerate(levels[1:-1]): blk[k::len(levels), :] = v
    Image.fromarray(m).save(path)
    return path

def make_bmad(root, key: str, n_train=3, n_valid=(1, 2), n_test=(2, 2), mask_dir: str | None = 'default') -> Path:
    "Write `root/<key>` in BMAD's layout with that dataset's quirks; returns the dataset folder."
    lay, name = LAYOUTS[key], NAMES[key]
    ds = Path(root) / key
    mdir = lay['mask_dir'] if mask_dir == 'default' else mask_dir
    i = 0
    def img(split, cat, bad):
        nonlocal i
        sub = ds / split / cat
        if (lay['train_img_dir'] if split == 'train' else lay['img_dir']): sub = sub / 'img'
        p = write_image(sub / (name(i, bad) + lay['ext']), lay['size'], lay['mode'], seed=i); i += 1
        if bad and mdir: write_mask(ds / split / cat / mdir / (p.stem + '.png'), lay['size'])
        return p
    for _ in range(n_train): img('train', 'good', False)
    for split, (ng, nu) in (('valid', n_valid), ('test', n_test)):
        for _ in range(ng): img(split, 'good', False)
        for _ in range(nu): img(split, 'Ungood', True)
    return ds

def make_mvtec(root, name='bottle', n_train=2, defects=('crack', 'hole'), n_per=2, size=(20, 20)) -> Path:
    "Write an MVTec-AD style category: train/good, test/good, test/<defect>, ground_truth/<defect>/<n>_mask.png."
    ds, i = Path(root) / name, 0
    for k in range(n_train): write_image(ds / 'train' / 'good' / f'{k:03d}.png', size, 'RGB', seed=k)
    for k in range(n_per): write_image(ds / 'test' / 'good' / f'{k:03d}.png', size, 'RGB', seed=10 + k)
    for d in defects:
        for k in range(n_per):
            write_image(ds / 'test' / d / f'{k:03d}.png', size, 'RGB', seed=20 + k)
            write_mask(ds / 'ground_truth' / d / f'{k:03d}_mask.png', size, levels=(0, 255))
    return ds

def make_all(root) -> dict[str, Path]:
    "Every BMAD dataset and one MVTec category under `root`: {key: dataset folder}."
    out = {k: make_bmad(root, k) for k in LAYOUTS}
    out['mvtec'] = make_mvtec(root)
    return out


def calibrated_run(folder, cfg, images) -> Path:
    "Train `cfg` on `images` into `folder`, calibrate on the same images and save the run's model.pt; returns the folder."
    from mtlmad.checkpoint import save_checkpoint
    from mtlmad.score import Scorer
    from mtlmad.train import fit
    res = fit(cfg, images, out_dir=folder, progress=False, device='cpu')
    sc = Scorer(res.model, res.tasks, device='cpu'); sc.calibrate(images)
    save_checkpoint(Path(folder) / 'model.pt', res.model, res.tasks, cfg, norm=sc.norms_dict())
    return Path(folder)
