"""The ablation log's runner: train one configuration per seed, choose on the validation split, report the test split.

    python bench/ablate.py --name NAME [--data DIR] [--seeds 0,1,2] [--set key=value ...] [--scorings local,foreground,whole]
                           [--keep-skull] [--log bench/ablation.jsonl] [--threads 1]

Each `--set` overrides one MTLConfig field, its value read as JSON (e.g. `--set steps=600`,
`--set 'tasks=["inpaint","denoise"]'`, `--set 'task_options={"pseudo_anomaly":{"kinds":["foreign"]}}'`).
Validation (the valid split: held-out normals and their lesioned copies) and test figures are both printed and
appended to the log, one JSON line per run, so every row of the ablation table can be traced to its command.
The fused image score is the maximum of the fused map (the default); `fused_mean` is the mean of the tasks'
z-scored image scores, re-fused from the same model run."""
import argparse, json, os, sys, time
from pathlib import Path

import numpy as np
import torch

from mtlmad.core import MTLConfig
from mtlmad.datasets import make_demo_data
from mtlmad.evaluate import load_split, task_metrics
from mtlmad.metrics import image_metrics, as_percent
from mtlmad.score import Scorer
from mtlmad.train import fit


def evaluate(scorer, es) -> dict:
    "Fused (image score: max of the fused map, and the mean of the tasks' z-scores) and per-task metrics, in percent."
    res = scorer.score(es.images)
    out = task_metrics(es, res, scorer.sigma)
    out['fused_mean'] = image_metrics(es.labels, res.refuse(scorer.norms, fusion='mean', sigma=scorer.sigma).scores)
    out['fused_mean'] = as_percent(out['fused_mean'])
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--name', required=True); ap.add_argument('--data', default=None)
    ap.add_argument('--seeds', default='0,1,2'); ap.add_argument('--set', action='append', default=[])
    ap.add_argument('--scorings', default='local', help="comma list of scorings of each trained model: 'whole' (one mean/std "
                    "per task, whole image), 'foreground' (the same, foreground only), 'local' (per-location calibration, foreground)")
    ap.add_argument('--keep-skull', action='store_true', help='demo data with the whole head')
    ap.add_argument('--save', default=None, help='folder to save each trained model in (to re-score it later)')
    ap.add_argument('--log', default='bench/ablation.jsonl'); ap.add_argument('--threads', type=int, default=1)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    data = Path(a.data) if a.data else make_demo_data(Path(os.environ.get('TMPDIR', '/tmp')) / f'mtlmad_demo_{"skull" if a.keep_skull else "brain"}',
                                                      keep_skull=a.keep_skull, overwrite=True)
    over = {}
    for kv in a.set:
        k, v = kv.split('=', 1)
        try: over[k] = json.loads(v)
        except json.JSONDecodeError: over[k] = v
    for seed in [int(s) for s in a.seeds.split(',')]:
        cfg = MTLConfig(seed=seed).replace(**over)
        train = load_split(data, 'train', cfg.image_size, cfg.channels, normal_only=True)
        valid = load_split(data, 'valid', cfg.image_size, cfg.channels)
        test = load_split(data, 'test', cfg.image_size, cfg.channels)
        t0 = time.time()
        res = fit(cfg, train.images, progress=False, device='cpu')
        t_fit = time.time() - t0
        if a.save: torch.save({'model': res.model, 'tasks': res.tasks, 'cfg': cfg.to_dict()}, Path(a.save) / f'{a.name}_s{seed}.pt')
        for scoring in a.scorings.split(','):
            whole, glob = scoring in ('whole', 'global'), scoring in ('whole', 'global', 'foreground')
            sc = Scorer(res.model, res.tasks, device='cpu', foreground_only=not whole)
            sc.calibrate(valid.normals(), None if glob else train.images)
            rec = dict(name=f'{a.name}/{scoring}', seed=seed, config=over, scoring=scoring, data=str(data),
                       fit_s=round(t_fit, 1), steps=cfg.total_steps(len(train)),
                       valid=evaluate(sc, valid), test=evaluate(sc, test), command=' '.join(sys.argv))
            with open(a.log, 'a') as f: f.write(json.dumps(rec) + '\n')
            show = lambda r: ' '.join(f"{k}={r[k].get('image_auroc', 0):.1f}/{r[k].get('pixel_auroc', 0):.1f}/{r[k].get('aupro', 0):.1f}" for k in r)
            print(f'[{rec["name"]} seed {seed} fit {t_fit:.0f}s] VALID {show(rec["valid"])}\n    TEST {show(rec["test"])}', flush=True)


if __name__ == '__main__': main()
