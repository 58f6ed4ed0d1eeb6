"""The benchmark scripts' own logic: merging quality results, the lookup variants, counting multiply-accumulates, the
trivial predictors of task_losses; and that bench is a client of the package: what ablate.py logs and scoring_sweep.py
starts from are the figures `mtlmad evaluate` reports for the same run folder."""
import json, math, sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / 'bench'))
sys.path.insert(0, str(Path(__file__).resolve().parent))
import cost, quality, task_losses  # noqa: E402
from fixtures import make_bmad  # noqa: E402
from mtlmad.calibration import ScoringConfig  # noqa: E402
from mtlmad.core import ALL_TASKS, DEFAULT_TASKS, MTLConfig  # noqa: E402
from mtlmad.tasks import make_task  # noqa: E402


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
    with pytest.raises(SystemExit, match=r"c\.json: variant 'fused' seed\(s\) 0, 1 also in an earlier file"): quality.merge([a, c])
    (tmp_path / 'bad.json').write_text('{not json')
    with pytest.raises(SystemExit, match=r'bad\.json: not a readable'): quality.merge([a, tmp_path / 'bad.json'])


def test_merge_joins_other_seeds_of_a_variant(tmp_path):
    "A variant trained on more seeds in another run joins the first: its runs and timings one a seed, the summary over all."
    a, b = tmp_path / 'a.json', tmp_path / 'b.json'
    a.write_text(json.dumps(result({'dense': 70.0, 'lookup': 60.0})))
    later = result({'dense': 80.0})
    later['variants']['dense']['runs'] = {'10': dict(image_auroc=80.0, pixel_auroc=80.0, aupro=80.0)}
    b.write_text(json.dumps(later))
    m = quality.merge([a, b])
    assert sorted(m['variants']['dense']['runs'], key=int) == ['0', '1', '10'] and m['variants']['dense']['train_s'] == [1.0, 1.0]
    assert list(m['variants']['lookup']['runs']) == ['0', '1'] and m['settings']['seeds'] == [0, 1, 10]
    text = quality.write(tmp_path / 'm.json', m)
    assert '| dense | 1 | 3 | 74.00 ± 4.32' in text and '| lookup | 1 | 2 | 61.00 ± 1.00' in text
    assert json.loads(a.read_text())['variants']['dense']['runs'].keys() == {'0', '1'}   # the inputs are left as they were


def test_merge_checks_baseline_epochs_only_where_baselines_trained(tmp_path):
    "--baseline-epochs is recorded by every run but matters only to the trained baselines: only theirs must agree."
    a, b, c = tmp_path / 'a.json', tmp_path / 'b.json', tmp_path / 'c.json'
    a.write_text(json.dumps(result({'deepsvdd': 55.0}, baseline_epochs=40)))
    b.write_text(json.dumps(result({'dense': 70.0}, baseline_epochs=100)))
    c.write_text(json.dumps(result({'autoencoder': 50.0}, baseline_epochs=100)))
    m = quality.merge([b, a])
    assert m['settings']['baseline_epochs'] == 40 and list(m['variants']) == ['dense', 'deepsvdd']
    with pytest.raises(SystemExit, match='trained baselines of different epochs'): quality.merge([a, b, c])


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


def test_scoring_macs_runs_the_fused_heads_and_counts_the_mirror_part():
    from mtlmad.mirror import mirror_macs
    cfg = MTLConfig(image_size=32, width=8)
    x = cost.mri_batch(2, 32)
    joint, tasks, singles = cost.build(cfg, torch.device('cpu'), x)
    sm = cost.scoring_macs(joint, tasks, x)
    assert sm['unfused'] == ['inpaint', 'geometry'] and sm['trunk_only'] == [] and sm['fused'] == ['denoise', 'tissue', 'pseudo_anomaly']
    every = sum(cost.count_macs([(joint, tasks)], x).values())
    heads = cost.count_macs([(joint, {'geometry': tasks['geometry']})], x)['head']   # one head: the same as any 1-channel-input task's
    inpaint = sum(cost.count_macs([(joint, {'inpaint': tasks['inpaint']})], x).values())   # its two masked inputs: no other task reads them
    assert 'feature part' not in sm['parts'] and sm['parts']['mirror part'] == mirror_macs(32, 4)   # the mirror part and three mirrored tasks
    feats = cost.scoring_macs(joint, tasks, x, ScoringConfig(features=True))   # a run that scores the feature part reads geometry's features
    assert feats['trunk_only'] == ['geometry'] and feats['parts']['feature part'] > 0
    assert feats['parts']['model (fused heads)'] == pytest.approx(every - heads - inpaint, rel=1e-6)   # geometry runs all but its head, inpainting not at all
    assert sm['parts']['model (fused heads)'] < feats['parts']['model (fused heads)']   # without the feature part geometry's own blocks do not run either
    assert feats['parts']['mirror part'] == mirror_macs(32, 5)   # and the feature part's map, mirrored
    with_inpaint = cost.scoring_macs(joint, tasks, x, ScoringConfig(features=True), fused=['inpaint', 'denoise', 'tissue', 'pseudo_anomaly'])   # a run that fuses it (and the feature part)
    assert with_inpaint['parts']['model (fused heads)'] == pytest.approx(every - heads, rel=1e-6)
    assert sm['total'] == pytest.approx(sum(sm['parts'].values()))
    assert 'NOT met' not in '\n'.join(cost.scoring_lines(sm, 32))   # far below 100 M at 32 px
    assert 'inpaint, geometry; none of them runs.' in '\n'.join(cost.scoring_lines(sm, 32))
    assert 'only the trunk of geometry runs (the feature part reads it)' in '\n'.join(cost.scoring_lines(feats, 32))


def test_cost_macs_only_counts_a_trained_run():
    import re, subprocess
    out = subprocess.run([sys.executable, str(Path(cost.__file__)), '--macs-only', '--run', 'demo', '--device', 'cpu', '--threads', '1'],
                         capture_output=True, text=True, check=True).stdout
    rows = dict(re.findall(r'^\| (model \(fused heads\)|feature part|mirror part|calibration|map smoothing) \| ([\d.]+) \|$', out, re.M))
    total = float(re.search(r'\*\*total\*\* \| \*\*([\d.]+)\*\*', out).group(1))
    from mtlmad.jobs import open_scorer
    sc = open_scorer('demo', 'cpu')   # the smoothings the shipped run scores with, its own fused parts
    parts = {'model (fused heads)', 'mirror part', 'calibration', 'map smoothing'} | ({'feature part'} if sc.scoring.features else set())
    assert set(rows) == parts and abs(sum(map(float, rows.values())) - total) < 0.02   # the shipped run's parts add up to its total
    assert float(rows['map smoothing']) == pytest.approx(cost.smoothing_macs(sc.cfg.image_size, len(sc.fusion_tasks), sc.scoring) / 1e6, abs=0.01)
    assert float(rows['calibration']) == pytest.approx(cost.calibration_macs(sc.cfg.image_size, len(sc.fusion_tasks), len(sc.reference.thumbs), sc.scoring) / 1e6, abs=0.01)
    assert f"heads of the fused tasks ({', '.join(t for t in sc.fusion_tasks if t in sc.tasks)})" in out   # what the run fuses, not a new run's default


@pytest.fixture
def one_thread():
    "Tiny models gain nothing from threads, and spinning threads stall on a busy machine."
    n = torch.get_num_threads(); torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def test_merge_keeps_the_lookups_in_the_table_and_the_verdict(tmp_path):
    a, b = tmp_path / 'a.json', tmp_path / 'b.json'
    ra = result({'lookup_abs': 80.0, 'fused': 70.0})
    ra['variants']['lookup_abs'].update(floor={'0': 0.1, '1': 0.1}, floor_from='chosen on the valid split by image AUROC')
    a.write_text(json.dumps(ra))
    b.write_text(json.dumps(result({'lookup': 60.0, 'nearest': 65.0})))
    m = quality.merge([a, b])
    assert list(m['variants']) == ['fused', 'nearest', 'lookup', 'lookup_abs']
    text = quality.write(tmp_path / 'm.json', m)
    assert '| lookup | 1 | 2 | 61.00 ± 1.00' in text and "fused does NOT beat {'lookup_abs': 81.0}" in text
    assert 'Lookup spread floors (chosen on the valid split by image AUROC): lookup_abs 0.1.' in text


