"""Tests for mtlmad.lgg: the kaggle_3m patient table, folds by patient, the BMAD Brain builder and `mtlmad make-data --from lgg`.

Always run on fake patients written here in the kaggle_3m layout; one test reads the real copy in shared/ (or $MTLMAD_LGG)
and skips without it."""
import json, os
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mtlmad.cli import main
from mtlmad.datasets import find_samples
from mtlmad.lgg import head_fractions, lgg_folds, lgg_patients, lgg_split, make_lgg_data, read_patient

ROOT = Path(__file__).resolve().parents[1]
REAL = Path(os.environ.get('MTLMAD_LGG', ROOT.parent / 'shared' / 'data' / 'lgg_mri' / 'kaggle_3m'))
SITES = ('CS', 'CS', 'DU', 'DU', 'DU', 'HT', 'HT')
N_SLICES, TUMOUR = 8, (1, 4, 5)   # slice 1 is nearly empty and holds a tumour; slice 8 is nearly empty and normal


# ---------------------------------------------------------------- fake kaggle_3m folders
def write_patient(root, folder, n=N_SLICES, tumour=TUMOUR, size=32, seed=0) -> Path:
    "A patient folder: RGB TIFFs whose FLAIR channel (1) holds a bright disc (small on slices 1 and n), square tumours in the masks."
    d = Path(root) / folder; d.mkdir(parents=True, exist_ok=True)
    rng, (yy, xx) = np.random.default_rng(seed), np.mgrid[:size, :size]
    for i in range(1, n + 1):
        head = np.hypot(yy - size / 2, xx - size / 2) < size * (0.1 if i in (1, n) else 0.4)
        flair = np.where(head, rng.integers(120, 200, (size, size)), rng.integers(0, 5, (size, size))).astype(np.uint8)
        Image.fromarray(np.dstack([rng.integers(0, 256, (size, size), dtype=np.uint8), flair, 255 - flair])).save(d / f'{folder}_{i}.tif')
        m = np.zeros((size, size), np.uint8)
        if i in tumour: m[12:18, 12:18] = 255
        Image.fromarray(m).save(d / f'{folder}_{i}_mask.tif')
    return d


def folder_name(k, site): return f'TCGA_{site}_{6000 + k}_1999010{k % 9 + 1}'


@pytest.fixture
def kaggle(tmp_path) -> Path:
    "A fake kaggle_3m folder: 7 patients from 3 sites, 8 slices each, with the README.md and data.csv of a download."
    root = tmp_path / 'kaggle_3m'
    for k, s in enumerate(SITES): write_patient(root, folder_name(k, s), seed=k)
    (root / 'README.md').write_text('LGG segmentation dataset'); (root / 'data.csv').write_text('Patient,RNASeqCluster\n')
    return root


def manifest(out: Path) -> dict: return json.loads((out / 'dataset.json').read_text())


def patient_of(path) -> str: return Path(path).stem.rsplit('_', 1)[0]


# ---------------------------------------------------------------- the patient table
def test_patient_table(kaggle):
    pts = lgg_patients(kaggle)
    assert [p.folder for p in pts] == sorted(folder_name(k, s) for k, s in enumerate(SITES))
    assert Counter(p.institution for p in pts) == Counter(SITES)
    assert all([s.index for s in p.slices] == list(range(1, N_SLICES + 1)) for p in pts)
    assert all(Path(s.mask).name == Path(s.image).stem + '_mask.tif' for p in pts for s in p.slices)


def test_slices_in_natural_order(tmp_path):
    write_patient(tmp_path, 'TCGA_FG_7_20000101', n=12)
    assert [s.index for s in lgg_patients(tmp_path)[0].slices] == list(range(1, 13))


def test_table_errors(kaggle, tmp_path):
    with pytest.raises(FileNotFoundError, match='nope: no such folder'): lgg_patients(tmp_path / 'nope')
    with pytest.raises(FileNotFoundError, match=r'no patient folders .*; are they in .*kaggle_3m\?'): lgg_patients(tmp_path)
    p = kaggle / folder_name(0, 'CS')
    (p / f'{p.name}_3_mask.tif').unlink()
    with pytest.raises(FileNotFoundError, match=rf'{p.name}_3\.tif: image without its mask'): lgg_patients(kaggle)
    (p / f'{p.name}_3.tif').rename(p / 'x.tif'); (p / 'x.tif').unlink()
    Image.fromarray(np.zeros((32, 32), np.uint8)).save(p / f'{p.name}_9_mask.tif')
    with pytest.raises(FileNotFoundError, match=rf'{p.name}_9_mask\.tif: mask without its image'): lgg_patients(kaggle)


