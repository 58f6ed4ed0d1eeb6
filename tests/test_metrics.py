"Tests of mtlmad.metrics against hand-computed cases and scikit-learn."
import numpy as np
import pytest
from sklearn.metrics import roc_auc_score, average_precision_score, precision_recall_curve

from mtlmad.metrics import (image_auroc, pixel_auroc, aupro, pro_curve, roc_points, average_precision, best_f1,
                            best_dice, image_metrics, pixel_metrics, summarise, as_percent, format_summary)


def _sk_best_f1(y, s):
    p, r, _ = precision_recall_curve(y, s)
    return np.max(2 * p * r / np.maximum(p + r, 1e-12))


def test_image_auroc_by_hand():
    assert image_auroc([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8]) == 0.75
    assert image_auroc([0, 1], [0.5, 0.5]) == 0.5
    assert image_auroc([0, 1], [0.9, 0.1]) == 0.0
    assert image_auroc(np.array([False, True]), np.array([1, 2])) == 1.0


@pytest.mark.parametrize('seed', range(5))
def test_image_metrics_match_sklearn(seed):
    rng = np.random.default_rng(seed)
    y = rng.random(200) < 0.4
    s = rng.integers(0, 15, 200) / 15 + y * rng.random() * 0.3  # ties on purpose
    assert image_auroc(y, s) == pytest.approx(roc_auc_score(y, s), abs=1e-12)
    assert average_precision(y, s) == pytest.approx(average_precision_score(y, s), abs=1e-12)
    assert best_f1(y, s) == pytest.approx(_sk_best_f1(y, s), abs=1e-12)


def test_ap_and_f1_by_hand():
    y, s = [1, 0, 1, 0], [0.9, 0.8, 0.7, 0.1]
    assert average_precision(y, s) == pytest.approx(0.5 * 1 + 0.5 * 2 / 3)
    f1, th = best_f1(y, s, return_threshold=True)
    assert f1 == pytest.approx(0.8) and th == 0.7


def test_roc_points():
    c = roc_points([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8])
    np.testing.assert_allclose(c['fpr'], [0, 0, 0.5, 0.5, 1])
    np.testing.assert_allclose(c['tpr'], [0, 0.5, 0.5, 1, 1])


def test_pixel_auroc_ap_dice_match_sklearn():
    rng = np.random.default_rng(0)
    masks = np.zeros((6, 16, 16), bool); masks[1, 3:8, 3:9] = True; masks[4, 10:, :4] = True
    maps = (rng.random(masks.shape) + masks * 0.6).astype(np.float32)
    y, s = masks.ravel(), maps.ravel()
    assert pixel_auroc(masks, maps) == pytest.approx(roc_auc_score(y, s), abs=1e-12)
    assert average_precision(masks, maps) == pytest.approx(average_precision_score(y, s), abs=1e-12)
    assert best_dice(masks, maps) == pytest.approx(_sk_best_f1(y, s), abs=1e-12)
    # lists of (H,W) give the same as a stacked array; images may differ in size
    assert pixel_auroc(list(masks), list(maps)) == pixel_auroc(masks, maps)
    mixed_m, mixed_a = [masks[1], masks[4][:8]], [maps[1], maps[4][:8]]
    assert pixel_auroc(mixed_m, mixed_a) == pytest.approx(
        roc_auc_score(np.r_[masks[1].ravel(), masks[4][:8].ravel()], np.r_[maps[1].ravel(), maps[4][:8].ravel()]))


def test_best_dice_by_hand():
    m = np.zeros((1, 6, 6), bool); m[0, :2, :2] = True
    assert best_dice(m, m.astype(float)) == 1.0
    a = m.astype(float); a[0, 4:, 4:] = 1  # 4 true + 4 false positives
    assert best_dice(m, a) == pytest.approx(2 * 4 / (4 + 8))