def test_quality_runs_the_lookups_on_any_bmad_folder(tmp_path, monkeypatch, one_thread):
    ds = make_bmad(tmp_path, 'Brain', n_train=12, n_valid=(2, 2), n_test=(2, 2))
    v = quality.validation_split(ds, 32, 1)
    assert v is not None and sorted(v[1].tolist()) == [0, 0, 1, 1]
    assert quality.validation_split(make_bmad(tmp_path / 'b', 'Brain', n_valid=(2, 0)), 32, 1) is None
    assert quality.expand_variants('lookup,lookup_abs') == ['lookup', 'lookup_abs']
    out = tmp_path / 'q.json'
    monkeypatch.setattr(sys, 'argv', ['quality.py', '--data', str(ds), '--image-size', '32', '--variants',
                                      'lookup,lookup_abs,mirror,mirror_abs', '--seeds', '0', '--threads', '1', '--out', str(out)])
    quality.main()
    r = json.loads(out.read_text())
    for name, floors in [('lookup', (0.01, 0.02, 0.05, 0.1)), ('lookup_abs', (0.01, 0.02, 0.05, 0.1)),
                         ('mirror', (0.05, 0.1, 0.2, 0.5)), ('mirror_abs', (0.05, 0.1, 0.2, 0.5))]:
        rec = r['variants'][name]
        assert rec['params'] == 0 and rec['floor']['0'] in floors
        assert set(rec['valid_auroc_by_floor']['0']) == {str(f) for f in floors}
        assert {'image_auroc', 'pixel_auroc', 'aupro'} <= set(rec['runs']['0'])


def _structured(n, size=32, seed=0):
    "Bright discs of varying size and grey level on black: images with tissue, background and a tissue texture."
    g = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.arange(size), torch.arange(size), indexing='ij')
    r = size * (0.3 + 0.1 * torch.rand(n, 1, 1, 1, generator=g))
    disc = (((yy - size / 2) ** 2 + (xx - size / 2) ** 2) < r ** 2).float()
    return (disc * (0.4 + 0.3 * torch.rand(n, 1, size, size, generator=g))).clamp(0, 1)


def test_trivial_losses_are_the_expected_values(one_thread):
    cfg = MTLConfig(image_size=32, tasks=ALL_TASKS)
    tasks = {n: make_task(n, cfg) for n in ALL_TASKS}
    train = _structured(16)
    for t in tasks.values(): t.fit(train)
    held = task_losses.held_out_batches(tasks, _structured(8, seed=1).repeat(4, 1, 1, 1), seed=0)
    assert len(held) == 1   # 32 images: one batch, so the sums below are the whole loss
    train_batches = task_losses.held_out_batches(tasks, train, 1)
    preds = task_losses.trivial_predictors(tasks, held, train_batches, train.mean(0, keepdim=True))
    triv = task_losses.trivial_losses(tasks, held, preds)
    b = held[0]
    for n in ('geometry', 'jigsaw', 'tissue'):   # the best constant class distribution costs the labels' entropy
        p = torch.bincount(b[n].target.flatten(), minlength=tasks[n].out_channels).float()
        p = p[p > 0] / p.sum()
        assert triv[n]['class frequencies'] == pytest.approx(float(-(p * p.log()).sum()), rel=1e-5)
    assert math.log(4) - 0.25 < triv['geometry']['class frequencies'] <= math.log(4) + 1e-6   # 32 draws of 4 rotations
    assert triv['jigsaw']['class frequencies per location'] < triv['jigsaw']['class frequencies']   # most tiles stay put
    fg = b['denoise'].weight
    l1 = ((b['denoise'].input - b['denoise'].target).abs() * fg).sum() / fg.sum()
    assert triv['denoise']['identity'] == pytest.approx(float(l1), rel=1e-5)
    hid = b['inpaint'].weight
    l1 = ((train.mean(0, keepdim=True) - b['inpaint'].target).abs() * hid).sum() / hid.sum()
    assert triv['inpaint']['mean training image'] == pytest.approx(float(l1), rel=1e-5)
    fill = task_losses.local_mean_fill(b['inpaint'], tasks['inpaint'].grid)
    assert torch.equal(fill * (1 - hid), b['inpaint'].input * (1 - hid))   # visible pixels kept as they are
    t = b['pseudo_anomaly'].target.float(); q = float(t.mean())
    bce = F.binary_cross_entropy(torch.full_like(t, q), t)
    dice = 1 - (2 * q * t.sum() + 1) / (q * t.numel() + t.sum() + 1)
    assert triv['pseudo_anomaly']['constant probability'] == pytest.approx(float(bce + dice), rel=1e-4)


def test_task_losses_end_to_end_tiny(tmp_path, one_thread):
    out = tmp_path / 'tl.json'
    r = task_losses.main(['--image-size', '64', '--steps', '5', '--repeats', '2', '--threads', '1', '--out', str(out)])
    saved = json.loads(out.read_text())
    assert saved['rows'] == json.loads(json.dumps(r['rows']))
    rows = {(x['task'], x['trivial_predictor']): x for x in saved['rows']}
    assert {t for t, _ in rows} == set(DEFAULT_TASKS)
    assert set(rows) >= {('geometry', 'class frequencies'), ('denoise', 'identity'), ('inpaint', 'mean training image'),
                         ('pseudo_anomaly', 'constant probability'), ('tissue', 'class frequencies per location')}
    for x in rows.values():
        assert {'train', 'held_out', 'trivial', 'ratio', 'learns', 'same_batches'} <= set(x)
        assert x['same_batches'] and x['ratio'] == pytest.approx(x['held_out'] / x['trivial'])
        assert x['learns'] == (x['ratio'] < 0.9)
    assert math.log(4) - 0.25 < rows['geometry', 'class frequencies']['trivial'] <= math.log(4) + 1e-6   # 30 draws of 4
    assert saved['settings']['n_held_out'] == 15 and saved['settings']['repeats'] == 2
    md = out.with_suffix('.md').read_text()
    assert '| task | trivial predictor | final train loss | held-out loss | trivial loss | held-out / trivial | learns? |' in md


def test_task_losses_of_a_saved_run(tmp_path, one_thread):
    from mtlmad.checkpoint import save_checkpoint, update_run_record
    from mtlmad.datasets import load_split, make_demo_data
    from mtlmad.train import fit
    data = make_demo_data(tmp_path / 'data', image_size=64)
    common = ['--repeats', '1', '--threads', '1']
    here = task_losses.main(['--data', str(data), '--image-size', '64', '--steps', '5', *common, '--out', str(tmp_path / 'a.json')])
    cfg = MTLConfig(image_size=64, steps=5)
    res = fit(cfg, load_split(data, 'train', 64, normal_only=True).images, progress=False, device='cpu')
    save_checkpoint(tmp_path / 'run' / 'model.pt', res.model, res.tasks, cfg, history=res.history)
    update_run_record(tmp_path / 'run', data=data)
    saved = task_losses.main(['--run', str(tmp_path / 'run'), *common, '--out', str(tmp_path / 'b.json')])
    assert saved['settings']['run'] == [str(tmp_path / 'run')] and saved['settings']['data'] == str(data)
    for x, y in zip(here['rows'], saved['rows']):   # the same seed, data and schedule: the same model and the same batches
        assert (x['task'], x['trivial_predictor']) == (y['task'], y['trivial_predictor'])
        assert x['train'] == pytest.approx(y['train']) and x['held_out'] == pytest.approx(y['held_out'], rel=1e-4)
        assert x['trivial'] == pytest.approx(y['trivial'])


