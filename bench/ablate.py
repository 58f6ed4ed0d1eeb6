"""The ablation log's runner: train one configuration per seed, choose on the validation split, report the test split.

    python bench/ablate.py --name NAME [--data DIR] [--seeds 0,1,2] [--set key=value ...] [--scorer JSON] [--fusion-tasks a,b]
                           [--runs DIR] [--log bench/ablation.jsonl] [--threads 1]
    python bench/ablate.py --rescore RUN [RUN ...] [--scorer JSON] [--fusion-tasks ...] [--loto [--singles]]   (score run folders again)
    python bench/ablate.py --table bench/ablation.jsonl [--out bench/ablation.md] (the table, mean ± std over seeds)
    python bench/ablate.py --compare NAME_A NAME_B [--log ...] [--split test]  (paired validation differences, fold by fold and
                           seed by seed; `--split test` the same on the test split, to report a choice already made;
                           NAME_A+NAME_C joins two runs' models on one side)

bench is a client of mtlmad's public jobs: each seed is an ordinary run folder trained by `mtlmad.jobs.train_run`
(what `mtlmad train` does: held-out normals calibrate, up to 256 training normals calibrate each location), kept as
`RUNS/NAME_sSEED` (`NAME_foldK_sSEED` with `--fold K`; `--runs` defaults to a temporary folder, removed at the end).
It is scored by `mtlmad.jobs.open_scorer` and measured by `mtlmad.jobs.task_metrics` on the valid and the test split,
as `mtlmad evaluate` (`mtlmad.jobs.evaluate_run`) measures it: a logged test figure is the one `mtlmad evaluate` reports.
`--scorer` (JSON `ScoringConfig` fields, e.g. `{"k": 5, "floor": 0.25}`) and `--fusion-tasks` change the scoring:
settings that act after the calibration (`mtlmad.jobs.FUSION_SETTINGS`: fusion, fusion_tasks, sigma, top_parts, groups, image_votes, lookup_map) go to
`open_scorer`; any other calibrates the run again under them with `mtlmad.jobs.calibrate_run`, as `train_run` did.
`--rescore` scores run folders again (from earlier `--runs`, or any `mtlmad train` run), on the data each recorded
unless `--data` is given; with `--loto` each run is also fused without each of its fused parts in turn (rows
`NAME-no_PART`: the leave-one-part-out table), from the same forward passes.

`--fold K` (1, 2 or 3) trains and validates on the demo data with its three validation slabs placed elsewhere
(`FOLDS`): the test slabs and every test file stay the same, training keeps 84 slices. Fold 0 is the shipped split.
The folds put validation slabs near the skull base and the vertex, where two of the four test slabs lie and the
shipped validation split has none; a choice is made on all four folds, three seeds each.

Each `--set` overrides one MTLConfig field, its value read as JSON (e.g. `--set steps=600`,
`--set 'tasks=["inpaint","denoise"]'`, `--set 'task_options={"pseudo_anomaly":{"kinds":["foreign"]}}'`).
Every model is scored the way the package scores ('local': per-location calibration against the k most similar
training normals, foreground only). The log's older rows also hold 'whole' and 'foreground' (one mean and spread
per task, no per-location reference), which `ScoringConfig` cannot express: they are no longer offered.
Validation (the valid split: held-out normals and their lesioned copies) and test figures are both written, one JSON
line per model, so every row of the ablation table can be traced to its command. Choices are made on validation;
test is only reported."""
import argparse, json, os, sys, tempfile, time
from pathlib import Path

import numpy as np
import torch

from mtlmad.checkpoint import read_run_record, run_data, run_folder, update_run_record
from mtlmad.core import MTLConfig
from mtlmad.data.brain import make_demo_data
from mtlmad.data.folders import slab_split
from mtlmad.jobs import FUSION_SETTINGS, calibrate_run, load_run_split, open_scorer, task_metrics, train_run
from mtlmad.metrics import as_percent, image_metrics

METRICS = ('image_auroc', 'pixel_auroc', 'aupro')
SCORINGS = ('local',)   # the package's scoring; 'whole' and 'foreground' rows of older logs cannot be made again

# Where each fold's three validation slabs (5 slices each) start, as slice indices of the embedded MRI (0 = skull base).
FOLDS = {1: (3, 57, 125), 2: (20, 74, 107), 3: (38, 91, 127)}