def test_unreadable_tiff_and_size_mismatch(kaggle):
    p = kaggle / folder_name(2, 'DU')
    (p / f'{p.name}_5.tif').write_bytes(b'not a TIFF at all')
    with pytest.raises(ValueError, match=rf'{p.name}_5\.tif: cannot be read as a TIFF image'): lgg_patients(kaggle)
    write_patient(kaggle, p.name, seed=2)
    Image.fromarray(np.zeros((30, 32), np.uint8)).save(p / f'{p.name}_6_mask.tif')
    with pytest.raises(ValueError, match=rf'{p.name}_6_mask\.tif: mask is 32x30 \(WxH\) but its image {p.name}_6\.tif is 32x32'):
        lgg_patients(kaggle)


def test_stray_files_and_folders(kaggle):
    (kaggle / 'other').mkdir()
    with pytest.raises(ValueError, match='other: not a patient folder'): lgg_patients(kaggle)
    (kaggle / 'other').rmdir()
    p = kaggle / folder_name(1, 'CS')
    (p / 'notes.txt').write_text('x')
    with pytest.raises(ValueError, match=f'notes.txt: not a slice of {p.name}'): lgg_patients(kaggle)


# ---------------------------------------------------------------- reading and the slice rule
def test_flair_channel_unchanged(kaggle):
    p = lgg_patients(kaggle)[0]
    flair, masks = read_patient(p)
    assert flair.dtype == np.uint8 and flair.shape == (N_SLICES, 32, 32)
    assert np.array_equal(flair, np.stack([np.asarray(Image.open(s.image))[..., 1] for s in p.slices]))
    assert masks.any((1, 2)).nonzero()[0].tolist() == [i - 1 for i in TUMOUR]


def test_head_fraction_by_hand():
    v = np.zeros((2, 10, 10), np.uint8); v[0] = 200; v[1] = 15; v[1, :3] = 200   # 99th percentile 200: head above 20
    np.testing.assert_allclose(head_fractions(v), [1.0, 0.3])


# ---------------------------------------------------------------- folds
def test_folds_stratified_and_deterministic(kaggle):
    pts = lgg_patients(kaggle)
    folds = lgg_folds(pts, 3)
    assert set(folds) == {p.folder for p in pts} and sorted(Counter(folds.values()).values()) == [2, 2, 3]
    assert len({folds[p.folder] for p in pts if p.institution == 'DU'}) == 3
    assert lgg_folds(pts[::-1], 3) == folds == lgg_folds(lgg_patients(kaggle), 3)
    assert any(lgg_folds(pts, 3, seed=s) != folds for s in range(1, 6))
    with pytest.raises(ValueError, match='n_folds should be at least 2'): lgg_folds(pts, 1)


@pytest.mark.parametrize('n', [1, 7, 10, 31, 110])
def test_fold_sizes_differ_by_at_most_one(n):
    from mtlmad.lgg import LGGPatient
    pts = [LGGPatient(f'TCGA_{s}_{k}_1', s, '', []) for k, s in enumerate(np.random.default_rng(n).choice(list('ABCDE'), n))]
    sizes = Counter(lgg_folds(pts, 5).values())
    assert max(sizes.values()) - min(sizes[g] for g in range(5)) <= 1


def test_split_errors(kaggle):
    folds = lgg_folds(lgg_patients(kaggle), 3)
    assert Counter(lgg_split(folds, 1, 3).values()) == {'test': Counter(folds.values())[1], 'valid': Counter(folds.values())[2],
                                                        'train': Counter(folds.values())[0]}
    with pytest.raises(ValueError, match=r'fold should be 0\.\.2, got 3'): lgg_split(folds, 3, 3)
    with pytest.raises(ValueError, match='train split would be empty: with n_folds=2'): lgg_split(lgg_folds(lgg_patients(kaggle), 2), 0, 2)


