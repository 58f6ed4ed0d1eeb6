"""Tests for mtlmad.datasets: BMAD and MVTec folders, bad input, the embedded MRI and the demo dataset."""
import gzip, hashlib, json, os, warnings
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from mtlmad.datasets import (AnomalyDataset, DATASETS, Sample, build_brain_mri, dataset_info, detect_layout,
                             find_samples, load_brain_mri, make_demo_data, read_image, read_mask, read_nifti, slab_split)
from fixtures import LAYOUTS, make_all, make_bmad, make_mvtec, write_image, write_mask

SEG = {'Brain', 'Liver', 'Retina_RESC'}

def _counts(ss): return Counter((s.split, s.category) for s in ss)

# ---------------------------------------------------------------- reading files
def test_read_image_modes(tmp_path):
    g = np.arange(64, dtype=np.uint8).reshape(8, 8) * 4
    Image.fromarray(np.dstack([g, g, g, np.full_like(g, 255)]), 'RGBA').save(tmp_path / 'rgba.png')
    np.testing.assert_allclose(read_image(tmp_path / 'rgba.png'), g / 255, atol=1e-5)
    Image.fromarray(g.astype(np.uint16) * 257).save(tmp_path / 'g16.png')
    np.testing.assert_allclose(read_image(tmp_path / 'g16.png'), g / 255, atol=1e-4)
    Image.fromarray(g).save(tmp_path / 'g.jpeg')
    a = read_image(tmp_path / 'g.jpeg')
    assert a.dtype == np.float32 and a.shape == (8, 8) and 0 <= a.min() and a.max() <= 1
    rgb = read_image(tmp_path / 'rgba.png', channels=3)
    assert rgb.shape == (8, 8, 3) and read_image(tmp_path / 'g.jpeg', channels=3).shape == (8, 8, 3)
    with pytest.raises(ValueError, match='channels should be 1 or 3'): read_image(tmp_path / 'g.jpeg', channels=2)

def test_read_mask_levels_and_shape(tmp_path):
    p = write_mask(tmp_path / 'm.png', (8, 8), levels=(0, 1, 2, 4))
    m = read_mask(p)
    assert m.dtype == bool and m.sum() == 16 and not m[0].any()
    with pytest.raises(ValueError, match=r'm\.png: mask is 8x8 .* image is 10x8'): read_mask(p, shape=(8, 10))

def test_read_bad_files(tmp_path):
    (tmp_path / 'z.png').write_bytes(b'')
    with pytest.raises(ValueError, match=r'z\.png: empty file \(0 bytes\)'): read_image(tmp_path / 'z.png')
    (tmp_path / 'c.png').write_bytes(b'\x89PNG garbage')
    with pytest.raises(ValueError, match=r'c\.png: cannot be read as an image'): read_image(tmp_path / 'c.png')
    with pytest.raises(FileNotFoundError, match=r'nope\.png: no such image file'): read_image(tmp_path / 'nope.png')

# ---------------------------------------------------------------- the six BMAD layouts and MVTec
@pytest.mark.parametrize('key', list(LAYOUTS))
def test_bmad_dataset(tmp_path, key):
    ds = make_bmad(tmp_path, key)
    ss = find_samples(ds)
    assert all(isinstance(s, Sample) and s.dataset == key for s in ss)
    assert _counts(ss) == {('train', 'good'): 3, ('valid', 'good'): 1, ('valid', 'Ungood'): 2, ('test', 'good'): 2, ('test', 'Ungood'): 2}
    assert [s.split for s in ss] == ['train'] * 3 + ['valid'] * 3 + ['test'] * 4
    for s in ss:
        assert s.label == int(s.category == 'Ungood')
        assert (s.mask_path is not None) == (key in SEG and s.label == 1)
        assert Path(s.path).suffix == LAYOUTS[key]['ext']
    if key in SEG: assert Path(ss[-1].mask_path).parent.name == LAYOUTS[key]['mask_dir']
    info = dataset_info(key)
    item = AnomalyDataset(ss, image_size=12, channels=info.channels)[len(ss) - 1]
    assert item['image'].shape == (info.channels, 12, 12) and item['image'].dtype == torch.float32
    assert item['mask'].shape == (1, 12, 12) and set(item['mask'].unique().tolist()) <= {0.0, 1.0}
    assert item['label'] == 1 and item['path'] == ss[-1].path
    assert (item['mask'].sum() > 0) == (key in SEG)

