"""The benchmark scripts' own logic: merging quality results, counting multiply-accumulates."""
import json, sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / 'bench'))
import cost, quality  # noqa: E402
from mtlmad.core import MTLConfig  # noqa: E402


def result(variants: dict, **settings) -> dict:
    s = dict(data='demo', image_size=64, epochs=10, baseline_epochs=10, seeds=[0, 1], n_train=8, n_calibration=2,
             n_test=6, n_test_anomalous=3, moe_params=100, dense_width=9, dense_params=98, device='cpu',
             machine='test', threads=1, variants=list(variants))
    s.update(settings)
    runs = lambda a: {'0': dict(image_auroc=a, pixel_auroc=a, aupro=a), '1': dict(image_auroc=a + 2, pixel_auroc=a, aupro=a)}
    return dict(command='python bench/quality.py x', note='', settings=s,
                variants={v: dict(runs=runs(a), train_s=[1.0], params=1) for v, a in variants.items()},
                joint_parts={'joint:inpaint': dict(runs=runs(50.0), train_s=[])} if 'fused' in variants else {})


def test_merge_joins_variants_in_canonical_order(tmp_path):
    a, b = tmp_path / 'a.json', tmp_path / 'b.json'
    a.write_text(json.dumps(result({'deepsvdd': 55.0, 'fused': 70.0})))
    b.write_text(json.dumps(result({'single:geometry': 60.0, 'dense': 72.0})))
    m = quality.merge([a, b])
    assert list(m['variants']) == ['fused', 'single:geometry', 'dense', 'deepsvdd']
    assert 'joint:inpaint' in m['joint_parts'] and str(a) in m['command'] and str(b) in m['command']
    text = quality.write(tmp_path / 'm.json', m)
    assert '| dense | 1 | 2 | 73.00 ± 1.00' in text
    assert "fused does NOT beat {'dense': 73.0}" in text   # image AUROC: dense 73 > fused 71
    saved = json.loads((tmp_path / 'm.json').read_text())['verdict']   # what nbs/benchmarks.ipynb shows
    assert saved[0].startswith('- image_auroc: fused 71.00') and all(v in text for v in saved)


def test_merge_refuses_different_settings_and_repeated_variants(tmp_path):
    a, b, c = tmp_path / 'a.json', tmp_path / 'b.json', tmp_path / 'c.json'
    a.write_text(json.dumps(result({'fused': 70.0})))
    b.write_text(json.dumps(result({'dense': 70.0}, epochs=30)))
    c.write_text(json.dumps(result({'fused': 60.0})))
    with pytest.raises(SystemExit, match=r"b\.json: cannot merge .*'epochs': \(10, 30\)"): quality.merge([a, b])
    with pytest.raises(SystemExit, match=r"c\.json: variant 'fused' is also in an earlier file"): quality.merge([a, c])
    (tmp_path / 'bad.json').write_text('{not json')
    with pytest.raises(SystemExit, match=r'bad\.json: not a readable'): quality.merge([a, tmp_path / 'bad.json'])


def test_fused_only_report_says_there_is_nothing_to_compare(tmp_path):
    text = quality.write(tmp_path / 'f.json', result({'fused': 70.0}))
    assert 'only the fused model was run' in text and 'nan' not in text


def test_mac_breakdown_counts_and_shares_the_trunk():
    cfg = MTLConfig(image_size=32, width=8)
    x = cost.mri_batch(2, 32)
    joint, tasks, singles = cost.build(cfg, torch.device('cpu'), x)
    mc = cost.mac_breakdown(joint, tasks, singles, x)
    assert (mc['distinct_inputs'], mc['single_inputs']) == (3, 6)   # clean image shared by 4 tasks + 2 inpaint masks
    # the stem's convolutions by hand, outputs x (in channels x 3 x 3) each: 1 -> width/2 at S/2, -> width at S/4, -> 2 width at S/8
    stem = (16 * 16 * 4 * 1 * 9) + (8 * 8 * 8 * 4 * 9) + (4 * 4 * 16 * 8 * 9)
    assert mc['joint']['stem'] == 3 * stem and mc['singles']['stem'] == 6 * stem
    assert mc['joint']['head'] == mc['singles']['head'] and mc['joint']['moe block 2'] == mc['singles']['moe block 2']
    assert mc['joint']['moe block 1'] < mc['singles']['moe block 1']
    assert mc['joint_total'] == pytest.approx(sum(mc['joint'].values()))
    assert 0.5 < mc['ratio'] < 1