def test_task_losses_of_several_runs(tmp_path, one_thread):
    "--run RUN RUN: each run folder (as bench/ablate.py --runs keeps them) measured on the held-out normals of its own data."
    from mtlmad.datasets import make_demo_data
    from mtlmad.jobs import train_run
    data = make_demo_data(tmp_path / 'data', image_size=64)
    cfg = MTLConfig(image_size=64, steps=3, width=8, n_experts=2, tasks=('denoise', 'geometry'), intensity='median')
    runs = [train_run(data, tmp_path / f'm_s{s}', cfg.replace(seed=s), device='cpu', progress=False) for s in (0, 1)]
    r = task_losses.main(['--run', *map(str, runs), '--repeats', '1', '--threads', '1', '--out', str(tmp_path / 'tl.json')])
    assert r['settings']['run'] == [str(x) for x in runs] and r['settings']['seeds'] == [0, 1] and r['settings']['data'] == str(data)
    assert r['settings']['held_out_from'] == 'valid split normals' and r['rows'][0]['n_seeds'] == 2
    md = (tmp_path / 'tl.md').read_text()
    assert '| denoise | identity |' in md and '| geometry | class frequencies |' in md
    with pytest.raises(SystemExit): task_losses.main(['--saved', str(data), str(runs[0])])   # the pickles of old bench/ablate.py: gone


@pytest.fixture(scope='module')
def ablated(tmp_path_factory):
    "A tiny run folder trained by bench/ablate.py on a tiny BMAD folder: (run folder, its log, the log's one line)."
    import ablate
    tmp, n = tmp_path_factory.mktemp('ablate'), torch.get_num_threads()
    torch.set_num_threads(1)
    ds = make_bmad(tmp, 'Brain', n_train=12, n_valid=(2, 2), n_test=(3, 3))
    log, runs = tmp / 'ablation.jsonl', tmp / 'runs'
    tiny = ['--set', 'image_size=32', '--set', 'width=8', '--set', 'n_experts=2', '--set', 'steps=3']
    ablate.main(['--name', 'tiny', '--data', str(ds), '--seeds', '0', '--runs', str(runs), '--log', str(log), *tiny])
    torch.set_num_threads(n)
    (line,) = log.read_text().splitlines()
    return runs / 'tiny_s0', log, json.loads(line)


def test_ablate_logs_what_mtlmad_evaluate_reports(ablated, tmp_path, one_thread):
    "bench/ablate.py trains an ordinary run folder and logs, for its test split, the figures `mtlmad evaluate` reports."
    import ablate
    from mtlmad.jobs import evaluate_run
    run, log, r = ablated
    assert set(r) == {'name', 'seed', 'config', 'fit_s', 'steps', 'command', 'scoring', 'scorer', 'fusion_tasks', 'data', 'device', 'valid', 'test'}
    assert (r['name'], r['seed'], r['steps'], r['config']['steps'], r['device']) == ('tiny/local', 0, 3, 3, 'cpu')
    reported = evaluate_run(run, tmp_path / 'report', progress=False)
    assert set(r['test']) == {*reported, 'fused_max'}
    for part, m in reported.items(): assert r['test'][part] == pytest.approx(m, abs=1e-9), part
    # another calibration (k) is another figure: the comparison above can fail
    ablate.main(['--rescore', str(run), '--scorer', '{"k": 3}', '--log', str(log)])
    again = json.loads(log.read_text().splitlines()[-1])
    assert again['scorer'] == {'k': 3} and again['name'] == 'tiny/local' and again['steps'] == 3
    assert again['test']['fused'] != pytest.approx(reported['fused'], abs=1e-9)
    assert '| tiny/local | 1 (1) | 3 |' in ablate.table(log)   # one model (data, seed) scored twice: the table counts it once
    with pytest.raises(SystemExit, match='only local'): ablate.main(['--rescore', str(run), '--scorings', 'whole'])


def test_ablate_loto_singles_with_the_lookup_part(ablated, tmp_path, one_thread):
    "--loto --singles: one row per fusion (all, each part left out, each part alone), with the lookup part among the parts."
    import ablate
    run, log = ablated[0], tmp_path / 'loto.jsonl'
    ablate.main(['--rescore', str(run), '--name', 'lk', '--scorer', '{"lookup": "both", "k": 3, "mirror": ""}', '--loto', '--singles', '--log', str(log)])
    rows = {r['name']: r for r in map(json.loads, log.read_text().splitlines())}
    fused = rows['lk/local']['fusion_tasks']
    assert fused[-1] == 'lookup' and set(rows) == {'lk/local', *(f'lk-{k}_{t}/local' for t in fused for k in ('no', 'only'))}
    alone = rows['lk-only_lookup/local']
    assert alone['fusion_tasks'] == ['lookup']
    assert alone['valid']['fused']['image_auroc'] == pytest.approx(alone['valid']['lookup']['image_auroc'], abs=1e-9)   # one part fused: its own ranking
    assert rows['lk-no_lookup/local']['fusion_tasks'] == fused[:-1]


def test_scoring_sweep_starts_from_what_mtlmad_evaluate_reports(ablated, tmp_path, one_thread):
    "The sweep's row with no change is the run's own scoring: `mtlmad evaluate --split valid`'s fused figures."
    import scoring_sweep
    from mtlmad.jobs import evaluate_run
    run = ablated[0]
    (same,), (k3,) = scoring_sweep.main(['--settings', '[{}, {"k": 3}]', str(run)])
    reported = evaluate_run(run, tmp_path / 'report', split='valid', progress=False)['fused']
    for k in ('image_auroc', 'pixel_auroc', 'aupro'): assert same[k] == pytest.approx(reported[k], abs=1e-6), k
    assert k3 != same


def test_proto_map_lookup_starts_from_the_package_map(ablated, tmp_path, one_thread):
    "The prototype's `default` row is the map with the lookup part fused like every part (`mtlmad evaluate --split valid --lookup-map none`); a run without the lookup part is refused."
    import shutil
    import proto_map_lookup
    from mtlmad.jobs import calibrate_run, evaluate_run
    run = ablated[0]
    res = proto_map_lookup.main([str(run)])
    reported = evaluate_run(run, tmp_path / 'report', split='valid', progress=False, lookup_map='')['fused']
    assert res['default'][0] == pytest.approx((reported['pixel_auroc'], reported['aupro']), abs=1e-6)
    assert set(res) == {'default', 'lookup+best_learned', 'mean(lookup, learned_top2)', 'max(lookup, learned_top2)', 'lookup_only'}
    import scoring_sweep   # the option `lookup_map` draws the prototype's maps
    (_,), (mean,), (larger,) = scoring_sweep.sweep([run], [{}, {'lookup_map': 'mean'}, {'lookup_map': 'max'}])
    assert (mean['pixel_auroc'], mean['aupro']) == pytest.approx(res['mean(lookup, learned_top2)'][0], abs=1e-6)
    assert (larger['pixel_auroc'], larger['aupro']) == pytest.approx(res['max(lookup, learned_top2)'][0], abs=1e-6)
    plain = shutil.copytree(run, tmp_path / 'plain')
    calibrate_run(plain, {'lookup': ''}, device='cpu', progress=False, save=True)
    with pytest.raises(SystemExit, match='no lookup part'): proto_map_lookup.main([str(plain)])