def test_presets():
    assert set(DATASETS) >= {'Brain', 'Liver', 'Retina_RESC', 'Retina_OCT2017', 'Chest', 'Histopathology'}
    assert dataset_info('Histopathology').channels == 3 and dataset_info('Chest').channels == 1
    assert dataset_info('Retina_OCT2017').has_masks is False and dataset_info('Brain').has_masks
    assert dataset_info('Liver_AD').key == 'Liver' and dataset_info('unknown') is None

def test_root_holding_several_datasets_and_splits(tmp_path):
    make_all(tmp_path)
    ss = find_samples(tmp_path, dataset='Liver', splits=['test'])
    assert {s.split for s in ss} == {'test'} and len(ss) == 4 and ss[0].dataset == 'Liver'
    assert len(find_samples(tmp_path / 'Chest', splits='train')) == 3
    with pytest.raises(FileNotFoundError, match='nor a Nothing/ folder'): find_samples(tmp_path, dataset='Nothing')
    with pytest.raises(ValueError, match="unknown split 'val'"): find_samples(tmp_path / 'Chest', splits=['val'])

def test_mvtec_layout(tmp_path):
    ds = make_mvtec(tmp_path)
    assert detect_layout(ds) == 'mvtec' and detect_layout(make_bmad(tmp_path, 'Chest')) == 'bmad'
    ss = find_samples(ds)
    assert _counts(ss) == {('train', 'good'): 2, ('test', 'good'): 2, ('test', 'crack'): 2, ('test', 'hole'): 2}
    bad = [s for s in ss if s.label]
    assert len(bad) == 4 and all(s.mask_path.endswith(f'{Path(s.path).stem}_mask.png') for s in bad)
    assert all(s.mask_path is None for s in ss if not s.label)
    item = AnomalyDataset(ss, image_size=10, channels=3)[4]
    assert item['image'].shape == (3, 10, 10) and item['mask'].sum() > 0

def test_mvtec_bad_input(tmp_path):
    ds = make_mvtec(tmp_path)
    os.remove(ds / 'ground_truth' / 'hole' / '001_mask.png')
    with pytest.raises(FileNotFoundError, match=r'hole/001\.png: anomalous image without a mask'): find_samples(ds)
    write_mask(ds / 'ground_truth' / 'crack' / '007_mask.png', (20, 20))
    with pytest.warns(UserWarning, match=r'skipped 2 problem\(s\)') as w:
        ss = find_samples(ds, on_error='skip')
    msg = str(w[0].message)
    assert '1 missing mask' in msg and '1 mask without image' in msg and len(ss) == 7
    write_mask(ds / 'ground_truth' / 'hole' / '001_mask.png', (20, 20)); (ds / 'ground_truth' / 'crack' / '007_mask.png').unlink()
    (ds / 'ground_truth' / 'scratch').mkdir(); write_mask(ds / 'ground_truth' / 'scratch' / '000_mask.png')
    with pytest.raises(ValueError, match=r'ground_truth/scratch: masks for a defect with no test/scratch'): find_samples(ds)

# ---------------------------------------------------------------- bad input: every problem named, skip counts
def _seg(tmp_path): return make_bmad(tmp_path, 'Liver')

def _expect(ds, exc, pattern, n_left, kind):
    with pytest.raises(exc, match=pattern): find_samples(ds)
    with pytest.warns(UserWarning, match=rf'skipped 1 problem\(s\): 1 {kind}'):
        ss = find_samples(ds, on_error='skip')
    assert len(ss) == n_left

def test_corrupt_image(tmp_path):
    ds = _seg(tmp_path)
    p = next((ds / 'test' / 'good' / 'img').iterdir()); p.write_bytes(b'this is not a png')
    _expect(ds, ValueError, rf'{p.name}: cannot be read as an image', 9, 'unreadable image')

def test_zero_byte_file(tmp_path):
    ds = _seg(tmp_path)
    p = next((ds / 'train' / 'good' / 'img').iterdir()); p.write_bytes(b'')
    _expect(ds, ValueError, rf'{p.name}: empty file \(0 bytes\)', 9, 'empty file')

def test_mask_size_differs(tmp_path):
    ds = _seg(tmp_path)
    m = sorted((ds / 'valid' / 'Ungood' / 'anomaly_mask').iterdir())[0]; write_mask(m, (10, 12))
    _expect(ds, ValueError, rf'{m.name}: mask is 12x10 \(WxH\) but its image .* is 32x32', 9, 'mask size differs')