def _two_regions():
    masks = np.zeros((2, 10, 10), bool)
    masks[0, 1:4, 1:5] = True  # large region, 12 px
    masks[0, 8, 8] = True      # small region, 1 px
    return masks


def test_aupro_by_hand():
    masks = _two_regions()
    assert aupro(masks, masks.astype(float)) == pytest.approx(1.0)
    big = np.zeros((2, 10, 10)); big[0, 1:4, 1:5] = 1  # finds only the large region
    # curve (0,0) -> (0,1/2) -> (1,1): on [0,0.3] PRO = 1/2 + FPR/2
    assert aupro(masks, big) == pytest.approx((0.3 * 0.5 + 0.5 * 0.3 ** 2 / 2) / 0.3)
    assert aupro(masks, big, fpr_limit=1.0) == pytest.approx(0.75)
    small = np.zeros((2, 10, 10)); small[0, 8, 8] = 1  # finds only the small one: PRO is per region, so the same
    assert aupro(masks, small) == pytest.approx(0.575)
    assert pixel_auroc(masks, small) < pixel_auroc(masks, big)  # pixel AUROC, unlike PRO, favours large regions


def test_aupro_interpolates_at_limit():
    # one region of 2 px, 10 normal px; map: region pixel a at 0.9, normal pixels 0.8 x5, region pixel b 0.5, rest 0.1
    m = np.zeros((1, 1, 12), bool); m[0, 0, :2] = True
    a = np.array([[[0.9, 0.5, 0.8, 0.8, 0.8, 0.8, 0.8, 0.1, 0.1, 0.1, 0.1, 0.1]]])
    # curve: (0,0) (0,.5) (.5,.5) (.5,1) (1,1); up to 0.3: PRO = 0.5 -> area 0.15, /0.3 = 0.5
    assert aupro(m, a) == pytest.approx(0.5)
    # up to 0.6: 0.5*0.5 + 0.1*1 = 0.35, /0.6
    assert aupro(m, a, fpr_limit=0.6) == pytest.approx(0.35 / 0.6)
    # a point between: limit 0.25 of a straight segment (0,0.5)->(0.5,1) when ties are split
    c = pro_curve(m, a)
    np.testing.assert_allclose(c['fpr'], [0, 0, 0.5, 0.5, 1]); np.testing.assert_allclose(c['pro'], [0, 0.5, 0.5, 1, 1])


def test_aupro_connectivity_and_many_images():
    # diagonal neighbours form one region (8-connectivity); regions in different images are separate
    m = np.zeros((3, 6, 6), bool); m[0, 0, 0] = m[0, 1, 1] = True; m[1, 3:5, 3:5] = True
    a = np.zeros(m.shape); a[0, 0, 0] = a[0, 1, 1] = 1  # finds region 1 of 2
    assert aupro(m, a) == pytest.approx(0.575)


def test_aupro_random_map_is_about_half_the_limit():
    rng = np.random.default_rng(0)
    m = np.zeros((30, 32, 32), bool); m[::2, 4:16, 4:20] = True; m[1::3, 20:23, 25:28] = True; m[::5, 28:, :3] = True
    vals = [aupro(m, rng.random(m.shape)) for _ in range(3)]
    assert np.mean(vals) == pytest.approx(0.15, abs=0.015)
    assert aupro(m, rng.random(m.shape), fpr_limit=0.1) == pytest.approx(0.05, abs=0.01)


def test_aupro_binned_close_to_exact():
    rng = np.random.default_rng(1)
    m = np.zeros((10, 32, 32), bool); m[::2, 5:15, 5:15] = True; m[1::2, 20:22, 20:30] = True
    a = m * 0.4 + rng.random(m.shape)
    assert aupro(m, a, num_thresholds=1000) == pytest.approx(aupro(m, a), abs=0.01)
    assert len(pro_curve(m, a, num_thresholds=50)['fpr']) <= 51


