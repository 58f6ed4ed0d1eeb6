"""How a part's maxima at several smoothings should become its image score: summed, or each as a z-score, the largest.

    python bench/score_scales.py OUT.json RUN [RUN ...]          # score each run once, then every rule below
    python bench/score_scales.py OUT.json --table                 # the paired table from OUT.json again

Each run (a run folder, e.g. from `bench/ablate.py --runs`) is opened as `mtlmad evaluate` opens it and scores the
valid and test splits of the data it was trained on once: its fused parts' calibrated maps (`Scorer.raw`). From
those maps, each part's maximum inside the tissue after smoothing by each of `SIGMAS` px. Then every rule of `RULES`
turns them into the part's image score and fuses the parts with today's fusion (`ScoringConfig`'s `groups` and
`top_parts`, whatever the run was saved with; `--run-fusion`: the run's own): `sum` adds the
maxima of its smoothings (mtlmad up to 0.2.14, with (0.5, 4)); `max` puts each smoothing's maximum on the scale of the
validation split's normal images (which are the run's calibration normals) and keeps the largest z, then z-scores that
on the same normals, as `Scorer.calibrate` does (`ScoringConfig.score_scales='max'`). No model is trained and no
calibration changes: the rules differ only after the maps. The table gives, per dataset (the run's data folder name:
`fold*` is LGG, anything else the demo) and split, the mean image AUROC and the paired difference against `BASE`.
"""
import argparse, json, sys
from pathlib import Path

import numpy as np
from sklearn.metrics import roc_auc_score

SIGMAS = (0.5, 1.0, 2.0, 3.0, 4.0, 6.0, 8.0)
BASE = ('sum', (0.5, 4.0))
RULES = [BASE] + [('max', s) for s in [(0.5, 4.0), (0.5, 2.0, 4.0), (0.5, 2.0, 8.0), (0.5, 4.0, 8.0), (0.5, 2.0, 4.0, 8.0),
                                          (0.5, 1.0, 2.0, 4.0, 8.0), (1.0, 2.0, 4.0, 8.0), (0.5, 8.0), (SIGMAS)]]


def maxima(run: str) -> dict:
    "Per split: labels and, per fused part, its maxima (N, len(SIGMAS)); the run's groups and top_parts."
    import torch
    from mtlmad.calibration import region_max
    from mtlmad.checkpoint import run_data
    from mtlmad.jobs import load_run_split, open_scorer
    from mtlmad.ops import gaussian_blur
    torch.set_num_threads(1)
    sc = open_scorer(run, 'cpu'); data = run_data(Path(run)); parts = list(sc.fusion_tasks)
    out = dict(data=str(data), parts=parts, groups=[list(g) for g in sc.groups], top=sc.top_parts)
    for split in ('valid', 'test'):
        es = load_run_split(run, sc.cfg, data, split)
        maps, _, _, fg = sc._parts(es.images, parts=parts, per_scale=True)
        out[split] = dict(labels=es.labels.tolist(), **{t: np.stack([region_max(gaussian_blur(maps[t], s), fg) for s in SIGMAS], 1).tolist()
                                                        for t in parts})
    return out


def image_auroc(rec: dict, split: str, rule: str, sigmas: tuple, run_fusion: bool = False) -> float:
    "The fused image AUROC of one run's split under one rule, fused as today's defaults fuse (`run_fusion`: as the run was saved)."
    from mtlmad.calibration import ScoringConfig
    from mtlmad.score import TaskNorm, largest_mean, merge_groups
    idx = [SIGMAS.index(s) for s in sigmas]
    normal = np.asarray(rec['valid']['labels']) == 0
    parts = {}
    for t in rec['parts']:   # each part normalised as `Scorer.calibrate` does it, on the validation split's normals
        cal, x = np.asarray(rec['valid'][t])[:, idx], np.asarray(rec[split][t])[:, idx]
        if rule == 'sum': cal, x = cal.sum(1), x.sum(1)
        norm = TaskNorm.from_errors(cal[normal], np.zeros((int(normal.sum()), 1, 1)))
        parts[t] = norm.z_score(x if rule == 'sum' else norm.scale_z(x))
    groups, top = (tuple(map(tuple, rec['groups'])), rec['top']) if run_fusion else (ScoringConfig.groups, ScoringConfig.top_parts)
    fused = largest_mean(merge_groups(parts, groups), top)
    return 100 * roc_auc_score(rec[split]['labels'], fused)


def table(recs: dict, run_fusion: bool = False) -> str:
    "Markdown: per rule, per dataset and split, the mean image AUROC and the paired difference against BASE (models better)."
    sets = {'LGG': [r for r in recs if Path(recs[r]['data']).name.startswith('fold')]}
    sets['demo'] = [r for r in recs if r not in sets['LGG']]
    sets = {k: v for k, v in sets.items() if v}
    head = [f'{d} {s}' for d in sets for s in ('valid', 'test')]
    out = ['| rule | ' + ' | '.join(head) + ' |', '|---|' + '---|' * len(head)]
    for rule, sig in RULES:
        cells = []
        for d, runs in sets.items():
            for split in ('valid', 'test'):
                a = np.array([image_auroc(recs[r], split, rule, sig, run_fusion) for r in runs])
                b = np.array([image_auroc(recs[r], split, *BASE, run_fusion) for r in runs])
                cells.append(f'{a.mean():.2f} ({(a - b).mean():+.2f}, {int(((a - b) > 1e-9).sum())} of {len(a)})')
        out.append(f"| {rule} {', '.join(f'{s:g}' for s in sig)} | " + ' | '.join(cells) + ' |')
    return '\n'.join(out)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('out'); ap.add_argument('runs', nargs='*'); ap.add_argument('--table', action='store_true')
    ap.add_argument('--run-fusion', action='store_true', help="fuse as each run was saved, not with today's groups and top_parts")
    a = ap.parse_args(argv)
    out = Path(a.out)
    recs = json.loads(out.read_text()) if out.exists() else {}
    if not a.runs and not recs: raise SystemExit(f'{out}: no such file, and no run to score')
    for run in a.runs:
        if run in recs: continue
        recs[run] = maxima(run)
        out.write_text(json.dumps(recs)); print(run, 'scored', flush=True, file=sys.stderr)
    print(table(recs, a.run_fusion))


if __name__ == '__main__': main()
