"Tests of mtlmad.baselines: shapes, seeding, error messages and a sanity check on a planted anomaly (tiny tensors)."
import numpy as np
import pytest
import torch

from mtlmad.baselines import BASELINES, CalibratedLookupBaseline, fit_baseline, evaluate_baseline, top_mean, ssim_map
from mtlmad.metrics import image_auroc

NAMES = sorted(BASELINES)
S = 32


@pytest.fixture(autouse=True, scope='module')
def _one_thread():
    "Tiny tensors gain nothing from threads, and spinning threads stall on a busy machine."
    n = torch.get_num_threads(); torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _normals(n=8, seed=0):
    "Constant-ish images: a flat grey disc on black plus a little noise."
    g = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.arange(S), torch.arange(S), indexing='ij')
    disc = (((yy - S / 2) ** 2 + (xx - S / 2) ** 2) < (S / 2.5) ** 2).float() * 0.4
    return (disc + 0.02 * torch.rand(n, 1, S, S, generator=g)).clamp(0, 1)


def _fit(name, x, epochs=2, **kw):
    return fit_baseline(name, x, epochs=epochs, batch_size=4, device='cpu', progress=False, **kw)


def test_registry():
    assert NAMES == ['autoencoder', 'deepsvdd']


@pytest.mark.parametrize('name', NAMES)
def test_fit_and_score_shapes(name):
    x = _normals()
    b = _fit(name, x)
    assert len(b.history) == 2 and all(np.isfinite(b.history))
    assert 20_000 < b.n_params < 400_000
    scores, maps = b.score(x[:3], batch_size=2)
    assert scores.shape == (3,) and maps.shape == (3, S, S)
    assert scores.dtype.kind == 'f' and maps.dtype.kind == 'f'
    assert (maps >= 0).all() and np.isfinite(maps).all()
    np.testing.assert_allclose(scores, top_mean(maps), rtol=1e-6)


@pytest.mark.parametrize('name', NAMES)
def test_seeded_fit_is_reproducible(name):
    x = _normals()
    a, b = _fit(name, x, seed=3), _fit(name, x, seed=3)
    assert a.history == b.history
    np.testing.assert_array_equal(a.score(x)[1], b.score(x)[1])
    c = _fit(name, x, seed=4)
    assert not np.array_equal(a.score(x)[1], c.score(x)[1])


@pytest.mark.parametrize('name', NAMES)
def test_bright_square_scores_higher(name):
    x = _normals(12)
    b = _fit(name, x, epochs=6, lr=3e-3)
    test = _normals(4, seed=1)
    bad = test.clone(); bad[:, :, 8:16, 8:16] = 1.0
    s_norm, _ = b.score(test)
    s_bad, m_bad = b.score(bad)
    assert s_bad.min() > s_norm.max()
    inside, outside = m_bad[:, 8:16, 8:16].mean(), m_bad[:, 20:, 20:].mean()
    assert inside > outside  # the map points at the square


def test_unknown_name_and_cutpaste():
    x = _normals(2)
    with pytest.raises(ValueError, match='known baselines'): fit_baseline('vae', x, progress=False)
    with pytest.raises(ValueError, match='cutpaste'): fit_baseline('cutpaste', x, progress=False)


@pytest.mark.parametrize('bad, exc, msg', [
    (torch.rand(4, S, S), ValueError, r'\(N, C, S, S\)'),
    (torch.rand(4, 1, S, S + 2), ValueError, 'square'),
    (torch.rand(4, 1, S, S) * 255, ValueError, r'\[0, 1\]'),
    (torch.full((4, 1, S, S), float('nan')), ValueError, 'NaN'),
    (torch.rand(0, 1, S, S), ValueError, 'no images'),
    (np.zeros((4, 1, S, S), np.float32), TypeError, 'torch.Tensor'),
])
def test_bad_training_images(bad, exc, msg):
    with pytest.raises(exc, match=msg): fit_baseline('autoencoder', bad, progress=False, device='cpu')


def test_image_size_must_suit_the_network():
    with pytest.raises(ValueError, match='divisible'): _fit('autoencoder', torch.rand(2, 1, 36, 36), epochs=0)
    with pytest.raises(ValueError, match='divisible'): _fit('deepsvdd', torch.rand(2, 1, 30, 30), epochs=0)


def test_score_checks_shape_and_evaluate():
    x = _normals(6)
    b = _fit('autoencoder', x, epochs=1)
    with pytest.raises(ValueError, match='works on'): b.score(torch.rand(2, 1, 2 * S, 2 * S))
    with pytest.raises(ValueError, match='works on'): b.score(torch.rand(2, 3, S, S))
    masks = np.zeros((6, S, S)); masks[3:, 4:10, 4:10] = 1
    r = evaluate_baseline(b, x, masks, [0, 0, 0, 1, 1, 1])
    assert {'image_auroc', 'pixel_auroc', 'aupro'} <= set(r) and all(0 <= v <= 1 for v in r.values())
    with pytest.raises(ValueError, match='do not match'): evaluate_baseline(b, x, masks[:, :8], [0, 0, 0, 1, 1, 1])


def test_ssim_and_top_mean():
    x = torch.rand(2, 1, 16, 16)
    torch.testing.assert_close(ssim_map(x, x), torch.ones_like(x), atol=1e-5, rtol=0)
    m = np.zeros((2, 10, 10), np.float32); m[1, :2, :2] = 4
    np.testing.assert_allclose(top_mean(m, 0.04), [0, 4])
    with pytest.raises(ValueError, match='frac'): top_mean(m, 1.5)


# --- lookup: mtlmad's per-location calibration applied to the raw intensity, no learning ---