# ---------------------------------------------------------------- the builder
@pytest.mark.parametrize('fold', range(3))
def test_no_patient_in_two_splits(kaggle, tmp_path, fold):
    out = make_lgg_data(kaggle, tmp_path / 'lgg', fold=fold, n_folds=3)
    man, ss = manifest(out), find_samples(out)
    on_disk = {s: {patient_of(x.path) for x in ss if x.split == s} for s in ('train', 'valid', 'test')}
    assert on_disk == {s: set(man['patients'][s]) for s in on_disk}
    assert not (on_disk['train'] & on_disk['valid'] or on_disk['train'] & on_disk['test'] or on_disk['valid'] & on_disk['test'])
    assert set().union(*on_disk.values()) == {folder_name(k, s) for k, s in enumerate(SITES)}
    assert on_disk['test'] == {f for f, g in man['groups'].items() if g == fold}
    assert {x.label for x in ss if x.split == 'train'} == {0}   # no tumour slice in training


def test_every_patient_tested_once(kaggle, tmp_path):
    tested = [p for k in range(3) for p in manifest(make_lgg_data(kaggle, tmp_path / f'f{k}', fold=k, n_folds=3))['patients']['test']]
    assert sorted(tested) == sorted(folder_name(k, s) for k, s in enumerate(SITES))


def test_images_masks_and_counts(kaggle, tmp_path):
    out = make_lgg_data(kaggle, tmp_path / 'lgg', n_folds=3)
    man, ss = manifest(out), find_samples(out)
    assert man['dataset'] == 'LGG-FLAIR' and {s.dataset for s in ss} == {'LGG-FLAIR'}
    assert (man['fold'], man['n_folds'], man['seed'], man['min_head']) == (0, 3, 0, 0.25)
    assert man['source'] == str(kaggle.resolve())
    assert man['counts'] == dict(Counter(f'{s.split}/{s.category}' for s in ss))
    assert {f'{s}/{c}' for s in ('valid', 'test') for c in ('good', 'Ungood')} | {'train/good'} == set(man['counts'])
    n_pat = {s: len(man['patients'][s]) for s in man['patients']}
    assert man['counts']['train/good'] == 4 * n_pat['train']                   # slices 2, 3, 6, 7 of each patient
    assert man['counts']['test/Ungood'] == 2 * n_pat['test'] and man['train_tumour_slices_left_out'] == 2 * n_pat['train']
    pts = {p.folder: p for p in lgg_patients(kaggle)}
    for s in ss:
        a = np.asarray(Image.open(s.path))
        assert a.shape == (32, 32) and a.dtype == np.uint8 and s.path.endswith('.png')
        index = int(Path(s.path).stem.rsplit('_', 1)[1])
        tif = next(x.image for x in pts[patient_of(s.path)].slices if x.index == index)
        assert np.array_equal(a, np.asarray(Image.open(tif))[..., 1])       # the FLAIR channel, not normalised
        if s.label: assert set(np.unique(np.asarray(Image.open(s.mask_path))).tolist()) == {0, 255}
    assert (out / 'train' / 'good').is_dir() and not (out / 'train' / 'good' / 'img').exists()
    assert (out / 'test' / 'Ungood' / 'label').is_dir() and (out / 'valid' / 'good' / 'img').is_dir()


def test_rule_drops_near_empty_slices_of_both_classes(kaggle, tmp_path):
    man = manifest(make_lgg_data(kaggle, tmp_path / 'lgg', n_folds=3))
    dropped = {k: sum(d[k] for d in man['dropped_by_rule'].values()) for k in ('normal', 'tumour')}
    assert dropped == {'normal': len(SITES), 'tumour': len(SITES)}              # slice 8 (normal) and slice 1 (tumour)
    names = {Path(p).name for p in (tmp_path / 'lgg').rglob('*.png')}
    assert not any(n.endswith(('_1.png', '_8.png')) for n in names)
    kept_all = manifest(make_lgg_data(kaggle, tmp_path / 'all', n_folds=3, min_head=0.0))
    assert all(d == {'normal': 0, 'tumour': 0} for d in kept_all['dropped_by_rule'].values())


