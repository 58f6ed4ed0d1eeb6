"""The ablation log's runner: train one configuration per seed, choose on the validation split, report the test split.

    python bench/ablate.py --name NAME [--data DIR] [--seeds 0,1,2] [--set key=value ...] [--scorings local,foreground,whole]
                           [--save DIR] [--log bench/ablation.jsonl] [--threads 1]
    python bench/ablate.py --rescore DIR/NAME_s0.pt [...] [--scorings ...]    (score saved models again)
    python bench/ablate.py --table bench/ablation.jsonl [--out bench/ablation.md] (the table, mean ± std over seeds)

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
from mtlmad.datasets import make_demo_data
from mtlmad.datasets import load_split
from mtlmad.jobs import task_metrics
from mtlmad.metrics import as_percent, image_metrics
from mtlmad.score import Scorer
from mtlmad.train import fit

METRICS = ('image_auroc', 'pixel_auroc', 'aupro')


def evaluate(scorer, es) -> dict:
    "Fused and per-task metrics of one split, in percent; `fused_max` scores images by the fused map's maximum."
    res = scorer.score(es.images)
    out = task_metrics(es, res, scorer.sigma)
    out['fused_max'] = as_percent(image_metrics(es.labels, res.refuse(scorer.norms, scorer.fusion_tasks, 'max', scorer.sigma).scores))
    return out


@functools.lru_cache(maxsize=4)
def splits(data: Path, size: int, channels: int) -> tuple:
    "The train (normals), valid and test splits, read once per data folder and size."
    return tuple(load_split(data, s, size, channels, normal_only=s == 'train') for s in ('train', 'valid', 'test'))


def score_model(rec: dict, model, tasks, data: Path, scorings: str, log: str, fusion_tasks=None):
    "Score one trained model on the valid and test splits with each scoring; append a log line for each."
    train, valid, test = splits(data, model.cfg.image_size, model.cfg.channels)
    for scoring in scorings.split(','):
        if scoring not in ('whole', 'foreground', 'local'): raise SystemExit(f'unknown scoring {scoring!r}: whole, foreground or local')
        sc = Scorer(model, tasks, device='cpu', foreground_only=scoring != 'whole', fusion_tasks=fusion_tasks or model.cfg.fused)
        sc.calibrate(valid.normals(), train.images if scoring == 'local' else None)
        r = dict(rec, name=f"{rec['name']}/{scoring}", scoring=scoring, fusion_tasks=sc.fusion_tasks, data=str(data),
                 valid=evaluate(sc, valid), test=evaluate(sc, test))
        with open(log, 'a') as f: f.write(json.dumps(r) + '\n')
        show = lambda d: ' '.join(f"{k}={d[k].get('image_auroc', 0):.1f}/{d[k].get('pixel_auroc', 0):.1f}/{d[k].get('aupro', 0):.1f}" for k in d)
        print(f"[{r['name']} seed {r['seed']}] VALID {show(r['valid'])}\n    TEST {show(r['test'])}", flush=True)


def table(log: Path) -> str:
    "Markdown: one row per run name (in log order), fused metrics mean ± std over seeds, validation then test."
    rows = {}
    for line in log.read_text().splitlines():
        r = json.loads(line); rows.setdefault(r['name'], []).append(r)
    fmt = lambda v: f'{np.mean(v):.1f} ± {np.std(v):.1f}'
    out = ['| run | seeds | steps | valid image / pixel / AUPRO | test image AUROC | test pixel AUROC | test AUPRO |',
           '|---|---|---|---|---|---|---|']
    for name, rs in rows.items():
        v = ' / '.join(f"{np.mean([r['valid']['fused'][m] for r in rs]):.1f}" for m in METRICS)
        t = [fmt([r['test']['fused'][m] for r in rs]) for m in METRICS]
        out.append(f"| {name} | {len(rs)} | {rs[0].get('steps', '')} | {v} | {' | '.join(t)} |")
    return '\n'.join(out)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--name'); ap.add_argument('--data', default=None)
    ap.add_argument('--seeds', default='0,1,2'); ap.add_argument('--set', action='append', default=[])
    ap.add_argument('--scorings', default='local', help='comma list of: whole, foreground, local')
    ap.add_argument('--fusion-tasks', default=None, help='comma list of the tasks that enter the fusion (default: all)')
    ap.add_argument('--keep-skull', action='store_true', help='demo data with the whole head')
    ap.add_argument('--save', default=None, help='folder to save each trained model in (to score it again later)')
    ap.add_argument('--rescore', nargs='+', default=None, help='saved models to score again (no training)')
    ap.add_argument('--table', default=None, help='print the table of a log'); ap.add_argument('--out', default=None)
    ap.add_argument('--log', default='bench/ablation.jsonl'); ap.add_argument('--threads', type=int, default=1)
    a = ap.parse_args()
    if a.table:
        md = table(Path(a.table)); print(md)
        if a.out: Path(a.out).write_text(md + '\n')
        return
    torch.set_num_threads(a.threads)
    tmp = Path(os.environ.get('TMPDIR', '/tmp'))
    data = Path(a.data) if a.data else make_demo_data(tmp / f'mtlmad_demo_{"skull" if a.keep_skull else "brain"}', valid_ungood=3,
                                                      keep_skull=a.keep_skull, overwrite=True)
    ft = a.fusion_tasks.split(',') if a.fusion_tasks else None
    if a.rescore:
        for f in a.rescore:
            ck = torch.load(f, weights_only=False)   # our own files, written by --save
            ck['model'].cfg = MTLConfig.from_dict(ck['cfg'])
            stem, seed = Path(f).stem.rsplit('_s', 1)
            rec = ck.get('rec') or dict(name=stem, seed=int(seed), config={}, steps=ck['cfg']['steps'])
            score_model(dict(rec, command=' '.join(sys.argv), name=a.name or rec['name']), ck['model'], ck['tasks'], data, a.scorings, a.log, ft)
        return
    if not a.name: raise SystemExit('--name is needed to train')
    over = {}
    for kv in a.set:
        k, v = kv.split('=', 1)
        try: over[k] = json.loads(v)
        except json.JSONDecodeError: over[k] = v
    for seed in [int(s) for s in a.seeds.split(',')]:
        cfg = MTLConfig(seed=seed).replace(**over)
        train = splits(data, cfg.image_size, cfg.channels)[0]
        t0 = time.time()
        res = fit(cfg, train.images, progress=False, device='cpu')
        rec = dict(name=a.name, seed=seed, config=over, fit_s=round(time.time() - t0, 1), steps=cfg.total_steps(len(train)),
                   command=' '.join(sys.argv))
        if a.save: torch.save({'model': res.model, 'tasks': res.tasks, 'cfg': cfg.to_dict(), 'rec': rec}, Path(a.save) / f'{a.name}_s{seed}.pt')
        score_model(rec, res.model, res.tasks, data, a.scorings, a.log, ft)


if __name__ == '__main__': main()