def test_mask_without_image(tmp_path):
    ds = _seg(tmp_path)
    m = write_mask(ds / 'test' / 'Ungood' / 'anomaly_mask' / 'orphan.png', (32, 32))
    _expect(ds, ValueError, r'orphan\.png: mask without an image', 10, 'mask without image')

def test_missing_mask_in_segmentation_set(tmp_path):
    ds = _seg(tmp_path)
    m = sorted((ds / 'test' / 'Ungood' / 'anomaly_mask').iterdir())[1]; m.unlink()
    _expect(ds, FileNotFoundError, rf'{m.stem}\.png: anomalous image without a mask', 9, 'missing mask')

def test_missing_mask_inferred_for_unknown_dataset(tmp_path):
    ds = make_bmad(tmp_path, 'Brain'); ds = ds.rename(tmp_path / 'my_brains')
    next((ds / 'valid' / 'Ungood' / 'label').iterdir()).unlink()
    with pytest.raises(FileNotFoundError, match='anomalous image without a mask'): find_samples(ds)

def test_missing_and_empty_split(tmp_path):
    ds = make_bmad(tmp_path, 'Chest')
    for p in (ds / 'valid' / 'good').iterdir(): p.unlink()
    for p in (ds / 'valid' / 'Ungood').iterdir(): p.unlink()
    with pytest.raises(FileNotFoundError, match=r'valid/good: folder with no images'): find_samples(ds)
    with pytest.warns(UserWarning, match=r'skipped 3 problem\(s\): 2 folder with no images, 1 empty split'):
        assert len(find_samples(ds, on_error='skip')) == 7
    import shutil; shutil.rmtree(ds / 'valid')
    assert {s.split for s in find_samples(ds)} == {'train', 'test'}
    with pytest.raises(FileNotFoundError, match=r'valid: missing split folder'): find_samples(ds, splits=['train', 'valid'])
    with pytest.warns(UserWarning, match='1 missing split'):
        assert len(find_samples(ds, splits=['train', 'valid'], on_error='skip')) == 3
    with pytest.raises(FileNotFoundError, match='no usable images'):
        with pytest.warns(UserWarning): find_samples(ds, splits=['valid'], on_error='skip')

def test_folder_without_split_or_images(tmp_path):
    (tmp_path / 'empty').mkdir()
    with pytest.raises(FileNotFoundError, match=r'empty: no split folder'): find_samples(tmp_path / 'empty')
    with pytest.raises(FileNotFoundError, match='no such dataset folder'): find_samples(tmp_path / 'absent')
    (tmp_path / 'e2' / 'train' / 'good').mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match=r'train/good: folder with no images'): find_samples(tmp_path / 'e2')

def test_stray_files_and_folders(tmp_path):
    ds = make_bmad(tmp_path, 'Chest')
    (ds / 'train' / 'good' / 'notes.txt').write_text('x'); (ds / 'train' / 'good' / '.DS_Store').write_text('x')
    with pytest.raises(ValueError, match=r'notes\.txt: not an image file'): find_samples(ds)
    (ds / 'train' / 'good' / 'notes.txt').unlink()
    (ds / 'test' / 'weird').mkdir()
    with pytest.raises(ValueError, match=r'test/weird: unexpected folder'): find_samples(ds, layout='bmad')
    with pytest.raises(ValueError, match="on_error should be 'raise' or 'skip'"): find_samples(ds, on_error='ignore')

def test_image_next_to_img_folder(tmp_path):
    ds = _seg(tmp_path)
    write_image(ds / 'test' / 'good' / 'loose.png', (32, 32))
    with pytest.raises(ValueError, match=r'loose\.png: image next to an img/ folder'): find_samples(ds)

def test_truncated_image_caught_by_full_check_and_loader(tmp_path):
    ds = make_bmad(tmp_path, 'Chest')
    p = sorted((ds / 'train' / 'good').iterdir())[0]; p.write_bytes(p.read_bytes()[:-200])
    ss = find_samples(ds)  # the header is intact
    with pytest.raises(ValueError, match=rf'{p.name}: cannot be read as an image'): AnomalyDataset(ss)[0]
    with pytest.raises(ValueError, match=rf'{p.name}: cannot be read'): find_samples(ds, check='full')

