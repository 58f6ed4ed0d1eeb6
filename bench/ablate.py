"""The ablation log's runner: train one configuration per seed, choose on the validation split, report the test split.

    python bench/ablate.py --name NAME [--data DIR] [--seeds 0,1,2] [--set key=value ...] [--scorings local,foreground,whole]
                           [--save DIR] [--log bench/ablation.jsonl] [--threads 1]
    python bench/ablate.py --rescore DIR/NAME_s0.pt [...] [--scorings ...]    (score saved models again)
    python bench/ablate.py --table bench/ablation.jsonl [--out bench/ablation.md] (the table, mean ± std over seeds)
    python bench/ablate.py --compare NAME_A NAME_B [--log ...]  (paired validation differences, fold by fold and seed by seed)

`--fold K` (1, 2 or 3) trains and validates on the demo data with its three validation slabs placed elsewhere
(`FOLDS`): the test slabs and every test file stay the same, training keeps 84 slices. Fold 0 is the shipped split.
The folds put validation slabs near the skull base and the vertex, where two of the four test slabs lie and the
shipped validation split has none; a choice is made on all four folds, three seeds each.

Each `--set` overrides one MTLConfig field, its value read as JSON (e.g. `--set steps=600`,
`--set 'tasks=["inpaint","denoise"]'`, `--set 'task_options={"pseudo_anomaly":{"kinds":["foreign"]}}'`).
Every trained model is scored once per `--scorings` entry: 'whole' (one mean and spread per task, the whole
image), 'foreground' (the same, foreground only), 'local' (per-location calibration against the k most similar
training normals, foreground only: the default). Validation (the valid split: held-out normals and their lesioned
copies) and test figures are both written, one JSON line per model and scoring, so every row of the ablation
table can be traced to its command. Choices are made on validation; test is only reported."""
import argparse, functools, json, os, sys, time
from pathlib import Path

import numpy as np
import torch

from mtlmad.core import MTLConfig
from mtlmad.datasets import make_demo_data, slab_split
from mtlmad.datasets import load_split
from mtlmad.jobs import task_metrics
from mtlmad.metrics import as_percent, image_metrics
from mtlmad.score import Scorer, ScoringConfig
from mtlmad.train import fit

METRICS = ('image_auroc', 'pixel_auroc', 'aupro')

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


