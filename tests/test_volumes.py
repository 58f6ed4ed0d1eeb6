"""Volumes end to end: bad inputs fail with errors naming the file and write nothing, maps go back over the scan
(same affine, same grid), and the command line trains on a folder of volumes and scores NIfTI and DICOM."""
import json
import sys

import numpy as np
import pytest

nib = pytest.importorskip('nibabel', reason='the volumes extra is not installed (pip install "mtlmad[volumes]")')
pytest.importorskip('pydicom', reason='the volumes extra is not installed (pip install "mtlmad[volumes]")')

from mtlmad.cli import main
from mtlmad.volumes import (MissingExtraError, read_volume, write_map, write_atomic, write_dicom_series,
                            predict_volume, volume_slices)


def head(shape=(24, 28, 20), seed=0):
    "A noisy ellipsoid of 'tissue' on a dark background, float32."
    g = np.stack(np.meshgrid(*[np.linspace(-1, 1, n) for n in shape], indexing='ij'))
    inside = ((g / 0.8) ** 2).sum(0) < 1
    return (np.where(inside, 100., 5.) + np.random.default_rng(seed).normal(0, 3, shape)).astype(np.float32)


def save(path, data, affine=None):
    nib.save(nib.Nifti1Image(data, np.diag([1., 1., 1., 1.]) if affine is None else affine), path)
    return path


# ---- bad inputs: one clear error naming the file ------------------------------------------------------------

def test_4d_and_2d_nifti(tmp_path):
    with pytest.raises(ValueError, match=r'cine\.nii\.gz: a 4-D image of shape \(6, 6, 6, 3\)'):
        read_volume(save(tmp_path / 'cine.nii.gz', np.zeros((6, 6, 6, 3), np.float32)))
    with pytest.raises(ValueError, match=r'flat\.nii: a 2-D image'):
        read_volume(save(tmp_path / 'flat.nii', np.zeros((6, 6), np.float32)))
    with pytest.raises(ValueError, match=r'one\.nii\.gz: shape \(6, 6, 1\) is a single slice'):
        read_volume(save(tmp_path / 'one.nii.gz', np.zeros((6, 6, 1), np.float32)))
    assert read_volume(save(tmp_path / 't1.nii.gz', head()[..., None])).shape == (24, 28, 20)  # (X,Y,Z,1) is one scan


def test_singular_affine(tmp_path):
    img = nib.Nifti1Image(head(), np.eye(4))
    bad = np.diag([1., 1., 0., 1.])
    img.set_sform(bad, code=2); img.set_qform(None, code=0)
    nib.save(img, tmp_path / 'flat_affine.nii.gz')
    with pytest.raises(ValueError, match=r'flat_affine\.nii\.gz: the affine .* is singular'):
        read_volume(tmp_path / 'flat_affine.nii.gz')