def test_bundles():
    im = image_metrics([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8])
    assert set(im) == {'image_auroc', 'image_ap', 'image_best_f1'} and im['image_auroc'] == 0.75
    rng = np.random.default_rng(2)
    m = np.zeros((8, 16, 16), bool); m[::2, 2:6, 3:9] = True; m[1::4, 10, 10] = True
    a = m * 0.5 + rng.random(m.shape)
    pm = pixel_metrics(m, a)
    assert pm == dict(pixel_auroc=pixel_auroc(m, a), aupro=aupro(m, a), pixel_ap=average_precision(m, a),
                      best_dice=best_dice(m, a))
    assert all(isinstance(v, float) for v in pm.values())


def test_summarise_and_percent():
    sm = summarise([dict(image_auroc=0.9, aupro=0.5), dict(image_auroc=0.8, aupro=0.7)])
    assert sm['image_auroc']['mean'] == pytest.approx(0.85) and sm['image_auroc']['std'] == pytest.approx(0.05)
    assert sm['aupro']['n'] == 2
    assert summarise([dict(a=0.9), dict(a=0.8)], ddof=1)['a']['std'] == pytest.approx(np.std([0.9, 0.8], ddof=1))
    pc = as_percent(sm)
    assert pc['image_auroc']['mean'] == pytest.approx(85) and pc['image_auroc']['n'] == 2
    assert as_percent(dict(image_auroc=0.9123))['image_auroc'] == pytest.approx(91.23)
    assert format_summary(sm)['image_auroc'] == '85.00 ± 5.00'
    with pytest.raises(ValueError, match='run 1 has keys'): summarise([dict(a=1), dict(b=1)])
    with pytest.raises(ValueError, match='no runs'): summarise([])


def test_errors():
    with pytest.raises(ValueError, match='image AUROC is undefined'): image_auroc([1, 1], [0.1, 0.2])
    with pytest.raises(ValueError, match='only normal'): image_auroc([0, 0], [0.1, 0.2])
    with pytest.raises(ValueError, match='differs from scores shape'): image_auroc([0, 1], [0.1, 0.2, 0.3])
    with pytest.raises(ValueError, match='NaN'): image_auroc([0, 1], [0.1, np.nan])
    with pytest.raises(ValueError, match='binary'): image_auroc([0, 2], [0.1, 0.2])
    with pytest.raises(ValueError, match='pixel AUROC is undefined'): pixel_auroc(np.zeros((2, 4, 4)), np.ones((2, 4, 4)))
    with pytest.raises(ValueError, match=r'masks\[0\] shape'): pixel_metrics(np.zeros((2, 4, 4)), np.ones((2, 4, 5)))
    with pytest.raises(ValueError, match='2 masks but 1 maps'): aupro([np.zeros((4, 4))] * 2, [np.ones((4, 4))])
    with pytest.raises(ValueError, match='no anomalous region'): aupro(np.zeros((2, 4, 4)), np.ones((2, 4, 4)))
    with pytest.raises(ValueError, match='no normal pixel'): aupro(np.ones((1, 4, 4)), np.ones((1, 4, 4)))
    with pytest.raises(ValueError, match='fpr_limit'): aupro(_two_regions(), np.ones((2, 10, 10)), fpr_limit=1.5)
    with pytest.raises(ValueError, match='infinite'): pixel_auroc(_two_regions(), np.full((2, 10, 10), np.inf))


def test_large_input_is_fast_and_matches_sklearn():
    import time
    rng = np.random.default_rng(0)
    m = np.zeros((200, 128, 128), bool); m[::2, 40:60, 50:80] = True; m[1::4, 90:95, 20:25] = True
    a = (m * 0.5 + rng.random(m.shape)).astype(np.float32)
    t = time.time(); pm = pixel_metrics(m, a); dt = time.time() - t
    assert dt < 15, dt
    assert pm['pixel_auroc'] == pytest.approx(roc_auc_score(m.ravel(), a.ravel()), abs=1e-9)