def test_proto_crop_fits_each_image_to_its_tissue(tmp_path):
    "Each image and its mask are cut to one square around the image's tissue; specks of noise and dark frames are not tissue."
    from PIL import Image
    import proto_crop
    src = tmp_path / 'src'
    head = np.zeros((64, 80), np.uint8); head[10:30, 40:70] = 200; head[2, 2] = 255   # a 20 x 30 head, one bright speck
    mask = np.zeros_like(head); mask[15:20, 50:55] = 255
    for rel, a in [('train/good/a.png', head), ('test/Ungood/img/b.png', head), ('test/Ungood/label/b.png', mask)]:
        (src / rel).parent.mkdir(parents=True, exist_ok=True); Image.fromarray(a).save(src / rel)
    (src / 'dataset.json').write_text('{}')
    assert proto_crop.crop_folder(src, tmp_path / 'dst', margin=0.1) == 2
    img = np.asarray(Image.open(tmp_path / 'dst/test/Ungood/img/b.png'))
    lab = np.asarray(Image.open(tmp_path / 'dst/test/Ungood/label/b.png'))
    assert img.shape == lab.shape == (36, 36)   # the head's longer side, 30, plus 10 % each way
    assert (img == 200).sum() == 20 * 30 and (lab > 0).sum() == 25   # the whole head and the whole lesion kept
    assert np.array_equal(lab > 0, (img == 200) & (lab > 0)) and (tmp_path / 'dst/dataset.json').exists()
    assert proto_crop.tissue_square(np.zeros((32, 32)), margin=0) == (0, 32, 0, 32)   # an all-dark image: the whole of it
    with pytest.raises(SystemExit, match='no PNG images'): proto_crop.crop_folder(tmp_path / 'dst/nothing', tmp_path / 'x')


def test_proto_crop_puts_maps_back_where_each_crop_came_from():
    "A crop's map, scaled (bilinear) to its box on the source grid; the box may leave the grid; outside it, the map's least value."
    import proto_crop
    m = np.zeros((2, 4, 4), np.float32); m[0, :2, :2] = 1; m[1] = 3; m[1, 0, 0] = 2
    out = proto_crop.uncrop(m, [(2, 10, 4, 12), (-2, 6, -2, 6)], 12)
    assert out.shape == (2, 12, 12)
    assert (out[0, 2:5, 4:7] == 1).all() and 0 < out[0, 5, 7] < 1 and out[0, :2].max() == out[0, 7:].max() == out[0, :, :4].max() == 0
    assert out[1, 6:].max() == 2 and out[1, :6, 6:].max() == 2 and out[1, 5, 5] == 3   # the box's part off the grid is dropped


@pytest.fixture(scope='module')
def cropped(ablated, tmp_path_factory):
    "A tiny run trained by bench/ablate.py on a cropped copy of the `ablated` data: (source folder, run folder, its log row)."
    import ablate, proto_crop
    from mtlmad.checkpoint import run_data
    tmp, n = tmp_path_factory.mktemp('cropped'), torch.get_num_threads()
    torch.set_num_threads(1)
    src = run_data(ablated[0])
    proto_crop.crop_folder(src, tmp / 'crop')
    tiny = ['--set', 'image_size=32', '--set', 'width=8', '--set', 'n_experts=2', '--set', 'steps=3']
    ablate.main(['--name', 'tinyc', '--data', str(tmp / 'crop'), '--seeds', '0', '--runs', str(tmp / 'runs'), '--log', str(tmp / 'log.jsonl'), *tiny])
    torch.set_num_threads(n)
    return src, tmp / 'runs/tinyc_s0', json.loads((tmp / 'log.jsonl').read_text())


def test_proto_crop_measures_a_cropped_run_on_the_source_grid(cropped, tmp_path, one_thread):
    "A run trained on a cropped copy, measured on the source: the same image scores as on its own data, maps on the source's grid."
    import shutil
    import proto_crop
    src, run, own = cropped
    log = tmp_path / 'log.jsonl'
    row = proto_crop.main([str(src), '--evaluate', str(run), '--log', str(log)])
    assert row['name'] == 'tinyc_uncrop/local' and row['data'] == str(src) and len(log.read_text().splitlines()) == 1
    for split in ('valid', 'test'):
        assert row[split]['fused']['image_auroc'] == pytest.approx(own[split]['fused']['image_auroc'])
        assert 0 <= row[split]['fused']['aupro'] <= 100 and 0 <= row[split]['fused']['pixel_auroc'] <= 100
    other = shutil.copytree(src, tmp_path / 'other')
    next((other / 'valid').rglob('*.png')).unlink()   # one file fewer: not the folder the run's data was cropped from
    with pytest.raises(SystemExit, match='not a cropped copy'): proto_crop.evaluate_on_source(run, other)
    with pytest.raises(SystemExit, match='not a cropped copy'): proto_crop.wrapped_scorer(run, other)


def test_proto_crop_frame_lookup_and_wrap_score_the_whole_frame(cropped, tmp_path, one_thread):
    "--frame-lookup takes the lookup part from the source frames (the learned parts from the crops); --wrap scores whole frames through the crops."
    import types
    import proto_crop
    from mtlmad.calibration import LOOKUP
    from mtlmad.checkpoint import run_data
    from mtlmad.jobs import load_run_split, open_scorer
    from mtlmad.score import TaskNorm
    src, run, own = cropped
    log = tmp_path / 'log.jsonl'
    row = proto_crop.main([str(src), '--evaluate', str(run), '--frame-lookup', '--log', str(log)])
    assert row['name'] == 'tinyc_framelookup/local' and len(log.read_text().splitlines()) == 1
    for split in ('valid', 'test'):
        assert all(0 <= row[split]['fused'][k] <= 100 for k in ('image_auroc', 'pixel_auroc', 'aupro'))
    # a frame scorer whose lookup part knows the answer: the fused image score must follow it, whatever the crops' lookup part says
    sc = open_scorer(run, 'cpu')
    full = load_run_split(run, sc.cfg, src, 'test')
    answer = full.labels.astype(np.float64) * 1e6
    class Oracle:
        norms = {LOOKUP: TaskNorm(0.0, 1.0, 0.0, 1.0, [0.0, 1.0])}
        def score(self, images, tasks=None):
            assert len(images) == len(full.labels) and tasks == [LOOKUP]
            return types.SimpleNamespace(task_scores={LOOKUP: answer}, task_maps={LOOKUP: np.zeros(images.shape[:1] + images.shape[-2:], np.float32)})
    assert proto_crop.evaluate_on_source(run, src, 'test', Oracle())['fused']['image_auroc'] == pytest.approx(100)
    assert proto_crop.evaluate_on_source(run, src, 'test')['fused']['image_auroc'] == pytest.approx(own['test']['fused']['image_auroc'])
    # --wrap: the run scores whole frames, each cut to its crop before the model and its maps put back in the box
    wrapped = proto_crop.wrapped_scorer(run, src)
    crops = load_run_split(run, sc.cfg, run_data(run), 'test')
    order = [crops.paths.index(str(Path(run_data(run)) / Path(p).relative_to(src))) for p in full.paths]
    maps, _, _ = wrapped.errors(full.images)
    mine, _, _ = sc.errors(crops.images[order])
    every, size = proto_crop.crop_boxes(src), full.images.shape[-1]
    back = proto_crop.uncrop(mine['denoise'], [proto_crop.grid_box(every[Path(p)], p, size) for p in full.paths], size)
    np.testing.assert_allclose(maps['denoise'], back, atol=1e-5)
    np.testing.assert_allclose(maps[LOOKUP], full.images.mean(1).numpy(), atol=1e-6)   # the lookup part: the frame's own grey level
    with pytest.raises(ValueError, match='none of'): wrapped.errors(torch.rand(1, *full.images.shape[1:]))
    row = proto_crop.main([str(src), '--evaluate', str(run), '--wrap', '--log', str(log)])
    assert row['name'] == 'tinyc_wrap/local' and len(log.read_text().splitlines()) == 2