def fold_split(fold: int, n: int = 133) -> np.ndarray:
    "The demo data's slice assignment with fold `fold`'s validation slabs; test slabs and their gaps as shipped."
    a = slab_split(n)
    if fold == 0: return a
    if fold not in FOLDS: raise SystemExit(f'--fold should be 0 or one of {sorted(FOLDS)}, got {fold}')
    near_test = np.convolve(a == 'test', np.ones(3), 'same') > 0
    a[(a == 'valid') | ((a == 'gap') & ~near_test)] = 'train'
    for s in FOLDS[fold]:
        if not np.all(a[s:s + 5] == 'train'): raise AssertionError(f'fold {fold}: slab {s}-{s + 4} overlaps a held-out slice')
        a[s:s + 5] = 'valid'
        for g in (s - 1, s + 5):
            if 0 <= g < n and a[g] == 'train': a[g] = 'gap'
    return a


TIE = 0.005   # a paired difference this small (below the printed precision) is level: float noise between identical models


def compare(log: Path, a: str, b: str, split: str = 'valid') -> str:
    """Markdown: `split` figures (validation by default) of runs `b` minus runs `a`, paired by data folder (fold) and seed.
    A side may join runs logged under several names: 'X+Y' (e.g. seeds trained on another day under a new name)."""
    if split not in ('valid', 'test'): raise SystemExit(f"--split must be 'valid' or 'test', got {split!r}")
    both = set(a.split('+')) & set(b.split('+'))
    if both: raise SystemExit(f'--compare: {sorted(both)} on both sides; each logged run belongs to one side')
    names = {n: side for side in (a, b) for n in side.split('+')}   # 'X+Y': the models of runs X and Y together
    runs = {}
    for line in log.read_text().splitlines():
        r = json.loads(line)
        if r['name'] in names: runs[(names[r['name']], Path(r['data']).name, r['seed'])] = r[split]['fused']
    pairs = sorted({(d, s) for n, d, s in runs if (a, d, s) in runs and (b, d, s) in runs})
    if not pairs: raise SystemExit(f'no (data, seed) pair has both {a!r} and {b!r} in {log}')
    which = 'validation' if split == 'valid' else 'test (report only: choices are made on validation)'
    out = [f'`{b}` minus `{a}`, {which}, fused; one row per data folder, seeds paired', '',
           '| data | seeds | ' + ' | '.join(f'{m} {a} / {b} / diff' for m in METRICS) + ' |', '|---|---|' + '---|' * len(METRICS)]
    diffs = {m: [] for m in METRICS}
    for d in sorted({d for d, _ in pairs}):
        ss = [s for dd, s in pairs if dd == d]
        cells = []
        for m in METRICS:
            va, vb = [runs[(a, d, s)][m] for s in ss], [runs[(b, d, s)][m] for s in ss]
            diffs[m] += list(np.subtract(vb, va))
            cells.append(f'{np.mean(va):.1f} / {np.mean(vb):.1f} / {np.mean(vb) - np.mean(va):+.1f}')
        out.append(f"| {d} | {','.join(map(str, ss))} | {' | '.join(cells)} |")
    out.append('')
    for m in METRICS:
        dm = np.array(diffs[m]); sd = dm.std(ddof=1) if len(dm) > 1 else 0.0
        better, level = int((dm > TIE).sum()), int((abs(dm) <= TIE).sum())
        out.append(f'- {m}: mean difference {dm.mean():+.2f} over {len(dm)} pairs (std {sd:.2f}, standard error {sd / np.sqrt(len(dm)):.2f}); '
                   f'{better} of {len(dm)} pairs favour {b}' + (f', {level} level' if level else ''))
    return '\n'.join(out)


def evaluate(scorer, es) -> dict:
    "Fused and per-task metrics of one split, in percent (`task_metrics`); `fused_max` scores images by the fused map's maximum."
    res = scorer.score(es.images, every_part=True)
    out = task_metrics(es, res, scorer.sigma)
    out['fused_max'] = as_percent(image_metrics(es.labels, res.refuse(scorer.norms, scorer.fusion_tasks, 'max', scorer.sigma, scorer.top_parts, scorer.groups, scorer.lookup_map, votes=scorer.image_votes).scores))
    return out


DEVICE = 'cpu'   # where models train and score (`--device`); the ablation log's figures are the CPU's unless a row says otherwise


def run_scorer(run: Path, settings: dict, data=None):
    "The run's calibrated scorer as `mtlmad evaluate` opens it; settings past `FUSION_SETTINGS` calibrate it again."
    if set(settings) <= set(FUSION_SETTINGS): return open_scorer(run, DEVICE, settings)
    return calibrate_run(run, settings, data, device=DEVICE, progress=False)