# ---------------------------------------------------------------- the torch Dataset
def test_dataset_mask_resize_and_loader(tmp_path):
    ds = make_bmad(tmp_path, 'Brain')
    ss = find_samples(ds, splits=['test'])
    a, b = AnomalyDataset(ss, image_size=8), AnomalyDataset(ss, image_size=8, mask_mode='nearest')
    assert a[3]['mask'].sum() == 16 and b[3]['mask'].sum() == 16  # the centre block, 1/4 of the image
    assert a[0]['mask'].sum() == 0 and a[0]['label'] == 0
    assert AnomalyDataset(ss, image_size=None)[3]['image'].shape == (1, 24, 24)
    batch = next(iter(torch.utils.data.DataLoader(a, batch_size=4)))
    assert batch['image'].shape == (4, 1, 8, 8) and batch['label'].tolist() == [0, 0, 1, 1]
    assert len(AnomalyDataset.from_folder(tmp_path / 'Brain', image_size=8)) == 10
    with pytest.raises(ValueError, match='mask_mode'): AnomalyDataset(ss, mask_mode='cubic')

# ---------------------------------------------------------------- NIfTI and the embedded MRI
def _nifti(path, vol, affine=np.diag([0.5, 0.5, 2., 1.])):
    "Write a NIfTI file through nibabel (read_nifti's reader)."
    nib = pytest.importorskip('nibabel', reason='read_nifti needs the volumes extra (pip install "mtlmad[volumes]")')
    nib.save(nib.Nifti1Image(vol, affine), str(path))
    return path

@pytest.mark.parametrize('dtype', ['u1', 'i2', 'f4', 'u2'])
def test_read_nifti(tmp_path, dtype):
    vol = np.arange(2 * 3 * 4).reshape(2, 3, 4).astype(dtype)
    data, sp = read_nifti(_nifti(tmp_path / 'v.nii.gz', vol))
    np.testing.assert_array_equal(data, vol); assert sp == (0.5, 0.5, 2.0)
    # stored in another axis order (x flipped, y and z swapped): read back in RAS order
    data, sp = read_nifti(_nifti(tmp_path / 'w.nii', vol, np.array([[-0.5, 0, 0, 0], [0, 0, 2., 0], [0, 0.5, 0, 0], [0, 0, 0, 1]])))
    np.testing.assert_array_equal(data, vol[::-1].transpose(0, 2, 1)); assert sp == (0.5, 2.0, 0.5)

def test_read_nifti_errors(tmp_path):
    raw = _nifti(tmp_path / 'v.nii', np.zeros((2, 2, 2), np.uint8)).read_bytes()
    (tmp_path / 't.nii').write_bytes(raw[:-3])
    with pytest.raises(ValueError, match=r't\.nii: the header describes \(2, 2, 2\) voxels .* truncated or its header is wrong'): read_nifti(tmp_path / 't.nii')
    (tmp_path / 's.nii').write_bytes(b'123')
    with pytest.raises(ValueError, match=r's\.nii: cannot be read as NIfTI'): read_nifti(tmp_path / 's.nii')
    _nifti(tmp_path / 'cine.nii', np.zeros((2, 2, 2, 3), np.uint8))
    with pytest.raises(ValueError, match=r'cine\.nii: a 4-D image'): read_nifti(tmp_path / 'cine.nii')
    with pytest.raises(FileNotFoundError, match='no such NIfTI file'): read_nifti(tmp_path / 'missing.nii')

@pytest.fixture(scope='module')
def mri(): return load_brain_mri()