def test_header_that_lies_about_the_data_size(tmp_path):
    p = save(tmp_path / 'short.nii', head())
    raw = p.read_bytes()
    p.write_bytes(raw[:len(raw) // 2])  # the header still promises every voxel
    with pytest.raises(ValueError, match=r'short\.nii: the header describes \(24, 28, 20\) voxels .* truncated or its header is wrong'):
        read_volume(p)


def test_nan_and_not_a_volume(tmp_path):
    d = head(); d[3, 4, 5] = np.nan
    with pytest.raises(ValueError, match=r'nan\.nii\.gz: 1 voxels are NaN or infinite'):
        read_volume(save(tmp_path / 'nan.nii.gz', d))
    (tmp_path / 'junk.nii.gz').write_bytes(b'not a nifti at all' * 30)
    with pytest.raises(ValueError, match=r'junk\.nii\.gz: cannot be read as NIfTI'):
        read_volume(tmp_path / 'junk.nii.gz')
    with pytest.raises(FileNotFoundError, match='missing.nii.gz: no such NIfTI file'):
        read_volume(tmp_path / 'missing.nii.gz')


def test_dicom_two_series_and_missing_slices(tmp_path):
    vol = head().astype(np.int16)
    write_dicom_series(tmp_path / 'mixed', vol, prefix='a')
    write_dicom_series(tmp_path / 'mixed', vol, prefix='b')
    with pytest.raises(ValueError, match=r'mixed: holds 2 DICOM series; put each series in its own folder'):
        read_volume(tmp_path / 'mixed')
    write_dicom_series(tmp_path / 'gappy', vol, (1., 1., 2.5), skip=(7,))
    with pytest.raises(ValueError, match=r'gappy: slices are not evenly spaced: 5\.00 mm between slice_006\.dcm and slice_008\.dcm where the others are 2\.50 mm apart \(missing slices'):
        read_volume(tmp_path / 'gappy')
    write_dicom_series(tmp_path / 'mixed_grid', vol, (1., 1., 2.), series_uid='1.2.3.4', skip=tuple(range(10, 20)))
    write_dicom_series(tmp_path / 'mixed_grid', vol, (0.5, 0.5, 2.), series_uid='1.2.3.4', skip=tuple(range(10)), prefix='z')
    with pytest.raises(ValueError, match=r'mixed_grid.*pixel spacing \[0\.5, 0\.5\] differs from the other slices'):
        read_volume(tmp_path / 'mixed_grid')
    (tmp_path / 'empty').mkdir(); (tmp_path / 'empty' / 'notes.txt').write_text('no images')
    with pytest.raises(ValueError, match=r'empty: no DICOM file here'):
        read_volume(tmp_path / 'empty')


def test_missing_extra_names_the_pip_command(tmp_path, monkeypatch, capsys):
    p = save(tmp_path / 'scan.nii.gz', head())
    monkeypatch.setitem(sys.modules, 'nibabel', None)
    with pytest.raises(MissingExtraError, match=r'pip install "mtlmad\[volumes\]"'):
        read_volume(p)
    assert main(['predict', '--run', str(tmp_path / 'run'), str(p), '--out', str(tmp_path / 'out')]) == 2
    assert 'pip install "mtlmad[volumes]"' in capsys.readouterr().err


def test_nothing_written_half(tmp_path, capsys):
    d = head(); d[0, 0, 0] = np.inf
    bad = save(tmp_path / 'bad.nii.gz', d)
    assert main(['predict', '--run', str(tmp_path / 'run'), str(bad), '--out', str(tmp_path / 'out')]) == 2
    assert 'bad.nii.gz: 1 voxels are NaN or infinite' in capsys.readouterr().err
    assert not (tmp_path / 'out').exists()

    def broken(p):
        p.write_bytes(b'half a fi')
        raise OSError('disk full')
    with pytest.raises(OSError, match='disk full'):
        write_atomic(tmp_path / 'maps' / 'scan_anomaly.nii.gz', broken)
    assert list((tmp_path / 'maps').iterdir()) == []  # neither the file nor its temporary


# ---- round trip: the written map lies over the scan ---------------------------------------------------------

@pytest.mark.parametrize('affine', [np.diag([1., 1., 1., 1.]),
                                    np.array([[0, -2., 0, 10], [-1.5, 0, 0, 20], [0, 0, -3., 30], [0, 0, 0, 1]]),  # axes swapped and flipped
                                    np.array([[0.9, 0.3, 0, -5], [-0.3, 0.9, 0, 7], [0, 0, 1.2, -9], [0, 0, 0, 1]])])  # oblique
def test_map_round_trip(tmp_path, affine):
    src = nib.Nifti1Image(head(), affine)
    src.header.set_xyzt_units('mm', 'sec'); src.set_qform(affine, code=1); src.set_sform(affine, code=2)
    nib.save(src, tmp_path / 'scan.nii.gz')
    vol = read_volume(tmp_path / 'scan.nii.gz')
    marker = np.zeros(vol.shape, np.float32); marker[2, 3, 4] = 1  # one RAS voxel
    out = nib.load(write_map(vol, marker, tmp_path / 'map.nii.gz'))
    scan = nib.load(tmp_path / 'scan.nii.gz')
    assert out.shape == scan.shape
    np.testing.assert_allclose(out.affine, scan.affine, atol=1e-5)
    assert (int(out.header['sform_code']), int(out.header['qform_code'])) == (2, 1)
    assert out.header.get_xyzt_units() == scan.header.get_xyzt_units()
    # the marked voxel is at the same place in the world on either grid
    ijk = np.argwhere(np.asarray(out.dataobj) == 1)[0]
    np.testing.assert_allclose(out.affine @ [*ijk, 1], vol.affine @ [2, 3, 4, 1], atol=1e-4)


def test_dicom_in_nifti_out_geometry(tmp_path):
    vol = head((10, 12, 8)).astype(np.int16)
    write_dicom_series(tmp_path / 'series', vol, (0.8, 0.5, 2.0))
    v = read_volume(tmp_path / 'series')
    assert v.kind == 'dicom'
    img = nib.load(write_map(v, v.data, tmp_path / 'series_map.nii.gz'))
    assert img.shape == vol.shape
    # pixel (row r, column c) of slice k lies at IPP + c * 0.8 along x + r * 0.5 along y (LPS) = (-x, -y) in RAS
    c, r, k = 3, 5, 4
    np.testing.assert_allclose(img.affine @ [c, r, k, 1], [-c * 0.8, -r * 0.5, k * 2.0, 1], atol=1e-5)
    np.testing.assert_allclose(np.asarray(img.dataobj), v.to_source(v.data), atol=1e-6)


# ---- the command line, with a real (tiny) run ---------------------------------------------------------------

@pytest.fixture(scope='module')
def tiny_run(tmp_path_factory):
    "A one-epoch run trained with `mtlmad train --data FOLDER_OF_VOLUMES` (32 px, narrow)."
    tmp = tmp_path_factory.mktemp('vol_run')
    (tmp / 'normals').mkdir()
    for i in range(2): save(tmp / 'normals' / f'n{i}.nii.gz', head((40, 44, 36), seed=i))
    rc = main(['train', '--data', str(tmp / 'normals'), '--out', str(tmp / 'run'), '--epochs', '1', '--image-size', '32',
               '--width', '8', '--experts', '2', '--device', 'cpu'])
    assert rc == 0
    return tmp


def test_train_on_a_folder_of_volumes(tiny_run):
    man = json.loads((tiny_run / 'run' / 'data' / 'dataset.json').read_text())
    assert [v['volume'].endswith(f'n{i}.nii.gz') for i, v in enumerate(man['volumes'])] == [True, True]
    for v in man['volumes']:  # the slab rule inside each volume
        assert v['valid'] and not set(v['train']) & {k + d for k in v['valid'] for d in (-1, 0, 1)}
    assert json.loads((tiny_run / 'run' / 'run.json').read_text())['calibration'] == 'valid split normals'


def test_predict_nifti_and_dicom(tiny_run, capsys):
    t = tiny_run
    save(t / 'scan.nii.gz', head((40, 44, 36), seed=5), np.array([[0, -1., 0, 3], [1., 0, 0, 4], [0, 0, 1.5, 5], [0, 0, 0, 1]]))
    write_dicom_series(t / 'series', head((40, 44, 36), seed=6).astype(np.int16), (1., 1., 2.))
    rc = main(['predict', '--run', str(t / 'run'), str(t / 'scan.nii.gz'), str(t / 'series'), '--out', str(t / 'pred'), '--task-maps'])
    assert rc == 0
    out = capsys.readouterr().out
    assert 'scan.nii.gz: volume score' in out and '(DICOM in, NIfTI out)' in out
    for stem, src in (('scan', nib.load(t / 'scan.nii.gz')), ('series', None)):
        amap = nib.load(t / 'pred' / f'{stem}_anomaly.nii.gz')
        if src is not None:
            assert amap.shape == src.shape and np.allclose(amap.affine, src.affine)
        assert np.isfinite(np.asarray(amap.dataobj)).all()
        info = json.loads((t / 'pred' / f'{stem}_scores.json').read_text())
        assert len(info['slice_scores']) == 36 and np.isfinite(info['score']) and info['axis'] == 'axial'
        assert info['kind'] == ('dicom' if stem == 'series' else 'nifti')
        tasks = sorted(p.name for p in (t / 'pred').glob(f'{stem}_*.nii.gz'))
        assert len(tasks) == 1 + len(info['task_slice_scores'])
    assert not [p for p in (t / 'pred').iterdir() if '.tmp-' in p.name]