def score_run(run: Path, rec: dict, log: str, data=None, fusion_tasks=None, scorer_kw=None) -> dict:
    "Score one run folder on the valid and test splits (of `data`, default the run's own); append its log line."
    data = Path(data) if data else run_data(run)
    sc = run_scorer(run, {**(scorer_kw or {}), **({'fusion_tasks': fusion_tasks} if fusion_tasks else {})}, data)
    valid, test = (load_run_split(run, sc.cfg, data, s) for s in ('valid', 'test'))
    r = dict(rec, name=f"{rec['name']}/local", scoring='local', scorer=scorer_kw or {}, fusion_tasks=sc.fusion_tasks, data=str(data), device=DEVICE,
             valid=evaluate(sc, valid), test=evaluate(sc, test))
    with open(log, 'a') as f: f.write(json.dumps(r) + '\n')
    show = lambda d: ' '.join(f"{k}={d[k].get('image_auroc', 0):.1f}/{d[k].get('pixel_auroc', 0):.1f}/{d[k].get('aupro', 0):.1f}" for k in d)
    print(f"[{r['name']} seed {r['seed']}] VALID {show(r['valid'])}\n    TEST {show(r['test'])}", flush=True)
    return r


def loto_run(run: Path, rec: dict, log: str, data=None, scorer_kw=None, singles: bool = False) -> None:
    "Score one run folder once per split, then fuse every part but one in turn (and, with `singles`, each part alone); a log line per fusion."
    data = Path(data) if data else run_data(run)
    sc = run_scorer(run, scorer_kw or {}, data)
    fused = list(sc.fusion_tasks)
    subsets = {rec['name']: fused, **{f"{rec['name']}-no_{t}": [u for u in fused if u != t] for t in fused}}
    if singles: subsets.update({f"{rec['name']}-only_{t}": [t] for t in fused})
    out = {n: {} for n in subsets}
    for split in ('valid', 'test'):
        es = load_run_split(run, sc.cfg, data, split)
        res = sc.score(es.images, every_part=True)
        for n, sub in subsets.items():
            out[n][split] = task_metrics(es, res.refuse(sc.norms, sub, sc.fusion, sc.sigma, sc.top_parts, sc.groups, sc.lookup_map, votes=sc.image_votes), sc.sigma)
            out[n][split]['fused_max'] = as_percent(image_metrics(es.labels, res.refuse(sc.norms, sub, 'max', sc.sigma, sc.top_parts, sc.groups, sc.lookup_map, votes=sc.image_votes).scores))
    with open(log, 'a') as f:
        for n, sub in subsets.items():
            f.write(json.dumps(dict(rec, name=f'{n}/local', scoring='local', scorer=scorer_kw or {}, fusion_tasks=sub, data=str(data), device=DEVICE,
                                    valid=out[n]['valid'], test=out[n]['test'])) + '\n')
    show = lambda n: ' '.join(f"{out[n]['valid']['fused'][k]:.1f}" for k in ('image_auroc', 'pixel_auroc', 'aupro'))
    print(f"[{rec['name']} seed {rec['seed']}] VALID " + '; '.join(f'{n}: {show(n)}' for n in subsets), flush=True)


def train_seed(name: str, seed: int, over: dict, data: Path, runs: Path, command: str, tag: str = '') -> tuple[Path, dict]:
    "Train one seed as an ordinary run folder `runs/NAME{tag}_sSEED` (`train_run`); its log record goes into the run's run.json."
    cfg = MTLConfig(seed=seed).replace(**over)
    run = runs / f'{name}{tag}_s{seed}'
    if run.exists(): raise SystemExit(f'{run} exists already: choose another --runs folder or --name')
    t0 = time.time()
    train_run(data, run, cfg, device=DEVICE, progress=False)
    rec = dict(name=name, seed=seed, config=over, fit_s=round(time.time() - t0, 1),
               steps=cfg.total_steps(read_run_record(run)['n_train']), command=command)
    update_run_record(run, ablation=rec)
    return run, rec


def rescore_record(run: Path) -> dict:
    "The log record of a run trained by this script, or one made from the run's own config."
    rd = read_run_record(run)
    if 'ablation' in rd: return rd['ablation']
    cfg = MTLConfig.from_dict(json.loads((run_folder(run) / 'config.json').read_text()))
    return dict(name=run_folder(run).name.rsplit('_s', 1)[0], seed=cfg.seed, config={}, steps=cfg.total_steps(rd.get('n_train', 0)))