def test_proto_crop_grid_copy_is_what_the_package_crops(ablated, cropped, tmp_path, one_thread):
    "--grid S cuts what `MTLConfig(crop='tissue')` cuts (within 8-bit rounding); --package scores a run on such a copy by the package's crop path."
    import ablate, proto_crop
    from mtlmad.checkpoint import run_data
    from mtlmad.crop import tissue_crop
    from mtlmad.data.loading import load_split
    src, dst = run_data(ablated[0]), tmp_path / 'grid'
    proto_crop.crop_grid_folder(src, dst, 32)
    for split in ('train', 'valid', 'test'):
        frames, copies = load_split(src, split, 32), load_split(dst, split, 32)
        assert [str(Path(p).relative_to(src)) for p in frames.paths] == [str(Path(p).relative_to(dst)) for p in copies.paths]
        assert (tissue_crop(frames.images)[0] - copies.images).abs().max() <= 0.5 / 255 + 1e-6
        assert (frames.masks.sum() > 0) == (copies.masks.sum() > 0)
    tiny = ['--set', 'image_size=32', '--set', 'width=8', '--set', 'n_experts=2', '--set', 'steps=3']
    ablate.main(['--name', 'tinyg', '--data', str(dst), '--seeds', '0', '--runs', str(tmp_path / 'runs'), '--log', str(tmp_path / 'own.jsonl'), *tiny])
    sc = proto_crop.package_scorer(tmp_path / 'runs/tinyg_s0', src)
    assert sc.crop == 'tissue' and sc.frame_reference is not None
    row = proto_crop.main([str(src), '--evaluate', str(tmp_path / 'runs/tinyg_s0'), '--package', '--log', str(tmp_path / 'log.jsonl')])
    assert row['name'] == 'tinyg_pkg/local' and all(0 <= row[s]['fused'][k] <= 100 for s in ('valid', 'test') for k in ('image_auroc', 'aupro'))
    with pytest.raises(SystemExit, match='not cut as the package cuts'): proto_crop.package_scorer(cropped[1], cropped[0])


def test_proto_crop_fixed_square_moves_the_tissue_to_the_middle_and_keeps_its_scale(tmp_path):
    "--fixed 1: each square is the whole frame's size, centred on the tissue: a shift (the tissue's pixels unchanged, centred), no magnification."
    from PIL import Image
    import proto_crop
    a = np.zeros((32, 32), np.float32); a[2:12, 4:18] = 0.8   # tissue off centre: rows 2-11, columns 4-17
    assert proto_crop.tissue_square(a, fixed=1) == (-9, 23, -5, 27)   # centre (7, 11), side 32
    assert proto_crop.tissue_square(a, margin=0) == (-1, 15, 3, 19)   # the default square: the tissue's own size (at least 16 px)
    moved = proto_crop.crop(a, proto_crop.tissue_square(a, fixed=1))
    assert moved.shape == a.shape and moved.sum() == a.sum() and (moved[11:21, 9:23] == 0.8).all()
    src = tmp_path / 'src'; (src / 'train/good').mkdir(parents=True)
    Image.fromarray((a * 255).astype(np.uint8)).save(src / 'train/good/x.png')
    proto_crop.crop_grid_folder(src, tmp_path / 'dst', 32, fixed=1)
    assert json.loads((tmp_path / 'dst/crop.json').read_text())['fixed'] == 1
    assert (np.asarray(Image.open(tmp_path / 'dst/train/good/x.png')) == np.round(moved * 255)).all()
    with pytest.raises(SystemExit): proto_crop.main([str(src), str(tmp_path / 'd2'), '--fixed', '1'])   # --fixed needs --grid


def test_proto_crop_smallest_is_the_packages_crop_at_that_least_side(tmp_path, monkeypatch):
    "--smallest PX: a small head's square is PX (plus the margin), as the package's crop cuts it with `SMALLEST = PX`."
    import torch
    from PIL import Image
    import mtlmad.crop, proto_crop
    from mtlmad.data.loading import load_split
    src = tmp_path / 'src'; (src / 'train/good').mkdir(parents=True)
    a = np.zeros((32, 32), np.uint8); a[12:20, 10:18] = 200   # an 8 x 8 head
    Image.fromarray(a).save(src / 'train/good/x.png')
    assert proto_crop.tissue_square(a / 255, 0, smallest=24) == (4, 28, 2, 26)   # 24 px, centred on (16, 14)
    proto_crop.crop_grid_folder(src, tmp_path / 'dst', 32, smallest=24)
    assert json.loads((tmp_path / 'dst/crop.json').read_text())['smallest'] == 24
    assert proto_crop.SMALLEST == mtlmad.crop.SMALLEST   # the bench's default least side is the package's
    with pytest.raises(SystemExit): proto_crop.main([str(src), str(tmp_path / 'd2'), '--smallest', '24'])   # --smallest needs --grid
    monkeypatch.setattr(mtlmad.crop, 'SMALLEST', 24)
    frames, copies = load_split(src, 'train', 32), load_split(tmp_path / 'dst', 'train', 32)
    ours = mtlmad.crop.tissue_crop(frames.images)[0]
    assert (ours - copies.images).abs().max() <= 0.5 / 255 + 1e-6
    assert (ours[0, 0] > 0.5).sum() < (mtlmad.crop.crop_to_grid(frames.images, np.array([[12, 20, 10, 18]]))[0, 0] > 0.5).sum()   # less magnified


def test_proto_crop_per_patient_cuts_every_slice_of_a_head_alike(tmp_path):
    "Per patient: one square for all of a patient's slices (a noisy slice does not widen it); patients from dataset.json."
    from PIL import Image
    import proto_crop
    src = tmp_path / 'src'; (src / 'train/good').mkdir(parents=True)
    for i, (h, w) in enumerate([(40, 40)] * 8 + [(36, 30), (38, 36), (30, 30), (20, 20)]):   # slices of one head, the last near its top
        a = np.zeros((64, 64), np.uint8); a[10:10 + h, 12:12 + w] = 200
        Image.fromarray(a).save(src / f'train/good/P_01_{i}.png')
    noisy = np.full((64, 64), 30, np.uint8); noisy[10:50, 12:52] = 200   # a low-signal slice: its noise counts as tissue
    Image.fromarray(noisy).save(src / 'train/good/P_01_12.png')
    (src / 'dataset.json').write_text(json.dumps({'patients': {'train': ['P_01']}}))
    boxes = proto_crop.crop_boxes(src, margin=0, per='patient')
    assert len(set(boxes.values())) == 1 and next(iter(boxes.values())) == (10, 50, 12, 52)   # the head's 40 x 40, not the noisy slice's 64 x 64
    assert proto_crop.crop_folder(src, tmp_path / 'dst', margin=0, per='patient') == 13
    assert json.loads((tmp_path / 'dst/crop.json').read_text()) == {'margin': 0, 'per': 'patient'}
    (src / 'dataset.json').write_text('{}')
    with pytest.raises(SystemExit, match='lists no patients'): proto_crop.crop_boxes(src, per='patient')


def test_by_patient_ranks_each_patients_normals_and_orders_within_it(ablated, capsys, one_thread):
    "Per patient: the median rank of its normals among the split's normals, and its own tumour-against-normal AUROC."
    import by_patient
    t = by_patient.patient_table(np.array([0.1, 0.2, 0.9, 0.8, 0.3, 0.95]), np.array([0, 0, 1, 0, 0, 1]), ['a', 'a', 'a', 'b', 'b', 'b'])
    assert t['a'] == (2, 1, 0.125, 100.0)   # ranks 0 and 0.25 among the four normals; its tumour above both its normals
    assert t['b'][:3] == (2, 1, 0.625) and t['b'][3] == 100.0
    assert np.isnan(by_patient.patient_table(np.array([1., 2.]), np.array([0, 0]), ['c', 'c'])['c'][3])   # one class: no AUROC
    with pytest.raises(SystemExit, match='no normal image'): by_patient.patient_table(np.array([1.]), np.array([1]), ['d'])
    (tables,) = [by_patient.main([str(ablated[0])])]
    out = capsys.readouterr().out
    assert f"AUROC {ablated[2]['valid']['fused']['image_auroc']:.1f}" in out   # the whole split: the figure the log holds
    assert sum(n0 + n1 for n0, n1, *_ in tables[0].values()) == 4


