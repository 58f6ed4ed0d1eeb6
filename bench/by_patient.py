"""Runs' image scores patient by patient: where a multi-subject split's false alarms and misses lie.

    python bench/by_patient.py RUN [RUN ...] [--split valid|test]

Each run (a run folder, e.g. from `bench/ablate.py --runs`) scores the split of the data it was trained on, the way
`mtlmad evaluate` scores it. Files are grouped by patient: the name up to its last `_` (LGG's `TCGA_<inst>_<id>_<date>`,
as `mtlmad make-data --from lgg` writes them). Per patient and run: the median rank of its normal slices among all
the split's normal slices (0.5: typical; near 1: the patient's normals look anomalous to the run) and the AUROC of
its own tumour slices against its own normal slices (blank with only one class). Runs on cropped copies
(`bench/proto_crop.py`) keep the file names, so they line up with runs on the source."""
import argparse
from pathlib import Path

import numpy as np

from mtlmad.checkpoint import run_data
from mtlmad.jobs import load_run_split, open_scorer
from mtlmad.metrics import image_auroc


def patient_table(scores: np.ndarray, labels: np.ndarray, patients: list) -> dict:
    "{patient: (normals, tumours, median normal rank, within-patient AUROC or nan)} from one split's image scores."
    normal = np.sort(scores[labels == 0])
    if not len(normal): raise SystemExit('the split holds no normal image: nothing to rank against')
    rank = np.searchsorted(normal, scores, side='left') / len(normal)
    out, patients = {}, np.asarray(patients)
    for p in sorted(set(patients)):
        m = patients == p
        y = labels[m]
        auc = 100 * image_auroc(y, scores[m]) if len(set(y.tolist())) == 2 else float('nan')
        out[p] = (int((y == 0).sum()), int((y == 1).sum()), float(np.median(rank[m][y == 0])) if (y == 0).any() else float('nan'), auc)
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('runs', nargs='+'); ap.add_argument('--split', default='valid', choices=('valid', 'test'))
    a = ap.parse_args(argv)
    tables, overall = [], []
    for run in a.runs:
        sc = open_scorer(run, 'cpu')
        es = load_run_split(run, sc.cfg, run_data(run), a.split)
        s = sc.score(es.images).scores
        tables.append(patient_table(s, es.labels, [Path(p).stem.rsplit('_', 1)[0] for p in es.paths]))
        overall.append(100 * image_auroc(es.labels, s))
    lines = [f'| patient | normal / tumour slices | ' + ' | '.join(f'{Path(r).name}: normal rank, AUROC within' for r in a.runs) + ' |',
             '|---|---|' + '---|' * len(a.runs)]
    for p in tables[0]:
        n0, n1 = tables[0][p][:2]
        lines.append(f'| {p} | {n0} / {n1} | ' + ' | '.join(f'{t[p][2]:.2f}, {t[p][3]:.1f}' if p in t else '-' for t in tables) + ' |')
    lines.append('| all | | ' + ' | '.join(f'AUROC {o:.1f}' for o in overall) + ' |')
    print('\n'.join(lines))
    return tables


if __name__ == '__main__':
    main()
