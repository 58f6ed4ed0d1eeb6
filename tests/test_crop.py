"""A cropped run (`MTLConfig(crop='tissue')`): trained on its crops, its model's parts calibrated on crops and put back
on the frame, its lookup part on the frame, all of it saved with the run."""
import numpy as np
import pytest
import torch

from mtlmad.calibration import LOOKUP, calibrated_errors
from mtlmad.core import MTLConfig
from mtlmad.crop import tissue_crop, uncrop
from mtlmad.data.brain import make_demo_data
from mtlmad.features import FEATURES
from mtlmad.data.loading import load_split
from mtlmad.jobs import calibrate_run, open_scorer, train_run
from mtlmad.train import init_training

TINY = dict(image_size=32, width=8, n_experts=2, steps=3)


@pytest.fixture(scope='module')
def cropped_run(tmp_path_factory):
    "A tiny cropped run on the demo brain at 32 px, and its validation images (frames)."
    n = torch.get_num_threads(); torch.set_num_threads(1)
    tmp = tmp_path_factory.mktemp('crop')
    data = make_demo_data(tmp / 'data', image_size=64)   # lesions need room; the model sees 32 px
    run = train_run(data, tmp / 'run', MTLConfig(crop='tissue', **TINY), device='cpu', progress=False)
    torch.set_num_threads(n)
    return run, load_split(data, 'valid', image_size=32).images


def test_config_checks_the_crop():
    assert MTLConfig().crop == ''
    with pytest.raises(ValueError, match='crop must be one of'): MTLConfig(crop='head')


def test_a_cropped_run_trains_on_its_crops(cropped_run):
    _, frames = cropped_run
    st = init_training(MTLConfig(crop='tissue', **TINY), frames, device='cpu')
    assert torch.allclose(st.source.images, tissue_crop(frames)[0])
    assert not torch.allclose(st.source.images, frames)   # the demo brain does not fill its frame: the crop changes it


def test_a_cropped_run_scores_frames_part_by_part_where_each_was_made(cropped_run):
    run, frames = cropped_run
    sc = calibrate_run(run, {'features': True}, device='cpu', progress=False)   # with the feature part (off by default since 0.2.18): it too is made on the crops
    assert sc.crop == 'tissue' and sc.frame_reference is not None and LOOKUP in sc.fusion_tasks
    crops, boxes = tissue_crop(frames)
    # the model's own errors: made on the crops, put back into each frame's square; the lookup part is the frame's grey level
    maps, scores, _ = sc.errors(frames)
    own, own_scores, _ = sc.seen_errors(crops)
    learned = [t for t in sc.parts if t != LOOKUP]   # the tasks and the feature part
    assert FEATURES in learned
    for t in learned: np.testing.assert_allclose(maps[t], uncrop(own[t], boxes, frames.shape[-1]), atol=1e-6)
    np.testing.assert_allclose(maps[LOOKUP], frames.mean(1).numpy(), atol=1e-6)
    # calibrated: the model's parts against the crops' reference, the lookup part against the frames'
    cal, cal_scores, _ = sc.raw(frames)
    model_cfg, scoring = sc.model.cfg, sc.scoring
    try:   # the same scorer as a run that sees its images as they are, without a lookup part, scoring the crops
        sc.model.cfg, sc.scoring = model_cfg.replace(crop=''), scoring.replace(lookup='')
        on_crops, crop_scores, _ = sc.raw(crops)
    finally: sc.model.cfg, sc.scoring = model_cfg, scoring
    s = sc.scoring
    on_frames, frame_scores, _ = calibrated_errors({LOOKUP: frames.mean(1).numpy()}, frames, sc.frame_reference, s.k, s.score_sigma, s.erode,
                                                   s.ref_sigma, s.foreground_only, s.rms_parts, s.both_sides, s.score_scales == 'max',
                                                   s.score_shrink, s.own_spread_parts)   # the lookup part in each frame's own units (0.2.19)
    if s.score_scales == 'max': frame_scores = {t: sc.norms[t].scale_z(v) for t, v in frame_scores.items()}   # each smoothing's z, the largest
    if s.distance_trend: frame_scores = {t: sc.norms[t].detrend(v, sc._distance(frames)) for t, v in frame_scores.items()}   # less its trend in the crop's distance from its references (0.2.20)
    for t in learned:
        np.testing.assert_allclose(cal[t], uncrop(on_crops[t], boxes, frames.shape[-1]), atol=1e-5)
        np.testing.assert_allclose(cal_scores[t], crop_scores[t], rtol=1e-5)
    np.testing.assert_allclose(cal[LOOKUP], on_frames[LOOKUP], atol=1e-5)
    np.testing.assert_allclose(cal_scores[LOOKUP], frame_scores[LOOKUP], rtol=1e-5)
    res = sc.score(frames)
    assert res.maps.shape == (len(frames), 32, 32) and np.isfinite(res.scores).all()


def test_a_cropped_run_saves_its_frame_reference(cropped_run):
    run, frames = cropped_run
    fresh = calibrate_run(run, device='cpu', progress=False)   # calibrated again, as train_run did
    np.testing.assert_allclose(open_scorer(run, 'cpu').score(frames).scores, fresh.score(frames).scores, rtol=1e-5)
    fresh.frame_reference = None
    with pytest.raises(ValueError, match='holds none: calibrate it again'): fresh.score(frames)
