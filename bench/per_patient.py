"""Which patients does a run rank worse than another? Image AUROC per patient, for two runs on one split.

    python bench/per_patient.py DATA RUN_A RUN_B [--split valid] [--crop-grid-b] [--parts]

DATA: an LGG folder written by `mtlmad make-data --from lgg` (file names start with the patient, TCGA_XX_NNNN).
RUN_A, RUN_B: run folders, each scored as `mtlmad` scores it (`open_scorer`). `--crop-grid-b`: RUN_B was trained on a
`bench/proto_crop.py --grid` copy of DATA and is scored by the package's crop path (`proto_crop.package_scorer`).
For each patient of the split, and each run:
  within          the patient's tumour slices against its own normal slices
  tumours-vs-rest the patient's tumour slices against every other patient's normal slices
  normals-vs-rest every other patient's tumour slices against this patient's normal slices (low: its normals score high)
`--parts`: then, for each part the runs fuse (tasks, feature part, lookup), its image AUROC on the whole split and
within each patient, run A -> run B: which part ranks a patient's tumour slices below its own normal slices.
"""
import argparse, sys
from pathlib import Path

import numpy as np
import torch
from sklearn.metrics import roc_auc_score

sys.path.insert(0, str(Path(__file__).resolve().parent))
from mtlmad.data.loading import load_split
from mtlmad.jobs import open_scorer


def auroc(neg: np.ndarray, pos: np.ndarray) -> float:
    "AUROC in percent of scores `pos` (anomalous) against `neg` (normal); NaN when either is empty."
    if not len(neg) or not len(pos): return float('nan')
    return 100 * roc_auc_score(np.r_[np.zeros(len(neg)), np.ones(len(pos))], np.r_[neg, pos])


def within(z: np.ndarray, patients: np.ndarray, labels: np.ndarray, p: str) -> float:
    "AUROC (percent) of patient `p`'s tumour slices against its own normal slices."
    m = patients == p
    return auroc(z[m & (labels == 0)], z[m & (labels == 1)])


def patient_table(patients: np.ndarray, labels: np.ndarray, scores: dict) -> str:
    "Markdown: per patient and run, within / tumours-vs-rest / normals-vs-rest image AUROC."
    out = ['| patient | slices (tumour) | ' + ' | '.join(f'{n}: within / tumours-vs-rest / normals-vs-rest' for n in scores) + ' |',
           '|---|---|' + '---|' * len(scores)]
    for p in sorted(set(patients)):
        m = patients == p
        cells = []
        for z in scores.values():
            cells.append(' / '.join(f'{v:.0f}' for v in (within(z, patients, labels, p),
                                                         auroc(z[~m & (labels == 0)], z[m & (labels == 1)]),
                                                         auroc(z[m & (labels == 0)], z[~m & (labels == 1)]))))
        out.append(f'| {p} | {m.sum()} ({(m & (labels == 1)).sum()}) | ' + ' | '.join(cells) + ' |')
    return '\n'.join(out)


def parts_table(patients: np.ndarray, labels: np.ndarray, parts_a: dict, parts_b: dict) -> str:
    "Markdown: per part, image AUROC on the whole split and within each patient (tumour against its own normals), A -> B."
    ps = sorted(set(patients))
    out = ['| part | whole split | ' + ' | '.join(ps) + ' | mean within |', '|---|---|' + '---|' * (len(ps) + 1)]
    for t in [t for t in parts_a if t in parts_b]:
        a, b = np.asarray(parts_a[t]), np.asarray(parts_b[t])
        w = [[within(z, patients, labels, p) for p in ps] for z in (a, b)]
        whole = [auroc(z[labels == 0], z[labels == 1]) for z in (a, b)]
        out.append(f'| {t} | {whole[0]:.1f} → {whole[1]:.1f} | ' + ' | '.join(f'{x:.0f} → {y:.0f}' for x, y in zip(*w))
                   + f' | {np.nanmean(w[0]):.0f} → {np.nanmean(w[1]):.0f} |')
    return '\n'.join(out)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('data'); ap.add_argument('run_a'); ap.add_argument('run_b')
    ap.add_argument('--split', default='valid')
    ap.add_argument('--parts', action='store_true', help="also each fused part's AUROC, whole split and within each patient, A -> B")
    ap.add_argument('--crop-grid-b', action='store_true', help="RUN_B was trained on a --grid copy of DATA: score it by the package's crop path")
    a = ap.parse_args(argv)
    torch.set_num_threads(1)
    es = load_split(a.data, a.split, image_size=128)
    if es.paths is None or not len(es.paths): raise SystemExit(f'{a.data}: no images in split {a.split!r}')
    patients = np.array(['_'.join(Path(p).stem.split('_')[:3]) for p in es.paths])
    labels = np.asarray(es.labels)
    scorers = {'A': open_scorer(a.run_a, 'cpu')}
    if a.crop_grid_b:
        from proto_crop import package_scorer
        scorers['B'] = package_scorer(a.run_b, a.data)
    else: scorers['B'] = open_scorer(a.run_b, 'cpu')
    results = {n: s.score(es.images, every_part=True) for n, s in scorers.items()}
    scores = {n: np.asarray(r.scores) for n, r in results.items()}
    for n, z in scores.items(): print(f'{n} ({a.run_a if n == "A" else a.run_b}): image AUROC {auroc(z[labels == 0], z[labels == 1]):.1f}')
    print(patient_table(patients, labels, scores))
    if a.parts: print('\n' + parts_table(patients, labels, results['A'].task_scores, results['B'].task_scores))


if __name__ == '__main__': main()