def test_per_patient_table_separates_within_patient_from_across_patients():
    import per_patient
    patients = np.array(['P1'] * 4 + ['P2'] * 4)
    labels = np.array([0, 0, 1, 1] * 2)
    # P1's tumours above its own normals but below P2's normals: within 100, tumours-vs-rest 0
    z = np.array([0.0, 0.1, 0.2, 0.3, 0.5, 0.6, 0.7, 0.8])
    table = per_patient.patient_table(patients, labels, {'A': z})
    rows = {r.split(' | ')[0].strip('| '): r for r in table.splitlines()[2:]}
    assert rows['P1'].endswith('| 4 (2) | 100 / 0 / 100 |')
    assert rows['P2'].endswith('| 4 (2) | 100 / 100 / 0 |')
    assert math.isnan(per_patient.auroc(np.array([]), np.array([1.0])))
    parts = per_patient.parts_table(patients, labels, {'x': z, 'only_a': z}, {'x': -z})   # B's part reverses every order
    rows = parts.splitlines()
    assert len(rows) == 3 and rows[2].startswith('| x | 75.0 → 25.0 | 100 → 0 | 100 → 0 | 100 → 0 |')


def test_compare_pairs_by_fold_and_seed_on_the_split_asked(tmp_path):
    "ablate.py --compare: b minus a, paired by (data folder, seed); validation unless --split test; an unpaired run is left out."
    import ablate
    row = lambda name, data, seed, v, t: json.dumps(dict(name=name, data=f'/x/{data}', seed=seed,
                                                         valid={'fused': dict(image_auroc=v, pixel_auroc=v, aupro=v)},
                                                         test={'fused': dict(image_auroc=t, pixel_auroc=t, aupro=t)}))
    log = tmp_path / 'log.jsonl'
    log.write_text('\n'.join([row('A', 'fold1', 0, 80, 70), row('B', 'fold1', 0, 82, 69), row('A', 'fold2', 1, 90, 60),
                               row('B', 'fold2', 1, 93, 64), row('B', 'fold3', 2, 99, 99)]) + '\n')
    valid, test = ablate.compare(log, 'A', 'B'), ablate.compare(log, 'A', 'B', 'test')
    assert '| fold1 | 0 | 80.0 / 82.0 / +2.0 |' in valid and 'fold3' not in valid
    assert 'image_auroc: mean difference +2.50 over 2 pairs' in valid and '2 of 2 pairs favour B' in valid
    assert '| fold2 | 1 | 60.0 / 64.0 / +4.0 |' in test and 'image_auroc: mean difference +1.50 over 2 pairs' in test
    assert 'test (report only' in test and '1 of 2 pairs favour B' in test
    with pytest.raises(SystemExit, match='valid'): ablate.compare(log, 'A', 'B', 'train')
    with pytest.raises(SystemExit, match='no \\(data, seed\\) pair'): ablate.compare(log, 'A', 'C')
    with open(log, 'a') as f: f.write(row('C', 'fold3', 2, 97, 98) + '\n')
    joined = ablate.compare(log, 'A+C', 'B')   # C's model joins A's side: fold3 is paired now
    assert '| fold3 | 2 | 97.0 / 99.0 / +2.0 |' in joined and 'over 3 pairs' in joined
    with pytest.raises(SystemExit, match='on both sides'): ablate.compare(log, 'A+C', 'C')


def test_score_scales_rules_find_a_large_faint_anomaly_that_the_sum_ranks_low():
    "score_scales.py: 'max' puts each smoothing's maximum on the normals' scale; a coarse-only anomaly wins there, not under the sum."
    import score_scales as ss
    rng = np.random.default_rng(0)
    k = len(ss.SIGMAS)
    def split(n_normal, faint, sharp):
        fine = np.r_[rng.normal(5, 1, n_normal), np.full(faint, 5.0), np.full(sharp, 7.5)]   # the finest smoothing: noisy
        coarse = np.r_[rng.normal(1, 0.1, n_normal), np.full(faint, 1.6), np.full(sharp, 1.1)]   # the coarsest: steady
        maxima = np.stack([fine + (coarse - fine) * i / (k - 1) for i in range(k)], 1)
        return dict(labels=[0] * n_normal + [1] * (faint + sharp), a=maxima.tolist())
    rec = dict(data='/x/mtlmad_demo', parts=['a'], groups=[], top=2, valid=split(40, 5, 5), test=split(40, 10, 0))
    full = (ss.SIGMAS[0], ss.SIGMAS[-1])
    assert ss.image_auroc(rec, 'test', 'max', full) > 95 > 75 > ss.image_auroc(rec, 'test', 'sum', full)   # faint tumours: only 'max' sees them
    t = ss.table({'r': rec})
    assert t.splitlines()[0] == '| rule | demo valid | demo test |' and len(t.splitlines()) == 2 + len(ss.RULES)
    assert '(+0.00, 0 of 1)' in t.splitlines()[2]   # the base row against itself


def test_calibration_macs_counts_the_neighbours_and_each_part():
    from mtlmad.calibration import ScoringConfig
    s = ScoringConfig(k=2, ref_sigma=0, lookup_own_spread=False, distance_trend=False)   # no smoothing of the reference's mean and spread
    one = cost.calibration_macs(8, 1, n_ref=3, scoring=s, thumb=2, scale=2)
    assert cost.calibration_macs(8, 1, 3, s.replace(distance_trend=True), 2, 2) - one == 2 + 1 + 3   # the mean of the 2 nearest distances, its log, a trend off the part
    assert cost.calibration_macs(8, 1, 3, s.replace(lookup_own_spread=True), 2, 2) - one == 2 * 64   # the lookup part in its image's units: |z| and a division a pixel
    # the thumbnail (64), the distances to 3 references (2 x 3 x 4), then one part: mean and spread of 2 maps at 4x4 (3 x 2 x 16),
    # the floor (3 x 16), two maps brought up (2 x 4 x 64), the z (2 x 64), and its share of the fusion (64)
    assert one == 64 + 24 + 96 + 48 + 512 + 128 + 64
    assert cost.calibration_macs(8, 2, 3, s, 2, 2) - one == 96 + 48 + 512 + 128 + 64   # a second part costs as much again
    assert cost.calibration_macs(8, 1, 13, s, 2, 2) - one == 2 * 10 * 4   # ten more references: ten more distances
    assert cost.calibration_macs(8, 1, 3, ScoringConfig(k=2, ref_sigma=1.0), 2, 2) > one   # smoothing the spread costs


def test_smoothing_macs_counts_two_passes_of_each_kernel():
    from mtlmad.calibration import ScoringConfig
    from mtlmad.ops import gaussian_kernel1d
    taps = lambda s: len(gaussian_kernel1d(s, torch.device('cpu'), torch.float32))
    one = ScoringConfig(score_sigma=0.5, sigma=0)   # one smoothing per part, the fused map not smoothed
    assert cost.smoothing_macs(16, 3, one) == 2 * 16 * 16 * 3 * taps(0.5)
    full = ScoringConfig(score_shrink=1)   # every smoothing at full resolution (mtlmad 0.2.15)
    assert cost.smoothing_macs(128, 7, full) == 2 * 128 * 128 * (7 * sum(map(taps, full.score_sigma)) + taps(full.sigma))
    d = ScoringConfig()   # 0.5 px at full size; 2 px on 2 x 2 blocks and 8 px on 4 x 4 (what the blocks' average left of each)
    rest = lambda s, f: taps(math.sqrt(s * s - (f * f - 1) / 12) / f)
    per_part = 2 * 128 * 128 * taps(0.5) + (128 * 128 + 2 * 64 * 64 * rest(2.0, 2)) + (128 * 128 + 2 * 32 * 32 * rest(8.0, 4))
    assert cost.smoothing_macs(128, 7, d) == 7 * per_part + 2 * 128 * 128 + 2 * 128 * 128 * taps(d.sigma)   # two blocks' shares of the tissue
    assert cost.smoothing_macs(128, 7, d) < cost.smoothing_macs(128, 7, full) / 5


