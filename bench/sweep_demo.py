"""Quality of a few demo schedules on the embedded MRI demo data (fused and per-task figures).

    python bench/sweep_demo.py [--device auto] [--configs default,long,...]

Builds the demo data once at each image size, trains each schedule with `train_run`, evaluates it with
`evaluate_run`, and prints one line per schedule plus re-fusions (rank fusion; map smoothing). A tool for
choosing the demo's default schedule, not a timed test."""
import argparse, json, sys, tempfile, time
from pathlib import Path

import numpy as np

from mtlmad.core import MTLConfig
from mtlmad.datasets import make_demo_data
from mtlmad.jobs import train_run, evaluate_run, open_scorer, task_metrics
from mtlmad.datasets import load_split

CONFIGS = {
    'default': {},
    'e60': dict(epochs=60),
    'e100': dict(epochs=100),
    '64px-e60': dict(image_size=64, epochs=60),
    'w48-e60': dict(width=48, epochs=60),
    'topk2-e60': dict(top_k=2, epochs=60),
}

def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--device', default='auto')
    ap.add_argument('--configs', default=','.join(CONFIGS))
    ap.add_argument('--seed', type=int, default=0)
    ap.add_argument('--out', type=Path, default=None, help='write the table as JSON here')
    a = ap.parse_args()
    root, rows = Path(tempfile.mkdtemp()), {}
    for name in a.configs.split(','):
        cfg = MTLConfig(seed=a.seed, **CONFIGS[name])
        data = root / f'data{cfg.image_size}'
        if not data.exists(): make_demo_data(data, image_size=cfg.image_size, seed=a.seed)
        t0 = time.time()
        run = train_run(data, root / name, cfg, device=a.device, progress=False)
        t_train = time.time() - t0
        m = evaluate_run(run, root / f'{name}-report', device=a.device, progress=False)
        sc = open_scorer(run, a.device); es = load_split(data, 'test', cfg.image_size, cfg.channels)
        res = sc.score(es.images, every_part=True)
        extra = {'rank': task_metrics(es, res.refuse(sc.norms, fusion='rank'))['fused'],
                 'sigma4': task_metrics(es, res.refuse(sc.norms, sigma=4.0))['fused']}
        rows[name] = {'train_s': t_train, 'metrics': m, 'refused': extra}
        f = m['fused']
        print(f"{name:12s} train {t_train:6.1f}s  fused img {f['image_auroc']:.1f} pix {f['pixel_auroc']:.1f} pro {f['aupro']:.1f}"
              f" | rank img {extra['rank']['image_auroc']:.1f} | s4 pix {extra['sigma4']['pixel_auroc']:.1f} pro {extra['sigma4']['aupro']:.1f}", flush=True)
        for t, v in m.items():
            if t != 'fused': print(f"     {t:15s} img {v['image_auroc']:.1f} pix {v['pixel_auroc']:.1f} pro {v['aupro']:.1f}", flush=True)
    if a.out: a.out.write_text(json.dumps(rows, indent=1))

if __name__ == '__main__':
    main()
