"""One slice through every door of a run: the same pixels as a PNG file, as a slice of a NIfTI volume and as an
explorer upload should score the same; and the per-slice volume curve of a clean scan against the same scan with a
painted blob.

    python tools/door_check.py RUN [--slice 75] [--blob-ml 2] [--repo DIR] [--out DIR]

The volume is the shipped brain MRI (`mtlmad.volumes.brain_mri_volume`), skull-stripped like the demo data and
stored as 8-bit NIfTI, so that its voxels are exactly the grey levels of the 8-bit PNG cut from it. The blob is a
sphere of `--blob-ml` millilitres at full brightness (255), centred in the brain on `--slice`. `--repo` runs the package
found in another checkout (e.g. a git worktree of an older commit), to compare figures before and after a change."""
import argparse, os, sys, tempfile
from pathlib import Path


def volumes(out: Path, k: int, blob_ml: float):
    "Write clean.nii.gz, blob.nii.gz (uint8, 1 mm) and slice_K.png, blob_K.png; returns the paths and the blob's slices."
    import numpy as np, nibabel as nib
    from PIL import Image
    from mtlmad.volumes import brain_mri_volume, volume_slices
    img, brain = brain_mri_volume()
    u8 = np.round(np.clip(np.asarray(img.dataobj) * brain, 0, 1) * 255).astype(np.uint8)
    (x, y), r = np.argwhere(brain[:, :, k]).mean(0), (3 * blob_ml * 1000 / (4 * np.pi)) ** (1 / 3)
    g = np.mgrid[:u8.shape[0], :u8.shape[1], :u8.shape[2]]
    sphere = (g[0] - x) ** 2 + (g[1] - y) ** 2 + (g[2] - k) ** 2 <= r ** 2
    painted = u8.copy(); painted[sphere] = 255
    paths = {}
    for name, v in (('clean', u8), ('blob', painted)):
        paths[name] = out / f'{name}.nii.gz'
        nib.save(nib.Nifti1Image(v, img.affine), paths[name])
        paths[f'{name}_png'] = out / f'{name}_{k:03d}.png'
        Image.fromarray(volume_slices(v)[k], 'L').save(paths[f'{name}_png'])
    return paths, np.flatnonzero(sphere.any((0, 1))), int(sphere.sum())


def doors(run, scorer, paths: dict, k: int, name: str) -> dict:
    "The score of slice k through predict_files, score_volume and the explorer's upload."
    import torch
    from mtlmad.jobs import predict_files
    from mtlmad.volumes import read_volume, score_volume
    from mtlmad.widgets import AnomalyExplorer
    png = paths[f'{name}_png']
    s_png = predict_files(run, [png], device='cpu')[0].score
    vs = score_volume(scorer, read_volume(paths[name]), progress=False)
    S, C = scorer.cfg.image_size, scorer.cfg.channels
    ex = AnomalyExplorer(scorer, torch.zeros(2, C, S, S).uniform_(0, 0.5))
    ex.add_image(str(png))
    return dict(png=s_png, volume=float(vs.slice_scores[k]), upload=float(ex.scores[-1]), vs=vs)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('run')
    ap.add_argument('--slice', type=int, default=75, help='axial slice of the volume (0: the lowest brain slice)')
    ap.add_argument('--blob-ml', type=float, default=2.0, help='volume of the painted sphere, in ml')
    ap.add_argument('--repo', help='the checkout whose mtlmad runs (default: the installed one)')
    ap.add_argument('--out', help='where the volumes and PNGs are written (default: a temporary folder)')
    a = ap.parse_args()
    if a.repo: sys.path.insert(0, os.path.abspath(a.repo))
    os.environ.setdefault('OMP_NUM_THREADS', '1')
    import numpy as np, torch, warnings
    torch.manual_seed(0)
    warnings.simplefilter('always')
    import mtlmad
    from mtlmad.jobs import open_scorer
    out = Path(a.out or tempfile.mkdtemp(prefix='mtlmad_doors_')); out.mkdir(parents=True, exist_ok=True)
    paths, zs, n = volumes(out, a.slice, a.blob_ml)
    scorer = open_scorer(a.run, 'cpu')
    print(f'mtlmad {mtlmad.__version__} from {Path(mtlmad.__file__).parent}; run {a.run} (intensity '
          f'{getattr(scorer.cfg, "intensity", "none")}, {scorer.cfg.image_size}px); files in {out}')
    print(f'blob: {n} voxels ({n / 1000:.2f} ml) in axial slices {zs.min()}..{zs.max()}\n')
    res = {name: doors(a.run, scorer, paths, a.slice, name) for name in ('clean', 'blob')}
    print(f'slice {a.slice}      predict_files  score_volume  explorer upload')
    for name, r in res.items(): print(f'  {name:6s}      {r["png"]:13.3f} {r["volume"]:13.3f} {r["upload"]:16.3f}')
    c, b = res['clean']['vs'], res['blob']['vs']
    top = {name: int(np.nanargmax(r['vs'].slice_scores)) for name, r in res.items()}
    print(f'\nvolume score: clean {c.score:.3f}, blob {b.score:.3f}; '
          f'most anomalous slice: clean {top["clean"]}, blob {top["blob"]}')
    lo, hi = max(0, zs.min() - 6), min(len(c.slice_scores), zs.max() + 7)
    print(f'per-slice scores, slices {lo}..{hi - 1} (* the blob\'s):')
    for z in range(lo, hi):
        print(f'  {z:3d}{"*" if z in zs else " "} clean {c.slice_scores[z]:7.3f}   blob {b.slice_scores[z]:7.3f}')
    out_blob = np.delete(b.slice_scores, zs)
    print(f'blob slices: max {np.nanmax(b.slice_scores[zs]):.3f} vs the other slices\' max {np.nanmax(out_blob):.3f}')


if __name__ == '__main__': main()