def compare(log: Path, a: str, b: str) -> str:
    "Markdown: validation figures of runs `b` minus runs `a`, paired by data folder (fold) and seed."
    runs = {}
    for line in log.read_text().splitlines():
        r = json.loads(line)
        if r['name'] in (a, b): runs[(r['name'], Path(r['data']).name, r['seed'])] = r['valid']['fused']
    pairs = sorted({(d, s) for n, d, s in runs if (a, d, s) in runs and (b, d, s) in runs})
    if not pairs: raise SystemExit(f'no (data, seed) pair has both {a!r} and {b!r} in {log}')
    out = [f'`{b}` minus `{a}`, validation, fused; one row per data folder, seeds paired', '',
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
        out.append(f'- {m}: mean difference {dm.mean():+.2f} over {len(dm)} pairs (std {sd:.2f}, standard error {sd / np.sqrt(len(dm)):.2f}); '
                   f'{int((dm > 0).sum())} of {len(dm)} pairs favour {b}')
    return '\n'.join(out)


def evaluate(scorer, es) -> dict:
    "Fused and per-task metrics of one split, in percent; `fused_max` scores images by the fused map's maximum."
    res = scorer.score(es.images)
    out = task_metrics(es, res, scorer.sigma)
    out['fused_max'] = as_percent(image_metrics(es.labels, res.refuse(scorer.norms, scorer.fusion_tasks, 'max', scorer.sigma).scores))
    return out


@functools.lru_cache(maxsize=4)
def splits(data: Path, size: int, channels: int, intensity: str = 'none') -> tuple:
    "The train (normals), valid and test splits, read once per data folder and size."
    return tuple(load_split(data, s, size, channels, normal_only=s == "train", intensity=intensity) for s in ("train", "valid", "test"))


def score_model(rec: dict, model, tasks, data: Path, scorings: str, log: str, fusion_tasks=None, scorer_kw=None):
    "Score one trained model on the valid and test splits with each scoring; append a log line for each."
    train, valid, test = splits(data, model.cfg.image_size, model.cfg.channels, model.cfg.intensity)
    for scoring in scorings.split(','):
        if scoring not in ('whole', 'foreground', 'local'): raise SystemExit(f'unknown scoring {scoring!r}: whole, foreground or local')
        settings = ScoringConfig.from_dict({'foreground_only': scoring != 'whole', 'fusion_tasks': fusion_tasks or model.cfg.fused,
                                            **(scorer_kw or {})})   # --scorer: a JSON dict of ScoringConfig fields
        sc = Scorer(model, tasks, device='cpu', scoring=settings)
        sc.calibrate(valid.normals(), train.images if scoring == 'local' else None)
        r = dict(rec, name=f"{rec['name']}/{scoring}", scoring=scoring, scorer=scorer_kw or {}, fusion_tasks=sc.fusion_tasks, data=str(data),
                 valid=evaluate(sc, valid), test=evaluate(sc, test))
        with open(log, 'a') as f: f.write(json.dumps(r) + '\n')
        show = lambda d: ' '.join(f"{k}={d[k].get('image_auroc', 0):.1f}/{d[k].get('pixel_auroc', 0):.1f}/{d[k].get('aupro', 0):.1f}" for k in d)
        print(f"[{r['name']} seed {r['seed']}] VALID {show(r['valid'])}\n    TEST {show(r['test'])}", flush=True)


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


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--name'); ap.add_argument('--data', default=None)
    ap.add_argument('--seeds', default='0,1,2'); ap.add_argument('--set', action='append', default=[])
    ap.add_argument('--scorings', default='local', help='comma list of: whole, foreground, local')
    ap.add_argument('--scorer', type=json.loads, default=None,
                    help='scoring settings other than the defaults, as JSON ScoringConfig fields (e.g. k, sigma, score_sigma, floor)')
    ap.add_argument('--fusion-tasks', default=None, help='comma list of the tasks that enter the fusion (default: all)')
    ap.add_argument('--keep-skull', action='store_true', help='demo data with the whole head')
    ap.add_argument('--fold', type=int, default=0, help='demo data with fold K\'s validation slabs (see FOLDS; 0: as shipped)')
    ap.add_argument('--compare', nargs=2, default=None, metavar=('NAME_A', 'NAME_B'), help='paired validation differences of two runs in the log')
    ap.add_argument('--save', default=None, help='folder to save each trained model in (to score it again later)')
    ap.add_argument('--rescore', nargs='+', default=None, help='saved models to score again (no training)')
    ap.add_argument('--table', default=None, help='print the table of a log'); ap.add_argument('--out', default=None)
    ap.add_argument('--log', default='bench/ablation.jsonl'); ap.add_argument('--threads', type=int, default=1)
    a = ap.parse_args()
    if a.table:
        md = table(Path(a.table)); print(md)
        if a.out: Path(a.out).write_text(md + '\n')
        return
    if a.compare:
        print(compare(Path(a.log), *a.compare)); return
    torch.set_num_threads(a.threads)
    tmp = Path(os.environ.get('TMPDIR', '/tmp'))
    folder = tmp / f'mtlmad_demo_{"skull" if a.keep_skull else "brain"}{f"_fold{a.fold}" if a.fold else ""}'
    data = Path(a.data) if a.data else make_demo_data(folder, valid_ungood=3, keep_skull=a.keep_skull, overwrite=True, split=fold_split(a.fold))
    ft = a.fusion_tasks.split(',') if a.fusion_tasks else None
    if a.rescore:
        for f in a.rescore:
            ck = torch.load(f, weights_only=False)   # our own files, written by --save
            ck['model'].cfg = MTLConfig.from_dict(ck['cfg'])
            stem, seed = Path(f).stem.rsplit('_s', 1)
            rec = ck.get('rec') or dict(name=stem, seed=int(seed), config={}, steps=ck['cfg']['steps'])
            score_model(dict(rec, command=' '.join(sys.argv), name=a.name or rec['name']), ck['model'], ck['tasks'], data, a.scorings, a.log, ft,
                        a.scorer)
        return
    if not a.name: raise SystemExit('--name is needed to train')
    over = {}
    for kv in a.set:
        k, v = kv.split('=', 1)
        try: over[k] = json.loads(v)
        except json.JSONDecodeError: over[k] = v
    for seed in [int(s) for s in a.seeds.split(',')]:
        cfg = MTLConfig(seed=seed).replace(**over)
        train = splits(data, cfg.image_size, cfg.channels, cfg.intensity)[0]
        t0 = time.time()
        res = fit(cfg, train.images, progress=False, device='cpu')
        rec = dict(name=a.name, seed=seed, config=over, fit_s=round(time.time() - t0, 1), steps=cfg.total_steps(len(train)),
                   command=' '.join(sys.argv))
        if a.save: torch.save({'model': res.model, 'tasks': res.tasks, 'cfg': cfg.to_dict(), 'rec': rec}, Path(a.save) / f'{a.name}_s{seed}.pt')
        score_model(rec, res.model, res.tasks, data, a.scorings, a.log, ft, a.scorer)


if __name__ == '__main__': main()