def test_embedded_mri(mri):
    import mtlmad.datasets as mdl
    f = Path(mdl.__file__).parent / 'data' / 'brain_mri.npz'
    assert f.is_file() and f.stat().st_size < 5e6
    assert (f.parent / 'LICENSE-colin27.txt').read_text().count('Chris Rorden') == 1
    assert mri.slices.dtype == np.float32 and mri.masks.dtype == bool and mri.slices.shape == mri.masks.shape
    assert 120 <= len(mri) <= 145 and np.all(np.diff(mri.z) == 1) and mri.spacing == (1.0, 1.0, 1.0)
    assert 0 <= mri.slices.min() and mri.slices.max() <= 1
    mid = mri.masks[len(mri) // 2]
    assert mid.mean() > 0.2 and not mid[0].any() and not mid[-1].any()  # brain in the middle, not at the edges
    rows = np.flatnonzero(mid.any(1))  # upright: the brain's front-back axis runs down the rows (taller than wide)
    assert np.ptp(rows) > np.ptp(np.flatnonzero(mid.any(0)))

@pytest.mark.skipif(not Path('/usr/share/mricron/templates/ch2bet.nii.gz').exists(), reason='mricron-data not installed')
def test_rebuild_equals_shipped(tmp_path, mri):
    import mtlmad.datasets as mdl
    out = build_brain_mri(out=tmp_path / 'b.npz')
    shipped = Path(mdl.__file__).parent / 'data' / 'brain_mri.npz'
    assert hashlib.sha256(out.read_bytes()).digest() == hashlib.sha256(shipped.read_bytes()).digest()

# ---------------------------------------------------------------- the demo dataset
def stand_in_paste(image, brain_mask, rng, area_frac=None, kind=None, oedema=None, mass_effect=None):
    "A disc inside the brain, for tests only (the real lesion maker is mtlmad.lesions)."
    frac = area_frac if area_frac is not None else rng.uniform(0.005, 0.05)
    ys, xs = np.nonzero(brain_mask); k = rng.integers(len(ys))
    r = max(1.0, np.sqrt(frac * brain_mask.sum() / np.pi))
    yy, xx = np.mgrid[:image.shape[0], :image.shape[1]]
    m = ((yy - ys[k]) ** 2 + (xx - xs[k]) ** 2 <= r * r) & brain_mask
    return np.where(m, 0.95, image).astype(np.float32), m

def test_slab_split():
    a = slab_split(133)
    assert Counter(a) == {'train': 84, 'test': 20, 'valid': 15, 'gap': 14}
    with pytest.raises(ValueError, match='too few'): slab_split(20)

def test_make_demo_data(tmp_path):
    root = make_demo_data(tmp_path / 'demo', image_size=32, seed=3, paste_fn=stand_in_paste)
    man = json.loads((root / 'dataset.json').read_text())
    assert man['counts'] == {'test/Ungood': 40, 'test/good': 20, 'train/good': 84, 'valid/Ungood': 15, 'valid/good': 15}
    assert man['seed'] == 3 and man['dataset'] == 'BrainMRI-demo'
    ss = find_samples(root)
    assert {f'{s.split}/{s.category}': n for (s, n) in [(s, 1) for s in ss]} and len(ss) == 174
    assert {s.dataset for s in ss} == {'BrainMRI-demo'}
    assert all((s.mask_path is not None) == (s.label == 1) for s in ss)
    assert all('/img/' in s.path for s in ss if s.split != 'train') and all('/img/' not in s.path for s in ss if s.split == 'train')
    # no held-out slice, and no neighbour of one, in training; every level of the brain seen in training
    train, held = set(man['z']['train']), set(man['z']['valid'] + man['z']['test'])
    assert not train & {z + d for z in held for d in (-1, 0, 1)}
    assert min(train) < min(held) and max(train) > max(held)
    assert all(read_mask(s.mask_path).any() for s in ss if s.label)
    sizes = [u['mask_pixels'] for u in man['ungood']]
    assert max(sizes) > 4 * min(sizes)  # lesions of varied size
    assert read_image(ss[0].path).shape == (32, 32)
    # seeded and reproducible
    again = make_demo_data(tmp_path / 'again', image_size=32, seed=3, paste_fn=stand_in_paste)
    other = make_demo_data(tmp_path / 'other', image_size=32, seed=4, paste_fn=stand_in_paste)
    f = 'test/Ungood/img/' + Path([s for s in ss if s.split == 'test' and s.label][0].path).name
    assert (root / f).read_bytes() == (again / f).read_bytes() != (other / f).read_bytes()
    # refuses a non-empty folder unless told, and then removes only what it writes
    with pytest.raises(FileExistsError, match='demo: folder is not empty'): make_demo_data(root, paste_fn=stand_in_paste)
    (root / 'keep.txt').write_text('mine')
    make_demo_data(root, image_size=16, paste_fn=stand_in_paste, overwrite=True)
    assert (root / 'keep.txt').exists() and read_image(root / 'train' / 'good' / Path(ss[0].path).name).shape == (16, 16)

def test_demo_rejects_empty_lesion(tmp_path):
    blank = lambda image, brain_mask, rng, **kw: (image, np.zeros_like(brain_mask))
    with pytest.raises(RuntimeError, match='empty mask'): make_demo_data(tmp_path / 'd', image_size=16, paste_fn=blank)