def test_builder_refusals(kaggle, tmp_path):
    out = make_lgg_data(kaggle, tmp_path / 'lgg', n_folds=3)
    with pytest.raises(FileExistsError, match='lgg: folder is not empty'): make_lgg_data(kaggle, out, n_folds=3)
    (out / 'notes.txt').write_text('mine')
    make_lgg_data(kaggle, out, fold=1, n_folds=3, overwrite=True)
    assert manifest(out)['fold'] == 1 and (out / 'notes.txt').exists()
    images = [p for p in out.rglob('*.png') if p.parent.name != 'label']
    assert len(images) == sum(manifest(out)['counts'].values())                 # nothing of the old fold left
    with pytest.raises(ValueError, match='inside the source folder'): make_lgg_data(kaggle, kaggle / 'out', n_folds=3)
    with pytest.raises(ValueError, match=r'the test split would be empty: group 8 holds no patient \(7 patients for 9 folds\)'):
        make_lgg_data(kaggle, tmp_path / 'x', fold=8, n_folds=9)
    with pytest.raises(ValueError, match='train split would be empty: with n_folds=2'): make_lgg_data(kaggle, tmp_path / 'x', n_folds=2)
    with pytest.raises(ValueError, match=r'train/good would be empty: the slice rule \(min_head=0.99\)'):
        make_lgg_data(kaggle, tmp_path / 'x', n_folds=3, min_head=0.99)
    assert not list((tmp_path / 'x').rglob('*'))                                # a failed build leaves nothing behind


def test_slice_that_cannot_be_decoded(kaggle, tmp_path):
    p = kaggle / folder_name(3, 'DU')
    tif = p / f'{p.name}_6.tif'
    tif.write_bytes(tif.read_bytes()[:-500])                                   # the header reads, the pixels do not
    lgg_patients(kaggle)
    with pytest.raises(ValueError, match=rf'{p.name}_6\.tif: cannot be read as an image'): make_lgg_data(kaggle, tmp_path / 'x', n_folds=3)
    assert not list((tmp_path / 'x').rglob('*'))                                # a failed build leaves nothing behind


def test_cli_make_data_from_lgg(kaggle, tmp_path, capsys):
    assert main(['make-data', '--from', 'lgg', str(kaggle), str(tmp_path / 'lgg'), '--fold', '2', '--n-folds', '3']) == 0
    line = capsys.readouterr().out.strip()
    man = manifest(tmp_path / 'lgg')
    assert man['fold'] == 2 and man['n_folds'] == 3 and '\n' not in line
    assert line.startswith('LGG-FLAIR fold 2 of 3 written to') and f"train {man['counts']['train/good']} good" in line
    assert f"({len(man['patients']['test'])} patients)" in line and 'dropped 7 normal and 7 tumour slices' in line
    assert main(['make-data', '--from', 'lgg', str(kaggle), str(tmp_path / 'lgg'), '--n-folds', '3']) == 2
    assert 'folder is not empty' in capsys.readouterr().err
    assert main(['make-data', '--from', 'lgg', str(kaggle)]) == 2
    assert 'takes two folders' in capsys.readouterr().err


# ---------------------------------------------------------------- the real data
@pytest.mark.skipif(not REAL.is_dir(), reason=f'no LGG kaggle_3m folder at {REAL} (set MTLMAD_LGG)')
def test_real_lgg_folds(tmp_path):
    pts = lgg_patients(REAL)
    assert len(pts) >= 20 and {p.institution for p in pts} >= {'CS', 'DU', 'FG', 'HT'}
    assert all(20 <= len(p) <= 88 for p in pts)
    folds = lgg_folds(pts, 5)
    tested = []
    for k in range(5):
        split = lgg_split(folds, k, 5)
        by = {s: {f for f in split if split[f] == s} for s in ('train', 'valid', 'test')}
        assert not (by['train'] & by['valid'] or by['train'] & by['test'] or by['valid'] & by['test'])
        assert len(by['test']) >= len(pts) // 5 and len(by['train']) >= 3 * (len(pts) // 5)
        tested += by['test']
    assert sorted(tested) == sorted(p.folder for p in pts)                      # every patient in exactly one test fold
    out = make_lgg_data(REAL, tmp_path / 'fold0')
    man, ss = manifest(out), find_samples(out, check='none')
    assert man['counts'] == dict(Counter(f'{s.split}/{s.category}' for s in ss))
    assert man['counts']['train/good'] > 300 and all(man['counts'][k] > 10 for k in man['counts'])
    assert all({patient_of(s.path) for s in ss if s.split == x} == set(man['patients'][x]) for x in ('train', 'valid', 'test'))
    dropped = {k: sum(d[k] for d in man['dropped_by_rule'].values()) for k in ('normal', 'tumour')}
    assert dropped['normal'] > 5 * dropped['tumour']                           # mostly the empty ends, which hold no tumour
