"Headless tests of mtlmad.widgets: every control of the AnomalyExplorer changes its state and pictures as it should."
import datetime
import io
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).parent / 'browser'))
from explorer_standins import make_scorer, tissue_images  # noqa: E402

from mtlmad.score import fuse_scores, fuse_maps  # noqa: E402
from mtlmad.datasets import image_to_model  # noqa: E402
from mtlmad.viz import render_panels, render_histogram, render_gates, add_titles, to_png  # noqa: E402
from mtlmad import widgets  # noqa: E402
from mtlmad.widgets import AnomalyExplorer  # noqa: E402

S = 32


@pytest.fixture
def ex():
    images, masks, labels = tissue_images(12, S)
    return AnomalyExplorer(make_scorer(S), images, masks, labels, paths=[f'p{i}.png' for i in range(12)])


def panel(rgb, k, size=S, zoom=None, gap=2, title=16):
    "Panel k of an explorer's strip (titles above)."
    z = zoom or max(1, 160 // size)
    w = size * z
    return rgb[title:, k * (w + gap):k * (w + gap) + w]


def png_array(b):
    return np.asarray(Image.open(io.BytesIO(b)).convert('RGB'))


def test_initial_state(ex):
    assert ex.scorer.model.calls == 2  # calibration + the explorer's one batched run (12 images < batch 16)
    assert ex.n_model_runs == 1 and ex.index == 0 and len(ex) == 12
    assert ex.device == 'cpu' and 'cpu' in ex.device_label.value
    assert set(ex.task_maps) == {'detail', 'bright', 'dark'} and ex.task_maps['detail'].shape == (12, S, S)
    assert ex.gates['bright'].shape == (12, 2, 4)
    np.testing.assert_array_equal(png_array(ex.last_png), ex.current_rgb)
    assert ex.panels.value == ex.last_png and ex.hist.value[:4] == b'\x89PNG' and ex.routing.value[:4] == b'\x89PNG'
    assert ex.current_rgb.shape == (16 + S * 5, 5 * (S * 5) + 4 * 2, 3)  # zoom 5 for 32 px, 5 panels
    assert 'detail' in ex.table.value and 'z' in ex.table.value
    assert isinstance(ex.widget, __import__('ipywidgets').VBox)


def test_no_model_run_on_any_control(ex):
    calls, runs = ex.scorer.model.calls, ex.n_model_runs
    ex.slider.value = 3; ex.next_button.click(); ex.prev_button.click()
    ex.filter.value = 'anomalous'; ex.sort.value = 'desc'; ex.sort.value = 'asc'; ex.filter.value = 'all'
    ex.threshold.value = ex.threshold.max / 2; ex.alpha.value = 0.9
    ex.task_toggles['detail'].value = False; ex.task_toggles['detail'].value = True
    assert ex.scorer.model.calls == calls and ex.n_model_runs == runs
    assert ex.n_renders >= 10


def test_browse_slider_and_buttons(ex):
    first = ex.current_rgb
    ex.slider.value = 5
    assert ex.index == 5 and not np.array_equal(first, ex.current_rgb)
    ex.next_button.click(); assert ex.index == 6
    ex.prev_button.click(); ex.prev_button.click(); assert ex.index == 4
    ex.slider.value = 0; ex.prev_button.click(); assert ex.index == 0  # clamped at the ends
    ex.slider.value = 11; ex.next_button.click(); assert ex.index == 11


def test_filter(ex):
    ex.filter.value = 'anomalous'
    assert set(ex.labels[ex.order]) == {1} and len(ex.order) == 6 and ex.slider.max == 5
    assert ex.labels[ex.index] == 1
    ex.slider.value = 2; kept = ex.index
    ex.filter.value = 'all'
    assert ex.index == kept and len(ex.order) == 12  # the current image stays in view
    ex.filter.value = 'normal'
    assert set(ex.labels[ex.order]) == {0} and ex.labels[ex.index] == 0


def test_sort(ex):
    ex.slider.value = 4
    shown = ex.current_rgb.copy()
    ex.sort.value = 'desc'
    s = ex.scores[ex.order]
    assert (np.diff(s) <= 0).all() and ex.index == 4  # the image on screen stays, at its new place
    assert ex.slider.value == int(np.flatnonzero(ex.order == 4)[0])
    np.testing.assert_array_equal(ex.current_rgb, shown)
    ex.slider.value = 0
    assert ex.index == int(np.argmax(ex.scores)) and ex.labels[ex.index] == 1  # the top: an anomalous image
    ex.sort.value = 'asc'
    assert (np.diff(ex.scores[ex.order]) >= 0).all() and ex.index == int(np.argmax(ex.scores)) and ex.slider.value == 11
    ex.sort.value = 'index'
    np.testing.assert_array_equal(ex.order, np.arange(12))
    assert ex.slider.value == ex.index == int(np.argmax(ex.scores))


def test_threshold_changes_outline_only_in_first_two_panels(ex):
    ex.slider.value = 1  # anomalous: a bright blob
    ex.threshold.value = ex.threshold.max
    high = ex.current_rgb.copy()
    ex.threshold.value = ex.threshold.min
    low = ex.current_rgb
    assert not np.array_equal(panel(high, 0), panel(low, 0))
    red = lambda p: ((p[..., 0] == 255) & (p[..., 1] == 0) & (p[..., 2] == 0)).sum()
    assert red(panel(low, 0)) > red(panel(high, 0))
    for k in (2, 3, 4): np.testing.assert_array_equal(panel(high, k), panel(low, k))


def test_alpha(ex):
    ex.alpha.value = 0.0
    a0 = ex.current_rgb.copy()
    ex.alpha.value = 1.0
    a1 = ex.current_rgb
    np.testing.assert_array_equal(panel(a0, 0), panel(a1, 0))  # the image panel carries no map
    assert not np.array_equal(panel(a0, 1), panel(a1, 1)) and not np.array_equal(panel(a0, 3), panel(a1, 3))
    # opacity 0: the task panels show the image itself
    np.testing.assert_array_equal(panel(a0, 3)[..., 0], panel(a0, 3)[..., 1])


def test_task_toggles_refuse(ex):
    ex.slider.value = 3
    norms, sigma = ex.scorer.norms, ex.scorer.sigma
    ex.task_toggles['detail'].value = False
    assert ex.selected_tasks == ['bright', 'dark']
    np.testing.assert_allclose(ex.scores, fuse_scores(ex.task_scores, norms, 'mean', ['bright', 'dark']))
    assert ex.fused_score == pytest.approx(float(ex.scores[3]))
    want = fuse_maps({t: ex.task_maps[t][3] for t in ('bright', 'dark')}, norms, ['bright', 'dark'], sigma)
    np.testing.assert_allclose(ex.fused_map, want, rtol=1e-6)
    assert '(off)' in ex.table.value
    ex.task_toggles['bright'].value = False
    only_dark = float(norms['dark'].z_score(ex.task_scores['dark'][3]))
    assert ex.fused_score == pytest.approx(only_dark)
    ex.task_toggles['dark'].value = False  # the last task on cannot be switched off
    assert ex.task_toggles['dark'].value and ex.selected_tasks == ['dark'] and 'at least one' in ex.status.value


def test_task_toggle_resorts_but_keeps_image(ex):
    ex.sort.value = 'desc'; ex.slider.value = 4; kept = ex.index
    image_panel = panel(ex.current_rgb, 0).copy()
    not_red = lambda p: ~((p[..., 0] == 255) & (p[..., 1] == 0) & (p[..., 2] == 0))  # the threshold outline follows the fusion
    for t in ('bright', 'detail', 'bright'):
        ex.task_toggles[t].value = not ex.task_toggles[t].value
        assert ex.index == kept and (np.diff(ex.scores[ex.order]) <= 0).all()
        assert ex.order[ex.slider.value] == kept and f'p{kept}.png' in ex.table.value
        now = panel(ex.current_rgb, 0); both = not_red(now) & not_red(image_panel)
        assert both.mean() > 0.9 and (now[both] == image_panel[both]).all()  # the same image on screen


def test_threshold_bounded_at_zero(ex):
    # fused maps can go below 0 (the normal mean; here with every part averaged); a threshold there would outline nearly every pixel
    fm = fuse_maps(ex.task_maps, ex.scorer.norms, ex.selected_tasks, ex.scorer.sigma, top=0)
    assert fm.min() < 0 and ex.threshold.min == 0 and 0 <= ex.threshold.value <= ex.threshold.max
    ex.threshold.value = -1.0
    assert ex.threshold.value == 0


def test_routing_is_readable(ex):
    routing = png_array(ex.routing.value)
    assert routing.shape[0] >= 120 and routing.shape[1] >= 300  # 14-pixel cells and no axes before
    np.testing.assert_array_equal(routing, render_gates({t: g[ex.index] for t, g in ex.gates.items()}))


def test_upload_button_sized_to_its_label(ex):
    assert ex.upload.layout.width == 'auto'  # the default (148 px) cut 'score an image (0)'


def _upload_value(name, data):
    return ({'name': name, 'type': 'image/png', 'size': len(data), 'content': memoryview(data), 'last_modified': datetime.datetime.now(datetime.timezone.utc)},)


def test_upload_png(ex):
    calls = ex.scorer.model.calls
    ex.filter.value = 'normal'
    # a bright blob in an RGB image of another size: converted to grey and resized to the model size
    img = np.full((50, 70, 3), 110, np.uint8); img[20:30, 30:40] = 240
    buf = io.BytesIO(); Image.fromarray(img).save(buf, format='PNG')
    ex.upload.value = _upload_value('my_scan.png', buf.getvalue())
    assert ex.scorer.model.calls == calls + 1 and len(ex) == 13 and ex.index == 12
    assert ex.filter.value == 'normal' and ex.labels[12] == -1 and ex.paths[12] == 'my_scan.png'  # the filter stays
    assert set(ex.labels[ex.order]) == {0, -1}  # the upload, unlabelled, shows with the normal images
    assert ex.upload.value == () and 'my_scan.png' in ex.status.value and 'my_scan.png' in ex.table.value
    assert ex.images.shape == (13, S, S, 1) and ex.gates['detail'].shape[0] == 13
    assert ex.task_scores['bright'][12] > ex.task_scores['bright'][0]
    assert ex.current_rgb.shape[1] == 5 * (S * 5) + 4 * 2


def test_upload_jpeg_grey_16bit_and_bad_file(ex):
    for mode, fmt, arr in (('L', 'JPEG', np.full((40, 40), 100, np.uint8)), ('I;16', 'PNG', np.full((20, 24), 30000, np.uint16))):
        buf = io.BytesIO(); Image.fromarray(arr).save(buf, format=fmt)
        ex.upload.value = _upload_value(f'x.{fmt.lower()}', buf.getvalue())
    assert len(ex) == 14
    ex.upload.value = _upload_value('notes.txt', b'hello')
    assert len(ex) == 14 and 'notes.txt: cannot be read as an image (not a known image format)' in ex.status.value


def test_add_image_path_and_rgb_model(tmp_path):
    images, masks, labels = tissue_images(4, S, channels=3)
    e = AnomalyExplorer(make_scorer(S, channels=3), images, None, None)
    assert e.filter.disabled and e.images.shape == (4, S, S, 3)
    p = tmp_path / 'grey.png'; Image.fromarray(np.full((10, 10), 200, np.uint8)).save(p)
    i = e.add_image(p)
    assert i == 4 and e.paths[4] == str(p) and e.images.shape == (5, S, S, 3)
    with pytest.raises(FileNotFoundError, match='no such image file'): e.add_image(tmp_path / 'missing.png')


def test_bad_inputs():
    sc = make_scorer(S)
    images, masks, labels = tissue_images(4, S)
    with pytest.raises(ValueError, match=r'\(N, C, S, S\)'): AnomalyExplorer(sc, images[0])
    with pytest.raises(ValueError, match='masks'): AnomalyExplorer(sc, images, masks[:2])
    with pytest.raises(ValueError, match='labels'): AnomalyExplorer(sc, images, masks, labels[:3])
    sc.norms = {}
    with pytest.raises(RuntimeError, match='not calibrated'): AnomalyExplorer(sc, images)


def test_batched_scoring():
    images, masks, labels = tissue_images(10, S)
    sc = make_scorer(S); c = sc.model.calls
    AnomalyExplorer(sc, images, batch_size=4)
    assert sc.model.calls - c == 3


def test_render_panels_pure():
    img = np.full((6, 6), 0.5, np.float32)
    m = np.zeros((6, 6), np.float32); m[1:5, 1:5] = 3
    truth = m > 0
    p = render_panels(img, m, {'t': m}, mask=truth, threshold=None, alpha=0)
    assert p.shape == (6, 3 * 6 + 2 * 2, 3) and p.dtype == np.uint8
    assert p[1, 1].tolist() == [0, 255, 0]  # green truth outline
    p2 = render_panels(img, m, {'t': m}, mask=truth, threshold=1.0, alpha=0)
    assert p2[1, 1].tolist() == [255, 0, 0]  # red threshold outline drawn over the truth
    assert render_panels(img, m, {}, zoom=2).shape == (12, 2 * 12 + 2, 3)
    assert add_titles(p, ['a', 'b', 'c'], 6).shape == (16 + 6, p.shape[1], 3)
    np.testing.assert_array_equal(png_array(to_png(p)), p)
    assert render_histogram(np.arange(10.), None, 3.0).ndim == 3
    assert render_gates({'a': np.ones((2, 3)) / 3}).shape[-1] == 3


def test_image_to_model_shapes():
    assert image_to_model(np.zeros((5, 7, 4)), 8, 1).shape == (1, 8, 8)
    with pytest.raises(ValueError, match='channels'): image_to_model(np.zeros((5, 7)), 8, 2)


def test_from_run_uses_the_jobs_and_datasets(monkeypatch):
    images, masks, labels = tissue_images(4, S)
    sc = make_scorer(S)
    sc.model.cfg = types.SimpleNamespace(image_size=S, channels=1, intensity='none')
    seen = {}
    def load_run_split(run, cfg, data=None, split='test'):
        seen.update(split_of=run, data_dir=data, split=split, image_size=cfg.image_size, channels=cfg.channels, intensity=cfg.intensity)
        return types.SimpleNamespace(images=images, masks=masks, labels=labels, paths=[f'{i}.png' for i in range(4)])
    def open_scorer(run_dir, device='auto'):
        seen.update(run_dir=run_dir, device=device)
        return sc
    monkeypatch.setattr(widgets, 'open_scorer', open_scorer); monkeypatch.setattr(widgets, 'load_run_split', load_run_split)
    e = AnomalyExplorer.from_run('runs/a', 'data/b', split='valid', device='cpu', zoom=1)
    assert seen == dict(split_of='runs/a', data_dir='data/b', split='valid', image_size=S, channels=1, intensity='none',
                        run_dir='runs/a', device='cpu')
    assert len(e) == 4 and e.paths[0] == '0.png' and e.zoom == 1