def _tissue(n, seed=0, flat_right=False):
    "Tissue over the whole image: grey 0.3-0.5 plus pixel noise; `flat_right`: grey 0.4, no noise on the right half."
    g = torch.Generator().manual_seed(seed)
    level = 0.4 if flat_right else 0.3 + 0.2 * torch.rand(n, 1, 1, 1, generator=g)
    noise = 0.02 * torch.randn(n, 1, S, S, generator=g)
    if flat_right: noise[..., S // 2:] = 0
    return (level + noise).clamp(0, 1)


def _bump(x, v, cols):
    x = x.clone(); x[:, :, 14:18, cols] += v
    return x


def test_lookup_is_mtlmads_scoring_of_the_intensity():
    "The lookup scores the intensity as mtlmad scored a part up to 0.2.14: maxima at 0.5 and 4 px at full resolution, added up (its measured recipe)."
    from mtlmad.calibration import calibrated_errors, foreground_masks, image_thumbs, make_reference
    from mtlmad.ops import gaussian_blur
    train, test = _tissue(16), _tissue(5, seed=1)
    b = fit_baseline('lookup', train)
    assert (b.floor, b.k, b.n_params) == (0.05, 10, 0)
    ref = make_reference({'i': train.mean(1).numpy()}, image_thumbs(train), foreground_masks(train), floor=0.05)
    assert b.score_sigma == (0.5, 4.0)
    maps, scores, _ = calibrated_errors({'i': test.mean(1).numpy()}, test, ref, k=10, score_sigma=(0.5, 4.0), shrink=1)   # at full resolution
    s, m = b.score(test, batch_size=2)
    np.testing.assert_allclose(s, scores['i'], rtol=1e-5)
    np.testing.assert_allclose(m, gaussian_blur(maps['i'], 2.0), rtol=1e-5, atol=1e-5)


def test_lookup_bright_disc_scores_above_clean_images():
    b = fit_baseline('lookup', _tissue(16))
    clean = _tissue(6, seed=1)
    yy, xx = torch.meshgrid(torch.arange(S), torch.arange(S), indexing='ij')
    disc = clean.clone(); disc[:, :, (yy - 10) ** 2 + (xx - 20) ** 2 < 9] += 0.25
    s_clean, _ = b.score(clean)
    s_disc, m_disc = b.score(disc.clamp(0, 1))
    assert s_disc.min() > s_clean.max()
    assert m_disc[:, 10, 20].min() > m_disc[:, 24, 8].max()   # the map points at the disc
    dark = clean.clone(); dark[:, :, (yy - 10) ** 2 + (xx - 20) ** 2 < 9] -= 0.25
    assert b.score(dark)[0].max() <= s_clean.max() + 1       # one-sided: darker is not scored
    two = fit_baseline('lookup', _tissue(16), two_sided=True)
    assert two.score(dark)[0].min() > two.score(clean)[0].max()


def test_lookup_chooses_its_floor_on_validation():
    train = _tissue(16, flat_right=True)
    labels = [0] * 6 + [1] * 6
    # A: the anomalies are a faint change where the normals agree exactly: only a small floor sees it
    valid_a = torch.cat([_tissue(6, 3, True), _bump(_tissue(6, 4, True), 0.003, slice(22, 26))])
    # B: the normals carry that faint change, the anomalies are bright patches on the noisy side:
    # a small floor flags the normals
    valid_b = torch.cat([_bump(_tissue(6, 5, True), 0.003, slice(22, 26)),
                         _bump(_tissue(6, 6, True), 0.15, slice(6, 10))])
    a = fit_baseline('lookup', train, valid=(valid_a, labels))
    b = fit_baseline('lookup', train, valid=(valid_b, labels))
    assert set(a.valid_auroc) == set(a.floors) == {0.01, 0.02, 0.05, 0.1}
    assert (a.floor, b.floor) == (0.02, 0.1)        # ties go to the larger floor
    assert a.valid_auroc[0.02] == 1 > a.valid_auroc[0.1] and b.valid_auroc[0.1] == 1 > b.valid_auroc[0.01]
    for f in a.floors:   # each recorded AUROC is that of the lookup built with that floor, scored on the validation split
        s = fit_baseline('lookup', train, floor=f).score(valid_a)[0]
        assert a.valid_auroc[f] == pytest.approx(image_auroc(labels, s))
    np.testing.assert_array_equal(a.score(valid_a)[0], fit_baseline('lookup', train, floor=0.02).score(valid_a)[0])
    assert fit_baseline('lookup', train).floor == 0.05   # no validation split: the default


def test_lookup_errors():
    x = _tissue(12)
    with pytest.raises(ValueError, match='at least k=10'): fit_baseline('lookup', x[:5])
    with pytest.raises(ValueError, match='both normal and anomalous'):
        fit_baseline('lookup', x, valid=(x[:4], [0, 0, 0, 0]))
    with pytest.raises(ValueError, match='one label per validation image'): fit_baseline('lookup', x, valid=(x[:4], [0, 1]))
    with pytest.raises(ValueError, match="only 'lookup'"): fit_baseline('nearest', x, valid=(x[:4], [0, 0, 1, 1]))
    with pytest.raises(ValueError, match='the normals are'): fit_baseline('lookup', x).score(torch.rand(2, 1, 16, 16))
    with pytest.raises(RuntimeError, match='fit'): CalibratedLookupBaseline().score(x)
    masks = np.zeros((4, S, S)); masks[2:, 4:10, 4:10] = 1
    r = evaluate_baseline(fit_baseline('lookup', x), x[:4], masks, [0, 0, 1, 1])
    assert {'image_auroc', 'pixel_auroc', 'aupro'} <= set(r)