def table(log: Path) -> str:
    """Markdown: one row per run name (in log order). Validation: the mean over every model of the run (all its folds and
    seeds); test: mean ± std over the seeds trained on the shipped split (fold 0) only. A model scored twice counts once (the last)."""
    rows = {}
    for line in log.read_text().splitlines():
        r = json.loads(line); rows.setdefault(r['name'], {})[(Path(r['data']).name, r['seed'])] = r
    fmt = lambda v: f'{np.mean(v):.1f} ± {np.std(v):.1f}' if v else '-'
    out = ['| run | models (folds) | steps | valid image / pixel / AUPRO | test image AUROC | test pixel AUROC | test AUPRO |',
           '|---|---|---|---|---|---|---|']
    for name, by in rows.items():
        rs = list(by.values())
        shipped = [r for (d, _), r in by.items() if '_fold' not in d]
        v = ' / '.join(f"{np.mean([r['valid']['fused'][m] for r in rs]):.1f}" for m in METRICS)
        t = [fmt([r['test']['fused'][m] for r in shipped]) for m in METRICS]
        out.append(f"| {name} | {len(rs)} ({len({d for d, _ in by})}) | {rs[0].get('steps', '')} | {v} | {' | '.join(t)} |")
    return '\n'.join(out)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--name'); ap.add_argument('--data', default=None)
    ap.add_argument('--seeds', default='0,1,2'); ap.add_argument('--set', action='append', default=[])
    ap.add_argument('--scorings', default='local', help=f'comma list of: {", ".join(SCORINGS)} (the package\'s scoring)')
    ap.add_argument('--scorer', type=json.loads, default=None,
                    help='scoring settings other than the run\'s, as JSON ScoringConfig fields (e.g. k, sigma, score_sigma, floor)')
    ap.add_argument('--fusion-tasks', default=None, help='comma list of the tasks that enter the fusion (default: the run\'s)')
    ap.add_argument('--keep-skull', action='store_true', help='demo data with the whole head')
    ap.add_argument('--fold', type=int, default=0, help='demo data with fold K\'s validation slabs (see FOLDS; 0: as shipped)')
    ap.add_argument('--compare', nargs=2, default=None, metavar=('NAME_A', 'NAME_B'), help='paired validation differences of two runs in the log')
    ap.add_argument('--split', default='valid', help="with --compare: 'valid' (the default) or 'test'")
    ap.add_argument('--runs', default=None, help='folder that keeps each trained run folder NAME_sSEED (default: a temporary folder)')
    ap.add_argument('--rescore', nargs='+', default=None, metavar='RUN', help='run folders to score again (no training)')
    ap.add_argument('--loto', action='store_true', help='with --rescore: also fuse every part but one in turn (leave-one-part-out rows NAME-no_PART)')
    ap.add_argument('--singles', action='store_true', help='with --loto: also score each fused part alone (rows NAME-only_PART)')
    ap.add_argument('--table', default=None, help='print the table of a log'); ap.add_argument('--out', default=None)
    ap.add_argument('--log', default='bench/ablation.jsonl'); ap.add_argument('--threads', type=int, default=1)
    ap.add_argument('--device', default='cpu', help="where to train and score: 'cpu' (the default), 'cuda', 'auto'")
    a = ap.parse_args(argv)
    global DEVICE
    DEVICE = a.device
    if a.table:
        md = table(Path(a.table)); print(md)
        if a.out: Path(a.out).write_text(md + '\n')
        return
    if a.compare:
        print(compare(Path(a.log), *a.compare, a.split)); return
    bad = [s for s in a.scorings.split(',') if s not in SCORINGS]
    if bad: raise SystemExit(f'--scorings {",".join(bad)}: only {", ".join(SCORINGS)} (the package\'s per-location scoring) is offered; '
                             "'whole' and 'foreground' had no per-location reference, which mtlmad's ScoringConfig cannot express")
    torch.set_num_threads(a.threads)
    command = ' '.join(sys.argv if argv is None else ['bench/ablate.py', *argv])
    ft = a.fusion_tasks.split(',') if a.fusion_tasks else None
    if a.rescore:
        for run in map(Path, a.rescore):
            rec = rescore_record(run)
            if a.loto:
                loto_run(run, dict(rec, command=command, name=a.name or rec['name']), a.log, a.data, a.scorer, a.singles); continue
            score_run(run, dict(rec, command=command, name=a.name or rec['name']), a.log, a.data, ft, a.scorer)
        return
    if not a.name: raise SystemExit('--name is needed to train')
    over = {}
    for kv in a.set:
        k, v = kv.split('=', 1)
        try: over[k] = json.loads(v)
        except json.JSONDecodeError: over[k] = v
    tmp = Path(os.environ.get('TMPDIR', '/tmp'))
    folder = tmp / f'mtlmad_demo_{"skull" if a.keep_skull else "brain"}{f"_fold{a.fold}" if a.fold else ""}'
    data = Path(a.data) if a.data else make_demo_data(folder, valid_ungood=3, keep_skull=a.keep_skull, overwrite=True, split=fold_split(a.fold))
    with tempfile.TemporaryDirectory(prefix='mtlmad-ablate-') as scratch:
        runs = Path(a.runs or scratch)
        for seed in [int(s) for s in a.seeds.split(',')]:
            run, rec = train_seed(a.name, seed, over, data, runs, command, f'_fold{a.fold}' if a.fold else '')
            score_run(run, rec, a.log, data, ft, a.scorer)


if __name__ == '__main__': main()
