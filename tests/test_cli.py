"`mtlmad predict` and `mtlmad calibrate` end to end with a tiny calibrated run: what they print, an output folder that adds up after several calls, a calibration kept in the run."
import json, shutil

import numpy as np
import pytest
import torch
from PIL import Image

from mtlmad.cli import main
from mtlmad.core import MTLConfig
from mtlmad.jobs import open_scorer, predict_files
from fixtures import calibrated_run, make_bmad

TINY = MTLConfig(image_size=32, width=4, n_experts=2, steps=4, epochs=0, batch_size=4, warmup_steps=2, top_k=1)
IMGS = torch.rand(8, 1, 32, 32, generator=torch.Generator().manual_seed(1))


@pytest.fixture(scope='module')
def run(tmp_path_factory):
    return calibrated_run(tmp_path_factory.mktemp('run'), TINY, IMGS)


def _png(p, seed, size=(40, 30)):
    p.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.random.default_rng(seed).integers(0, 256, size, dtype=np.uint8)).save(p)
    return p


def _predict(run, out, *files):
    return main(['predict', '--run', str(run), *map(str, files), '--out', str(out), '--device', 'cpu'])


def _consistent(out) -> dict:
    "The rows of scores.json, checked: each names a map and an overlay that are there, and each map file has its row."
    rows = json.loads((out / 'scores.json').read_text())
    assert all((out / r['map']).is_file() and (out / r['overlay']).is_file() for r in rows.values())
    assert {r['map'] for r in rows.values()} == {p.name for p in out.glob('*_map.npy')}
    return rows


def test_predict_says_what_it_did_and_a_second_call_adds_up(tmp_path, run, capsys):
    a, b, out = _png(tmp_path / 'a.png', 0), _png(tmp_path / 'b.png', 1), tmp_path / 'pred'
    assert _predict(run, out, a, b) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 3 and lines[0].startswith(f'{a}: score ')
    assert lines[0].endswith(f'map {out / "a_map.npy"}, overlay {out / "a_overlay.png"}')
    assert lines[-1] == f'predictions written to {out.resolve()}: scores.json lists 2 images'
    first = _consistent(out)

    c, b2 = _png(tmp_path / 'c.png', 2), _png(tmp_path / 'other' / 'b.png', 3)   # another b.png: it replaces the first
    assert _predict(run, out, c, b2) == 0
    assert capsys.readouterr().out.splitlines()[-1].endswith('scores.json lists 3 images (1 from earlier calls)')
    rows = _consistent(out)
    assert set(rows) == {str(a), str(c), str(b2)} and rows[str(a)] == first[str(a)]
    again = predict_files(run, [b2], device='cpu')[0]
    assert np.allclose(np.load(out / 'b_map.npy'), again.amap, atol=1e-5) and np.isclose(rows[str(b2)]['score'], again.score, rtol=1e-5, atol=1e-5)

    (out / 'a_map.npy').unlink()   # a map removed by hand: its row goes at the next call
    assert _predict(run, out, c) == 0
    assert set(_consistent(out)) == {str(c), str(b2)}


def test_predict_refuses_a_scores_json_it_did_not_write(tmp_path, run, capsys):
    out = tmp_path / 'pred'; out.mkdir()
    (out / 'scores.json').write_text('{"a": 1}')
    assert _predict(run, out, _png(tmp_path / 'a.png', 0)) == 2
    assert 'not a scores.json that predict writes' in capsys.readouterr().err
    assert [p.name for p in out.iterdir()] == ['scores.json'] and (out / 'scores.json').read_text() == '{"a": 1}'


def test_predict_volume_without_task_maps_removes_the_earlier_ones(tmp_path, run, capsys):
    nib = pytest.importorskip('nibabel')
    scan, out = tmp_path / 'scan.nii.gz', tmp_path / 'pred'
    nib.save(nib.Nifti1Image(np.random.default_rng(0).random((32, 32, 4)).astype(np.float32), np.eye(4)), scan)
    assert main(['predict', '--run', str(run), str(scan), '--out', str(out), '--device', 'cpu', '--task-maps']) == 0
    assert len(list(out.glob('scan_*.nii.gz'))) == 1 + len(TINY.tasks)   # the fused map and one per task (no feature part by default since 0.2.18)
    capsys.readouterr()
    assert main(['predict', '--run', str(run), str(scan), '--out', str(out), '--device', 'cpu']) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith(f'{scan}: volume score ') and lines[-1].startswith(f'predictions written to {out.resolve()}: 1 volume')
    assert sorted(p.name for p in out.iterdir()) == ['scan_anomaly.nii.gz', 'scan_scores.json']
    assert json.loads((out / 'scan_scores.json').read_text())['task_maps'] == []


def test_calibrate_keeps_the_new_scoring_in_the_run(tmp_path, run, capsys):
    mine, data = tmp_path / 'run', make_bmad(tmp_path, 'Brain', n_train=12, n_valid=(2, 1))
    shutil.copytree(run, mine)
    ck = (mine / 'model.pt').read_bytes()
    calibrate = lambda scoring: main(['calibrate', '--run', str(mine), '--data', str(data), '--scoring', scoring, '--device', 'cpu'])
    assert calibrate('{"brigther": []}') == 2 and "unknown scoring settings ['brigther']" in capsys.readouterr().err
    assert calibrate('{"brighter": ["tissue"]}') == 2 and "the errors of ['tissue'] have no sign" in capsys.readouterr().err
    assert (mine / 'model.pt').read_bytes() == ck   # a refused calibration leaves the run as it was

    assert calibrate('{"brighter": ["denoise"], "k": 3}') == 0
    line = capsys.readouterr().out.strip()
    assert line.startswith(f'{mine / "model.pt"}: calibrated again on 2 normal images (valid split normals) of {data.resolve()}; ')
    assert "brighter [] -> ['denoise']" in line and 'k 10 -> 3' in line
    s = open_scorer(mine, device='cpu')
    assert (s.brighter, s.k) == (('denoise',), 3)
    png = _png(tmp_path / 'a.png', 0)
    new, old = (predict_files(r, [png], device='cpu')[0] for r in (mine, run))   # predict scores the recalibrated run the new way
    assert abs(new.score - old.score) > 1e-4 and not np.allclose(new.task_maps['denoise'], old.task_maps['denoise'])