def test_crossfit_halves_keep_each_patient_on_one_side():
    "bench/crossfit.py cuts a split by patient: no patient on both sides, two normals to calibrate on, both classes to judge."
    import crossfit
    groups, labels = np.repeat([f'p{i}' for i in range(6)], 4), np.tile([0, 0, 0, 1], 6)
    hs = crossfit.halves(groups, labels, n=10)
    assert len(hs) == 10 and len({a.tobytes() for a in hs}) > 1
    for a in hs:
        assert all(len(set(a[groups == g].tolist())) == 1 for g in set(groups))
        assert (a & (labels == 0)).sum() >= 2 and set(labels[~a].tolist()) == {0, 1}
    assert crossfit.halves(np.array(['a', 'a', 'b', 'b']), np.array([0, 1, 0, 1]), n=5) == []   # one patient a side: never two normals and both classes
    lgg = [f'x/TCGA_CS_{i}_2000_{k}.png' for i in range(4) for k in (1, 2)]
    assert list(crossfit.patient_groups(lgg, [0, 1] * 4)) == [f'TCGA_CS_{i}_2000' for i in range(4) for _ in (1, 2)]
    assert len(set(crossfit.patient_groups(lgg[:6], [0, 1] * 3))) == 6   # three patients: each normal its own group
    demo = ['good/ch2_045.png', 'good/ch2_046.png', 'Ungood/ch2_045_0.png', 'Ungood/ch2_045_1.png', 'Ungood/ch2_047_0.png']
    assert list(crossfit.patient_groups(demo, [0, 0, 1, 1, 1])) == ['ch2_045', 'ch2_046', 'ch2_045', 'ch2_045', 'ch2_047_0']   # a slice with its lesioned copies


def test_crossfit_calibrates_as_the_scorer_and_judges_the_whole_split_as_mtlmad_evaluate(ablated, tmp_path, one_thread):
    "On every validation normal, bench/crossfit.py's calibration is the run's own, and its fused figure `mtlmad evaluate --split valid`'s."
    import crossfit
    from mtlmad.jobs import evaluate_run, load_run_split, open_scorer
    run = ablated[0]
    sc = open_scorer(run, 'cpu')
    es = load_run_split(run, sc.cfg, None, 'valid')
    maps, scores, _, fg = sc._parts(es.images, parts=list(sc.fusion_tasks), per_scale=True)
    full = crossfit.fit_norms(scores, maps, fg, np.asarray(es.labels) == 0)
    for t in sc.fusion_tasks:
        for k in ('score_mean', 'score_std', 'map_mean', 'map_std', 'scale_mean', 'scale_std'):
            assert getattr(full[t], k) == pytest.approx(getattr(sc.norms[t], k), rel=1e-5), (t, k)
    reported = evaluate_run(run, tmp_path / 'report', split='valid', progress=False)['fused']['image_auroc']
    r = crossfit.crossfit(sc, es.images, es.labels, crossfit.patient_groups(es.paths, es.labels))
    assert r['whole'] == pytest.approx(reported, abs=1e-6) and r['halves'] == 0   # 2 + 2 images: no halves
    with pytest.raises(SystemExit, match='cannot be cut'): crossfit.main([str(run)])
    more = make_bmad(tmp_path, 'Brain', n_train=3, n_valid=(8, 8), n_test=(1, 1))
    (name, r), = crossfit.main([str(run), '--data', str(more), '--halves', '4', '--loto', '--out', str(tmp_path / 'cf.json')])
    assert json.loads((tmp_path / 'cf.json').read_text())['runs'][str(run)] == pytest.approx(r)
    assert r['halves'] == 4 and set(sc.fusion_tasks) | {f'no_{t}' for t in sc.fusion_tasks} < set(r)
    one = crossfit.crossfit(sc, *(lambda e: (e.images, e.labels, crossfit.patient_groups(e.paths, e.labels)))(load_run_split(run, sc.cfg, more, 'valid')), n=4)
    assert one['cross'] == pytest.approx(r['cross']) and not any(k.startswith('no_') for k in one)   # the same halves (seed 0): the same figure


class _Recorder(torch.nn.Module):
    "Stands in for the joint model: records the inputs of one `forward_tasks`, outputs zeros of each task's shape."
    def __init__(self, out): super().__init__(); self.out, self.seen, self.aux_loss, self.w = out, {}, torch.zeros(()), torch.nn.Parameter(torch.zeros(()))
    def forward_tasks(self, inputs):
        self.seen = dict(inputs)
        return {n: torch.zeros(x.shape[0], self.out[n], *x.shape[2:]) + self.w for n, x in inputs.items()}


@pytest.mark.parametrize('clean', [False, True])
def test_proto_mirror_input_gives_each_input_its_mirror_image(clean, one_thread):
    "Beside each training input: its reflection about the clean image's midline, or (`--clean`) the clean image's own; geometry's turned as its input."
    import proto_mirror_input as P
    from mtlmad.mirror import find_midlines, reflect
    from mtlmad.tasks import make_tasks
    from mtlmad.tasks.geometry import apply_transform
    cfg = MTLConfig(image_size=32, width=8, n_experts=2, tasks=('denoise', 'geometry', 'tissue', 'pseudo_anomaly'))
    x = torch.rand(4, 1, 32, 32)
    tasks = make_tasks(cfg)
    for t in tasks.values(): t.fit(x)
    rec = _Recorder({n: t.out_channels for n, t in tasks.items()})
    with P.patched(clean):
        P.step_losses(rec, tasks, cfg, x, torch.Generator().manual_seed(0))
    g = torch.Generator().manual_seed(0)
    plain = {n: t.make_batch(x, g) for n, t in tasks.items()}   # the same draws, in the same order
    thetas = find_midlines(x)
    for n, seen in rec.seen.items():
        assert seen.shape == (4, 2, 32, 32)
        torch.testing.assert_close(seen[:, :1], plain[n].input)
        if n == 'geometry': want = apply_transform(reflect(x, thetas), plain[n].target[:, 0, 0])
        else: want = reflect(x if clean else seen[:, :1], thetas)
        torch.testing.assert_close(seen[:, 1:], want)
    if not clean: assert not torch.allclose(rec.seen['denoise'][:, 1:], reflect(x, thetas))   # the noise is mirrored too
    with P.patched(clean, only=['tissue']):   # `--only tissue`: the other tasks' mirror channels are empty, at training and at scoring
        P.step_losses(rec, tasks, cfg, x, torch.Generator().manual_seed(0))
        model = P.MirrorInputModel(cfg, {n: t.out_channels for n, t in tasks.items()})
        model.thetas, seen = thetas, {}
        model.stem1.register_forward_hook(lambda m, i, o: seen.update({len(seen): i[0]}))   # returns None: the output stays
        model.forward_tasks({'tissue': x, 'denoise': x})
    for n, got in rec.seen.items():
        torch.testing.assert_close(got[:, :1], plain[n].input)
        assert (got[:, 1:].abs().sum() > 0) == (n == 'tissue'), n
    assert [got[:, 1:].abs().sum().item() > 0 for got in seen.values()] == [True, False]   # one clean image, two inputs: tissue's with its reflection
    torch.testing.assert_close(seen[0][:, 1:], reflect(x, thetas))


def test_proto_mirror_input_trains_scores_and_leaves_the_package_as_it_was(tmp_path, one_thread):
    import proto_mirror_input as P
    import mtlmad.train as train_mod
    from mtlmad.checkpoint import load_run
    from mtlmad.data.brain import make_demo_data
    from mtlmad.jobs import open_scorer, train_run
    from mtlmad.moe import MTLModel
    data = make_demo_data(tmp_path / 'data', image_size=64)   # lesions need room; the model sees 32 px
    with P.patched():
        run = train_run(data, tmp_path / 'run', MTLConfig(image_size=32, width=8, n_experts=2, steps=2), device='cpu', progress=False)
        assert load_run(run, device='cpu').model.stem1[0].in_channels == 2
        res = open_scorer(run, device='cpu').score(torch.rand(3, 1, 32, 32) * 0.5)
        assert np.isfinite(res.scores).all()
    assert train_mod.MTLModel is MTLModel and train_mod._step_losses is not P.step_losses
    with pytest.raises(ValueError, match='weights do not match'): load_run(run, device='cpu')   # without the prototype: a one-channel model


