"Tests of mtlmad.lesions: evaluation lesions pasted into brain slices."
import numpy as np
import pytest
from scipy import ndimage as ndi

from mtlmad.lesions import paste_lesion, brain_phantom, LESION_KINDS, AREA_RANGE


@pytest.fixture(scope='module')
def brain():
    return brain_phantom(96)


def test_output_types_and_mask_inside_brain(brain):
    img, bm = brain
    for s in range(12):
        out, m = paste_lesion(img, bm, np.random.default_rng(s))
        assert out.shape == img.shape and out.dtype == np.float32 and m.dtype == bool
        assert 0 <= out.min() and out.max() <= 1
        assert m.sum() > 0
        assert not (m & ~bm).any(), 'lesion leaks outside the brain mask'
        assert (out[~bm] == img[~bm]).all(), 'background changed'


@pytest.mark.parametrize('frac', [0.002, 0.01, 0.05])
def test_area_close_to_requested(brain, frac):
    img, bm = brain
    for s in range(4):
        _, m = paste_lesion(img, bm, np.random.default_rng(s), area_frac=frac)
        ratio = m.sum() / (frac * bm.sum())
        assert 0.6 < ratio < 1.5, ratio


def test_drawn_area_in_range(brain):
    img, bm = brain
    fr = [paste_lesion(img, bm, np.random.default_rng(s))[1].sum() / bm.sum() for s in range(20)]
    assert AREA_RANGE[0] * 0.5 < min(fr) and max(fr) < AREA_RANGE[1] * 1.5
    assert max(fr) / min(fr) > 3  # sizes actually vary


def test_mask_is_exactly_the_changed_pixels_without_mass_effect(brain):
    _, bm = brain
    flat = np.where(bm, 0.5, 0).astype(np.float32)
    for kind in LESION_KINDS:
        for oedema in (False, True):
            out, m = paste_lesion(flat, bm, np.random.default_rng(1), area_frac=0.02, kind=kind, oedema=oedema, mass_effect=False)
            np.testing.assert_array_equal(out != flat, m)


def test_contrast_sign_and_size(brain):
    _, bm = brain
    flat = np.where(bm, 0.5, 0).astype(np.float32)
    for kind, sign in (('hyper', 1), ('hypo', -1)):
        out, m = paste_lesion(flat, bm, np.random.default_rng(2), area_frac=0.03, kind=kind, oedema=False, mass_effect=False)
        core = ndi.binary_erosion(m, iterations=2)
        d = sign * (out[core] - 0.5).mean()
        assert 0.2 < d < 0.5, d


def test_oedema_is_milder_than_core(brain):
    _, bm = brain
    flat = np.where(bm, 0.5, 0).astype(np.float32)
    out, m = paste_lesion(flat, bm, np.random.default_rng(4), area_frac=0.04, kind='hyper', oedema=True, mass_effect=False)
    diff = out[m] - 0.5
    assert (diff > 0).all()
    assert np.quantile(diff, 0.9) > 0.2 and np.quantile(diff, 0.2) < 0.2  # strong core, mild ring


def test_mass_effect_moves_tissue_outside_mask(brain):
    img, bm = brain
    a, ma = paste_lesion(img, bm, np.random.default_rng(5), area_frac=0.04, mass_effect=False)
    b, mb = paste_lesion(img, bm, np.random.default_rng(5), area_frac=0.04, mass_effect=True)
    np.testing.assert_array_equal(ma, mb)  # same draw, same lesion
    assert (a[~ma] == img[~ma]).all()
    assert (b[~mb] != img[~mb]).any()
    assert (b[~bm] == img[~bm]).all()


def test_reproducible_and_seeds_differ(brain):
    img, bm = brain
    a = paste_lesion(img, bm, np.random.default_rng(11))
    b = paste_lesion(img, bm, np.random.default_rng(11))
    c = paste_lesion(img, bm, np.random.default_rng(12))
    np.testing.assert_array_equal(a[0], b[0]); np.testing.assert_array_equal(a[1], b[1])
    assert not np.array_equal(a[1], c[1])


def test_input_not_modified(brain):
    img, bm = brain
    keep = img.copy()
    paste_lesion(img, bm, np.random.default_rng(0), mass_effect=True)
    np.testing.assert_array_equal(img, keep)


def test_errors(brain):
    img, bm = brain
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match='differs from image shape'): paste_lesion(img, bm[:50], rng)
    with pytest.raises(ValueError, match='empty or too small'): paste_lesion(img, np.zeros_like(bm), rng)
    tiny = np.zeros_like(bm); tiny[40:52, 40:52] = True
    with pytest.raises(ValueError, match='too small for area_frac'): paste_lesion(img, tiny, rng, area_frac=0.25)
    with pytest.raises(ValueError, match='not one of'): paste_lesion(img, bm, rng, kind='cyst')
    with pytest.raises(ValueError, match=r'\(0, 0.25\]'): paste_lesion(img, bm, rng, area_frac=0)
    with pytest.raises(ValueError, match='2-D'): paste_lesion(img[None], bm[None], rng)
    with pytest.raises(ValueError, match='NaN'): paste_lesion(np.full(img.shape, np.nan), bm, rng)
    with pytest.raises(TypeError, match='numpy Generator'): paste_lesion(img, bm, 0)


def test_real_slices_if_available():
    try:
        from mtlmad.datasets import load_brain_mri
        mri = load_brain_mri()
    except (ImportError, FileNotFoundError):
        pytest.skip('embedded brain MRI not available')
    i = len(mri.slices) // 2
    out, m = paste_lesion(mri.slices[i], mri.masks[i], np.random.default_rng(0), area_frac=0.01)
    assert m.any() and not (m & ~mri.masks[i]).any()
    assert 0.6 < m.sum() / (0.01 * mri.masks[i].sum()) < 1.5
