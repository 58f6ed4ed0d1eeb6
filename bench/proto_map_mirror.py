"""Prototype (not in the package): other rules for the mirror part in the fused map, and the two no-learning parts as one
vote, from one scoring pass per model and split (`Scorer.score(every_part=True)`), the fusion redone from its parts.

    python bench/proto_map_mirror.py OUT.jsonl RUN [RUN ...]

Map rules, on the parts' z-maps (lk: the lookup part, mir: the mirror part, rest: the two largest of the learned parts'
maps with inpaint/denoise as one, `rest_in` with the mirror part among them as the package fuses, `rest_ex` without it),
each smoothed by `sigma` as the package does:
R0 the package's map ((lk + rest_in) / 2), R1 (lk + mir + rest_ex) / 3, R2 (lk + mir + rest_in) / 3,
R3 (max(lk, mir) + rest_in) / 2, R5 (lk + mir) / 4 + rest_ex / 2, R6 rest_in alone, R4 (lk + mir) / 2 (no learning).
Fusions (image score and map, `ScoreResult.refuse`): S0 the run's, S2 the three largest, S3 lookup and mirror as one
group, S5 every part averaged, S6 S5 with the group, S7 S2 with the group.
One JSON line per run: pixel AUROC and AUPRO of each rule, image AUROC too for each fusion, on valid and test."""
import json, sys
from pathlib import Path

import numpy as np

from mtlmad.checkpoint import run_data
from mtlmad.jobs import load_run_split, open_scorer
from mtlmad.metrics import as_percent, image_metrics, pixel_metrics
from mtlmad.ops import gaussian_blur
from mtlmad.score import largest_mean, merge_groups


def rules(res, sc) -> dict:
    z = {t: sc.norms[t].z_map(res.task_maps[t]) for t in sc.fusion_tasks}
    lk, mir = z['lookup'], z['mirror']
    learned = {t: v for t, v in z.items() if t not in ('lookup', 'mirror')}
    rest_in = largest_mean(merge_groups({**learned, 'mirror': mir}, sc.groups), sc.top_parts)
    rest_ex = largest_mean(merge_groups(learned, sc.groups), sc.top_parts)
    b = lambda m: gaussian_blur(m, sc.sigma)
    return dict(R0=res.maps, R1=b((lk + mir + rest_ex) / 3), R2=b((lk + mir + rest_in) / 3), R3=b((np.maximum(lk, mir) + rest_in) / 2),
                R5=b((lk + mir) / 4 + rest_ex / 2), R6=b(rest_in), R4=b((lk + mir) / 2))


def fusions(res, sc) -> dict:
    t, g, nl = list(sc.fusion_tasks), tuple(x for x in sc.groups if 'lookup' not in x), (('lookup', 'mirror'),)
    v = dict(S0=(sc.top_parts, sc.groups), S2=(3, g), S3=(sc.top_parts, g + nl), S5=(0, g), S6=(0, g + nl), S7=(3, g + nl))
    return {k: res.refuse(sc.norms, t, sc.fusion, sc.sigma, top, gr, sc.lookup_map, votes='parts') for k, (top, gr) in v.items()}   # 0.2.13's votes


def main(out, runs):
    for run in runs:
        sc = open_scorer(run, 'cpu'); data = run_data(Path(run)); rec = {'run': run}
        for split in ('valid', 'test'):
            es = load_run_split(run, sc.cfg, data, split)
            res = sc.score(es.images, every_part=True)
            pm = lambda mp: {m: round(v, 2) for m, v in as_percent(pixel_metrics(es.masks, mp)).items() if m in ('pixel_auroc', 'aupro')}
            rec[split] = {k: pm(mp) for k, mp in rules(res, sc).items()}
            for k, r in fusions(res, sc).items():
                rec[split][k] = {'image_auroc': round(as_percent(image_metrics(es.labels, r.scores))['image_auroc'], 2), **pm(r.maps)}
        print(run, json.dumps(rec['valid']), flush=True)
        with open(out, 'a') as f: f.write(json.dumps(rec) + '\n')


if __name__ == '__main__':
    if len(sys.argv) < 3: raise SystemExit(__doc__)
    main(sys.argv[1], sys.argv[2:])