def test_fusion_rules_score_as_the_package_fuses(ablated, tmp_path, one_thread):
    "bench/fusion_rules.py: its rules on one scoring pass give what the scorer's own fusion gives, in-sample and cross-fitted."
    import crossfit, fusion_rules
    from mtlmad.jobs import evaluate_run, load_run_split, open_scorer
    from mtlmad.metrics import image_auroc
    run = ablated[0]
    more = make_bmad(tmp_path, 'Brain', n_train=3, n_valid=(8, 8), n_test=(4, 4))
    rules = 'top2,top1,all,map_max,fisher,two_kinds,top2-no_lookup,top2-no_tissue-no_pseudo_anomaly'
    res = fusion_rules.main([str(run), '--data', str(more), '--rules', rules, '--halves', '4', '--out', str(tmp_path / 'fr.json')])[str(run)]
    saved = json.loads((tmp_path / 'fr.json').read_text())['runs'][str(run)]
    assert set(saved) == set(rules.split(',')) | {'mirror'} and all(saved[k] == pytest.approx(v) for k, v in res.items())
    sc = open_scorer(run, 'cpu')
    assert (sc.scoring.top_parts, sc.scoring.fusion, sc.scoring.image_votes) == (2, 'mean', 'kinds') and {'lookup', 'mirror'} <= set(sc.fusion_tasks)
    for split in ('valid', 'test'):   # today's rule (one vote per kind), 0.2.20's and the mirror part alone: what `mtlmad evaluate` reports
        reported = evaluate_run(run, tmp_path / split, data=more, split=split, progress=False)
        assert res['two_kinds'][split] == pytest.approx(reported['fused']['image_auroc'], abs=1e-6)
        assert res['mirror'][split] == pytest.approx(reported['mirror']['image_auroc'], abs=1e-6)
        parts = evaluate_run(run, tmp_path / f'{split}_parts', data=more, split=split, progress=False, image_votes='parts')
        assert res['top2'][split] == pytest.approx(parts['fused']['image_auroc'], abs=1e-6)
    es = load_run_split(run, sc.cfg, more, 'valid')
    r = sc.score(es.images)
    fused = lambda **kw: 100 * image_auroc(es.labels, r.refuse(sc.norms, sc.fusion_tasks, **{'groups': sc.scoring.groups, 'lookup_map': sc.scoring.lookup_map, 'votes': 'parts', **kw}).scores)
    assert res['top1']['valid'] == pytest.approx(fused(top=1), abs=1e-6)
    assert res['all']['valid'] == pytest.approx(fused(top=0), abs=1e-6)
    assert res['map_max']['valid'] == pytest.approx(fused(fusion='max', top=2, sigma=sc.scoring.sigma), abs=1e-6)
    drop = [t for t in sc.fusion_tasks if t != 'lookup']
    assert res['top2-no_lookup']['valid'] == pytest.approx(100 * image_auroc(es.labels, r.refuse(sc.norms, drop, top=2, groups=sc.scoring.groups, votes='parts').scores), abs=1e-6)
    kept = [t for t in sc.fusion_tasks if t not in ('tissue', 'pseudo_anomaly')]   # one learned head and the no-learning parts
    assert 'denoise' in kept and len(kept) < len(sc.fusion_tasks)
    assert res['top2-no_tissue-no_pseudo_anomaly']['valid'] == pytest.approx(100 * image_auroc(es.labels, r.refuse(sc.norms, kept, top=2, groups=sc.scoring.groups).scores), abs=1e-6)
    cf = crossfit.crossfit(sc, es.images, es.labels, crossfit.patient_groups(es.paths, es.labels), n=4)
    assert res['two_kinds']['cross'] == pytest.approx(cf['cross']) and res['mirror']['cross'] == pytest.approx(cf['mirror'])   # the same halves, the run's votes
    with pytest.raises(ValueError, match='unknown rule'): fusion_rules.rule_scores('top2x', sc, sc.norms, {}, {}, None)
    with pytest.raises(ValueError, match='unknown rule'): fusion_rules.parse_rule('top2-no_tissue-no_')
    z = {t: np.zeros(2) for t in ('denoise', 'lookup', 'mirror')}
    with pytest.raises(ValueError, match='cannot make it'): fusion_rules.rule_scores('two_kinds-no_denoise', sc, z, sc.norms, {}, None)
    with pytest.raises(ValueError, match='cannot make it'): fusion_rules.rule_scores('mirror-no_mirror', sc, z, sc.norms, {}, None)


def test_proto_distance_trend_scores_as_the_package_with_and_without_the_trend(ablated, tmp_path, one_thread):
    "bench/proto_distance_trend.py: `none` is what a run calibrated without the trend reports, `trend` what one calibrated with it reports."
    import proto_distance_trend as P
    from mtlmad.jobs import calibrate_run, load_run_split
    from mtlmad.metrics import image_auroc
    run = ablated[0]
    more = make_bmad(tmp_path, 'Brain', n_train=12, n_valid=(8, 8), n_test=(4, 4))   # eight calibration normals: enough for a trend
    res = P.main([str(run), '--data', str(more), '--variants', 'none,trend,divide,trend+tissue,mirror_trend', '--halves', '3',
                  '--out', str(tmp_path / 'pdt.json')])[str(run)]
    assert json.loads((tmp_path / 'pdt.json').read_text())['runs'][str(run)] == res
    for trend, variant in ((False, 'none'), (True, 'trend')):
        sc = calibrate_run(run, {'distance_trend': trend}, more, device='cpu', progress=False)
        assert any(n.trend_slope for n in sc.norms.values()) == trend
        for split in ('valid', 'test'):
            es = load_run_split(run, sc.cfg, more, split)
            r = sc.score(es.images)
            assert res[variant][split] == pytest.approx(100 * image_auroc(es.labels, r.scores), abs=1e-6), (variant, split)
            if trend: assert res['mirror_trend'][split] == pytest.approx(100 * image_auroc(es.labels, r.task_scores['mirror']), abs=1e-6)
    z = {'lookup': np.array([1.0, 2.0, 4.0])}
    d = {'d': np.log(np.array([1.0, 1.0, 4.0]))}   # the third image four times as far as the normals' median
    np.testing.assert_allclose(P.adjusted('divide', {}, z, z, d, np.array([True, True, False]))['lookup'], [1.0, 2.0, 1.0])
    with pytest.raises(SystemExit, match='unknown variants'): P.main([str(run), '--variants', 'none,nope'])


def test_proto_lookup_relative_divides_by_the_spread_beyond_the_calibration_normals():
    "bench/proto_lookup_relative.py: the first maps set the normals' median spread m0; a map is divided by its spread over max(1, m0), never by less than 1."
    import proto_lookup_relative as P
    from mtlmad.calibration import NORMAL_MAD, own_spread
    g = np.random.default_rng(0)
    fg = np.ones((3, 16, 16), bool)
    normals = (2 * g.normal(0, 1, (3, 16, 16))).astype(np.float32)   # calibration normals twice as spread as a normal z-map
    with P.patched():
        P.relative_spread(normals, fg)
        m0 = P.NORMALS['m0']
        test = np.stack([normals[0] * 3, normals[1] / 4]).astype(np.float32)   # one far more spread than the normals, one less
        got = P.relative_spread(test, fg[:2])
    assert 1.5 < m0 < 2.5 and P.NORMALS == {}   # put back afterwards
    s = np.median(np.abs(test[0])) / NORMAL_MAD
    np.testing.assert_allclose(got[0], test[0] / (s / m0), rtol=1e-5)   # divided by its spread relative to the normals'
    np.testing.assert_array_equal(got[1], test[1])   # below the normals' spread: as it is
    np.testing.assert_allclose(own_spread(test, fg[:2])[0], test[0] / s, rtol=1e-5)   # the option divides by the whole spread
