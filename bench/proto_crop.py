"""Prototype: every image fitted to its own tissue, so that a run sees each head at one scale (a copy of a dataset folder).

    python bench/proto_crop.py SRC DST [--margin 0.04] [--per image|patient] [--grid S [--fixed F | --smallest PX]]
    python bench/proto_crop.py SRC --evaluate RUN [--frame-lookup | --wrap | --package] [--name NAME --log LOG]   (a run trained on a cropped copy, measured on SRC's grid)

SRC is a dataset folder in BMAD's Brain layout (what `mtlmad make-data` writes, the LGG builder's patient folds or the
demo data). DST is a copy of it where each image, and its mask with the same box, is cropped to the square around
its tissue, `margin` of the square's side added on each side (zero-padded where the square leaves the image). The
rule reads one image alone (`--per image`, the default), so any single file could be prepared the same way: no
patient, no volume. `--per patient` cuts all of a patient's slices by one square around that patient's head (LGG's
folds, whose dataset.json lists the patients): every head at one scale, each slice keeping its size within its head.
The copy records its rule in `crop.json`. `--grid S` cuts each square from the frame the package makes of the file (fitted
to a square and resized to S px, as every `mtlmad` entry point passes images), not from the file's own pixels, and
writes the crop resized back to S px (bilinear): what an option inside the package could do, where only S px frames
exist. `--smallest PX` (with `--grid`): the square's least side (before the margin) is PX instead of the package's
16, so a small slice (the head's top or bottom) is magnified less; `--package` scores such a copy's run with the
package's crop at that least side. `--fixed F` (with `--grid`): every square is F of the frame's side, centred on the tissue, whatever the tissue's
size; `--fixed 1` moves each head to the middle of the frame and keeps its scale (a shift, no magnification).

Why: the LGG patients' heads fill from under half to the whole of the 256 px frame (tissue area at 128 px: 6,800 to
15,800 pixels, patient medians), the field of view being the scanner's choice. The patients whose heads fill the
frame hold most of the highest-scored normal slices (*After 0.2.12* in `bench/ablation.md`). Trained and scored on
such copies (`bench/ablate.py --data DST`), a run sees every head at one scale.

Tissue: pixels above 0.1 of the image's 99th percentile (the slice rule of `mtlmad.lgg`), holes filled, components
under 2 % of the largest one dropped (specks of noise outside the head; the demo's brain ends keep their lobes).
Pixel metrics of runs on a cropped copy are on its own grid (less background), so only image AUROC compares directly
with runs on SRC. `--evaluate` puts a cropped run's fused maps back where each crop came from (the same square, found
again on SRC's image, scaled to the model's grid; outside it, the map's least value) and measures them against SRC's
own masks at the model's resolution, as `mtlmad evaluate` measures a run trained on SRC: those figures pair with SRC's
runs on all three measures. With `--log` it appends an ablation-log row for `bench/ablate.py --compare`.
`--frame-lookup` (with `--evaluate`): the lookup part, which needs no model (the image's own grey level against its
most similar normal images), is taken from SRC's whole frames, calibrated on SRC as `mtlmad` calibrates a run; the
learned parts stay the crop's, put back on the frame; all are fused as the run fuses them. The crop magnifies each
slice to the grid, so its grey levels lose where in the head the slice lies; the frame keeps that for the lookup.
`--package` (with `--evaluate`, a run on a `--grid` copy): the run scored by the package's own option,
`MTLConfig(crop='tissue')` (`mtlmad.crop`), which cuts the same crops from the same frames: its config set to crop,
calibrated on SRC as `train_run` calibrates a run."""
import argparse, json, shutil
from pathlib import Path

import numpy as np
from PIL import Image
from scipy import ndimage

SPECK = 0.02   # components smaller than this fraction of the largest are not tissue
SMALLEST = 16  # the square's least side in pixels, before the margin (the package's `mtlmad.crop.SMALLEST`)


def tissue(grey: np.ndarray, level: float = 0.1) -> np.ndarray:
    "Where a grey image (H, W) holds tissue: above `level` of its 99th percentile, holes filled, specks dropped."
    top = np.percentile(grey, 99)
    if top <= 0: return np.ones(grey.shape, bool)
    m = ndimage.binary_fill_holes(grey > level * top)
    lab, n = ndimage.label(m)
    if n < 2: return m
    sizes = ndimage.sum(m, lab, range(1, n + 1))
    return np.isin(lab, 1 + np.flatnonzero(sizes >= SPECK * sizes.max()))


def tissue_square(grey: np.ndarray, margin: float = 0.04, smallest: int = SMALLEST, fixed: float | None = None) -> tuple:
    """The square (y0, y1, x0, x1) centred on the tissue's bounding box, its side the box's longer side plus `margin` each way.
    `fixed`: the side is instead this fraction of the image's own side, whatever the tissue's size (the tissue moved to
    the middle, its scale kept: `fixed=1` on a model's frame is a shift, no magnification)."""
    m = tissue(grey)
    ys, xs = np.flatnonzero(m.any(1)), np.flatnonzero(m.any(0))
    if not len(ys): return 0, grey.shape[0], 0, grey.shape[1]
    cy, cx = (ys[0] + ys[-1] + 1) / 2, (xs[0] + xs[-1] + 1) / 2
    side = fixed * grey.shape[0] if fixed else max(ys[-1] + 1 - ys[0], xs[-1] + 1 - xs[0], smallest) * (1 + 2 * margin)
    return tuple(int(round(v)) for v in (cy - side / 2, cy + side / 2, cx - side / 2, cx + side / 2))


def crop(a: np.ndarray, box: tuple) -> np.ndarray:
    "The box of an array (H, W[, C]), zero where the box leaves it."
    y0, y1, x0, x1 = box
    out = np.zeros((y1 - y0, x1 - x0) + a.shape[2:], a.dtype)
    sy, sx = slice(max(y0, 0), min(y1, a.shape[0])), slice(max(x0, 0), min(x1, a.shape[1]))
    out[sy.start - y0:sy.stop - y0, sx.start - x0:sx.stop - x0] = a[sy, sx]
    return out


def _grey(f: Path) -> np.ndarray:
    a = np.asarray(Image.open(f)).astype(np.float32)
    return a.mean(-1) if a.ndim == 3 else a


def patient_of(f: Path, patients: list) -> str:
    "The patient (a `dataset.json` patient id that starts the file's name) an image belongs to."
    for p in patients:
        if f.stem.startswith(p + '_'): return p
    raise SystemExit(f'{f}: its name starts with none of the {len(patients)} patients of the dataset.json')


def crop_boxes(src, margin: float = 0.04, per: str = 'image') -> dict:
    """Each image of dataset folder `src` -> its square (y0, y1, x0, x1). `per='image'`: around the image's own tissue;
    `per='patient'`: around the tissue of all of its patient's slices (each edge: the 10th / 90th percentile over the
    slices, so one noisy slice does not widen it; patients as `mtlmad make-data --from lgg` lists them in dataset.json),
    so every slice of a head is cut the same way: heads at one scale, each slice's place in its head kept."""
    src = Path(src)
    images = [f for f in sorted(src.rglob('*.png')) if f.parent.name != 'label']
    if not images: raise SystemExit(f'{src}: no PNG images: give a dataset folder in the BMAD Brain layout')
    if per == 'image': return {f: tissue_square(_grey(f), margin) for f in images}
    if per != 'patient': raise SystemExit(f"per should be 'image' or 'patient', got {per!r}")
    meta = json.loads((src / 'dataset.json').read_text()) if (src / 'dataset.json').exists() else {}
    patients = sorted({p for ps in meta.get('patients', {}).values() for p in ps}, key=len, reverse=True)
    if not patients: raise SystemExit(f'{src}/dataset.json lists no patients: per patient needs a folder from `mtlmad make-data --from lgg`')
    extents = {}
    for f in images:
        m = tissue(_grey(f)); ys, xs = np.flatnonzero(m.any(1)), np.flatnonzero(m.any(0))
        if len(ys): extents.setdefault(patient_of(f, patients), []).append((ys[0], ys[-1], xs[0], xs[-1]))
    union = {}   # per side, the 10th (top, left) or 90th (bottom, right) percentile of the slices' edges: a noisy slice does not set it
    for p, e in extents.items():
        e = np.array(e, float)
        union[p] = (np.percentile(e[:, 0], 10), np.percentile(e[:, 1], 90), np.percentile(e[:, 2], 10), np.percentile(e[:, 3], 90))
    boxes = {}
    for f in images:
        y0, y1, x0, x1 = union[patient_of(f, patients)]
        cy, cx, side = (y0 + y1 + 1) / 2, (x0 + x1 + 1) / 2, max(y1 + 1 - y0, x1 + 1 - x0) * (1 + 2 * margin)
        boxes[f] = tuple(int(round(v)) for v in (cy - side / 2, cy + side / 2, cx - side / 2, cx + side / 2))
    return boxes


def grid_frame(path, size: int, mask: bool = False) -> np.ndarray:
    "An image file (or a mask, > 0.5 after resizing) as the package's (size, size) grey frame in [0, 1] (`mtlmad.data.images`)."
    from mtlmad.data.images import fit_square, read_image, read_mask, resize_image
    a = read_mask(path).astype(np.float32) if mask else read_image(path, 1)
    a = np.clip(resize_image(fit_square(a), size, Image.BILINEAR), 0, 1)
    return (a > 0.5).astype(np.float32) if mask else a


def regrid(a: np.ndarray, size: int, mask: bool = False) -> np.ndarray:
    "A crop (h, w) resized to (size, size): bilinear (a mask: nearest)."
    import torch
    t = torch.as_tensor(a, dtype=torch.float32)[None, None]
    t = torch.nn.functional.interpolate(t, size=(size, size), mode='nearest' if mask else 'bilinear', **({} if mask else {'align_corners': False}))
    return t[0, 0].numpy()


def crop_grid_folder(src, dst, size: int, margin: float = 0.04, fixed: float | None = None, smallest: int = SMALLEST) -> int:
    "Write the copy of `src` whose crops are cut from the package's `size` px frames and resized back to `size` px (`fixed`, `smallest`: as `tissue_square`)."
    src, dst = Path(src), Path(dst)
    images = [f for f in sorted(src.rglob('*.png')) if f.parent.name != 'label']
    if not images: raise SystemExit(f'{src}: no PNG images: give a dataset folder in the BMAD Brain layout')
    for f in images:
        frame = grid_frame(f, size)
        box = tissue_square(frame, margin, smallest, fixed)
        pairs = [(f, frame, False)]
        lab = f.parent.parent / 'label' / f.name
        if f.parent.name == 'img' and lab.exists(): pairs.append((lab, grid_frame(lab, size, mask=True), True))
        for g, a, is_mask in pairs:
            out = dst / g.relative_to(src); out.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(np.round(np.clip(regrid(crop(a, box), size, is_mask), 0, 1) * 255).astype(np.uint8)).save(out)
    for f in src.glob('*.json'): shutil.copy(f, dst / f.name)
    (dst / 'crop.json').write_text(json.dumps({'margin': margin, 'per': 'image', 'grid': size, **({'fixed': fixed} if fixed else {}), **({'smallest': smallest} if smallest != SMALLEST else {})}))
    return len(images)


def grid_boxes(src, how: dict, paths: list, size: int) -> list:
    "Each file's square on the model's (size, size) grid, found by the rule a cropped copy records (`crop.json`)."
    if how.get('grid'):
        if how['grid'] != size: raise SystemExit(f"the copy was cut from {how['grid']} px frames but the run's grid is {size} px")
        return [tissue_square(grid_frame(p, size), how['margin'], how.get('smallest', SMALLEST), how.get('fixed')) for p in paths]
    every = crop_boxes(src, how['margin'], how['per'])
    return [grid_box(every[Path(p)], p, size) for p in paths]


def crop_folder(src, dst, margin: float = 0.04, per: str = 'image') -> int:
    "Write the cropped copy of dataset folder `src` into `dst` (`crop_boxes`); returns the number of images written."
    src, dst = Path(src), Path(dst)
    boxes = crop_boxes(src, margin, per)
    for f, box in boxes.items():
        for g in [f] + [f.parent.parent / 'label' / f.name] * (f.parent.name == 'img'):
            if not g.exists(): continue
            out = dst / g.relative_to(src); out.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(crop(np.asarray(Image.open(g)), box)).save(out)
    for f in src.glob('*.json'): shutil.copy(f, dst / f.name)
    (dst / 'crop.json').write_text(json.dumps({'margin': margin, 'per': per}))
    return len(boxes)


def uncrop(maps: np.ndarray, boxes: list, size: int) -> np.ndarray:
    "Maps (N, s, s) of cropped images put back on a (size, size) grid, each into its box (y0, y1, x0, x1) on that grid."
    import torch
    out = np.empty((len(maps), size, size), np.float32)
    for i, (m, (y0, y1, x0, x1)) in enumerate(zip(maps, boxes)):
        big = torch.nn.functional.interpolate(torch.as_tensor(m, dtype=torch.float32)[None, None], size=(y1 - y0, x1 - x0),
                                              mode='bilinear', align_corners=False)[0, 0].numpy()
        out[i] = m.min()
        sy, sx = slice(max(y0, 0), min(y1, size)), slice(max(x0, 0), min(x1, size))
        out[i, sy, sx] = big[sy.start - y0:sy.stop - y0, sx.start - x0:sx.stop - x0]
    return out


def grid_box(box: tuple, path, size: int) -> tuple:
    "A square found on an image file's pixels (`crop_boxes`), on the model's (size, size) grid."
    n = Image.open(path).size[1]
    return tuple(int(round(v * size / n)) for v in box)


def crop_paths(run, src, dst, src_paths, dst_paths, split: str) -> dict:
    "Each of `src`'s files -> its crop among `dst`'s, or a clear error when `dst` is not a cropped copy of `src`."
    own = {str(Path(p).relative_to(dst)): p for p in dst_paths}
    if sorted(own) != sorted(str(Path(p).relative_to(src)) for p in src_paths):
        raise SystemExit(f'{run}: its data {dst} is not a cropped copy of {src} (their {split} files differ)')
    return {p: own[str(Path(p).relative_to(src))] for p in src_paths}


def evaluate_on_source(run, src, split: str = 'valid', frame=None) -> dict:
    """Fused metrics (percent) of a run trained on a cropped copy of `src`, its maps put back on `src`'s grid.
    `frame`: a `Scorer` of the same run calibrated on `src` itself (`frame_scorer`); its lookup part, the image's grey
    level against similar normal frames, then replaces the cropped lookup part (the learned parts stay the crop's)."""
    from mtlmad.calibration import LOOKUP
    from mtlmad.checkpoint import run_data
    from mtlmad.jobs import load_run_split, open_scorer
    from mtlmad.metrics import as_percent, image_metrics, pixel_metrics
    from mtlmad.score import fuse_maps, fuse_scores
    sc = open_scorer(run, 'cpu')
    dst, src = Path(run_data(run)), Path(src)
    crops, full = load_run_split(run, sc.cfg, dst, split), load_run_split(run, sc.cfg, src, split)
    pair, index = crop_paths(run, src, dst, full.paths, crops.paths, split), {p: i for i, p in enumerate(crops.paths)}
    res = sc.score(crops.images[[index[pair[p]] for p in full.paths]])
    how = json.loads((dst / 'crop.json').read_text())   # the rule the copy was cut by
    size = full.images.shape[-1]
    boxes = grid_boxes(src, how, full.paths, size)
    if frame is None:
        m = image_metrics(full.labels, res.scores)
        m.update(pixel_metrics(full.masks, uncrop(res.maps, boxes, size)))
        return {'fused': as_percent(m)}
    if LOOKUP not in sc.fusion_tasks: raise SystemExit(f'{run}: its scoring has no lookup part to take from the frame')
    whole = frame.score(full.images, tasks=[LOOKUP])   # the lookup part needs no model: its grey level against similar frames
    maps = {t: uncrop(res.task_maps[t], boxes, size) for t in sc.fusion_tasks if t != LOOKUP}
    scores = {t: res.task_scores[t] for t in maps}
    maps[LOOKUP], scores[LOOKUP] = whole.task_maps[LOOKUP], whole.task_scores[LOOKUP]
    norms = dict(sc.norms, **{LOOKUP: frame.norms[LOOKUP]})
    tasks = list(sc.fusion_tasks)
    m = image_metrics(full.labels, fuse_scores(scores, norms, sc.fusion, tasks, maps, sc.sigma, sc.top_parts, sc.groups, sc.lookup_map, sc.image_votes))
    m.update(pixel_metrics(full.masks, fuse_maps(maps, norms, tasks, sc.sigma, sc.top_parts, sc.groups, sc.lookup_map)))
    return {'fused': as_percent(m)}

def wrapped_scorer(run, src):
    """The run (trained on a cropped copy of `src`) wrapped to score `src`'s whole frames: each frame is replaced by its
    crop before the model, the model's error maps (and the feature part's) are put back into the frame's box, and the
    rest (per-location calibration against similar frames, the lookup part, fusion) runs on the frame, calibrated on
    `src` as `mtlmad` calibrates a run. Frames are matched to their crops by content: only `src`'s own images can be scored."""
    import hashlib
    import torch
    import mtlmad.score as score
    from mtlmad.calibration import LOOKUP
    from mtlmad.checkpoint import run_data
    from mtlmad.data.loading import eval_set, open_data, samples_source
    from mtlmad.jobs import _run_scoring, calibration_split, load_run, reference_subset
    from mtlmad.tasks.base import top_fraction_mean
    dst, src = Path(run_data(run)), Path(src)
    r, how = load_run(run, device='cpu'), json.loads((dst / 'crop.json').read_text())
    table = {}
    key = lambda x: hashlib.md5(x.contiguous().numpy().tobytes()).hexdigest()
    for split in ('train', 'valid', 'test'):
        ss, sd = (open_data(d, splits=(), optional=(split,)) for d in (src, dst))
        if ss.splits.get(split) is None: continue
        ss, sd = ss.samples(split), {x.path: x for x in sd.samples(split)}
        pair = crop_paths(run, src, dst, [x.path for x in ss], sd, split)
        frames, crops = (eval_set(x, r.cfg.image_size, r.cfg.channels, r.cfg.intensity).images for x in (ss, [sd[pair[x.path]] for x in ss]))
        boxes = grid_boxes(src, how, [x.path for x in ss], r.cfg.image_size)
        for f, c, b in zip(frames, crops, boxes): table[key(f)] = (c, b)
    def crop_of(images):
        try: return [table[key(x)] for x in images.cpu()]
        except KeyError: raise ValueError(f'an image that is none of {src}\'s frames: the wrapped run scores only those') from None

    class Wrapped(score.Scorer):
        def errors(self, images, batch_size=16, progress=False, desc='scoring', parts=None):
            got = crop_of(images)
            maps, scores, gates = score.Scorer.errors(self, torch.stack([g[0] for g in got]), batch_size, progress, desc, parts)
            for t in maps:
                if t == LOOKUP:   # the frame's own grey level, as the package's lookup part
                    grey = images.cpu().float().mean(1); maps[t], scores[t] = grey.numpy(), top_fraction_mean(grey).numpy()
                else: maps[t] = uncrop(maps[t], [g[1] for g in got], images.shape[-1])
            return maps, scores, gates

    fit = score.fit_density   # the feature part is fitted on the crops the model sees
    score.fit_density = lambda model, tasks, images, *a, **k: fit(model, tasks, torch.stack([g[0] for g in crop_of(images)]), *a, **k)
    try:
        train, normals, _ = calibration_split(src, r.cfg)
        sc = Wrapped(r.model, r.tasks, scoring=_run_scoring(r, None), device='cpu')
        ts = samples_source(train, r.cfg)
        sc.calibrate(normals, ts.batch(reference_subset(torch.arange(len(ts)))).cpu())
    finally: score.fit_density = fit
    sc.cfg = r.cfg
    return sc

def evaluate_wrapped(run, src, split: str = 'valid', sc=None) -> dict:
    "Fused metrics (percent) of `wrapped_scorer(run, src)` on `src`'s split, as `mtlmad evaluate` measures a run."
    from mtlmad.jobs import load_run_split
    from mtlmad.metrics import as_percent, image_metrics, pixel_metrics
    sc = sc or wrapped_scorer(run, src)
    es = load_run_split(run, sc.cfg, src, split)
    res = sc.score(es.images)
    m = image_metrics(es.labels, res.scores)
    m.update(pixel_metrics(es.masks, res.maps))
    return {'fused': as_percent(m)}

def package_scorer(run, src):
    """The run (trained on a `--grid` copy of `src`) scored by the package's own crop path (`MTLConfig(crop='tissue')`,
    `mtlmad.crop`): its config set to crop, calibrated on `src`'s frames as `train_run` calibrates a run. The package cuts
    the same crops from the same frames (within 8-bit rounding), so this measures the option on the models trained here."""
    from mtlmad.checkpoint import run_data
    from mtlmad.crop import MARGIN
    from mtlmad.data.loading import samples_source
    from mtlmad.jobs import _run_scoring, calibrated_scorer, calibration_split, load_run
    import mtlmad.crop
    how = json.loads((Path(run_data(run)) / 'crop.json').read_text())
    r = load_run(run, device='cpu')
    if how.get('grid') != r.cfg.image_size or how['margin'] != MARGIN or how.get('fixed'):
        raise SystemExit(f"{run}: its data was not cut as the package cuts (--grid {r.cfg.image_size}, margin {MARGIN}, no --fixed): {how}")
    # a copy cut with another least side (`--smallest`): the package's crop runs with that least side, for this process
    mtlmad.crop.SMALLEST = how.get('smallest', SMALLEST)
    r.cfg = r.model.cfg = r.cfg.replace(crop='tissue')
    train, normals, _ = calibration_split(src, r.cfg)
    sc = calibrated_scorer(r.model, r.tasks, samples_source(train, r.cfg), normals, _run_scoring(r, None), 'cpu')
    sc.cfg = r.cfg
    return sc

def frame_scorer(run, src):
    "The run calibrated on `src`'s own frames (for the lookup part: `evaluate_on_source(frame=...)`)."
    from mtlmad.jobs import calibrate_run
    return calibrate_run(run, data=src, device='cpu', progress=False)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('src'); ap.add_argument('dst', nargs='?'); ap.add_argument('--margin', type=float, default=0.04)
    ap.add_argument('--per', default='image', choices=('image', 'patient'), help='one square per image, or per patient (LGG folds)')
    ap.add_argument('--grid', type=int, default=None, metavar='S', help="cut from the package's S px frames, crops resized back to S px")
    ap.add_argument('--fixed', type=float, default=None, metavar='F', help='with --grid: every square F of the frame, centred on the tissue (1: a shift, no magnification)')
    ap.add_argument('--smallest', type=int, default=SMALLEST, metavar='PX', help=f"with --grid: the square's least side before the margin, in pixels (the package's is {SMALLEST})")
    ap.add_argument('--evaluate', metavar='RUN', help="measure RUN (trained on a cropped copy of SRC) on SRC's grid")
    ap.add_argument('--frame-lookup', action='store_true', help="with --evaluate: the lookup part from SRC's whole frames, the learned parts from the crops")
    ap.add_argument('--wrap', action='store_true', help='with --evaluate: the run wrapped to score whole frames (crop, model, maps back), calibrated on SRC')
    ap.add_argument('--package', action='store_true', help="with --evaluate: a --grid run scored by the package's crop option, calibrated on SRC")
    ap.add_argument('--name', default=None, help="the log row's name (default: the run's own, with _uncrop)")
    ap.add_argument('--log', default=None, help='append the row to this ablation log')
    a = ap.parse_args(argv)
    if a.evaluate:
        from mtlmad.checkpoint import read_run_record
        if a.wrap or a.package:
            sc = (package_scorer if a.package else wrapped_scorer)(a.evaluate, a.src)
            out = {s: evaluate_wrapped(a.evaluate, a.src, s, sc) for s in ('valid', 'test')}
        else:
            frame = frame_scorer(a.evaluate, a.src) if a.frame_lookup else None
            out = {s: evaluate_on_source(a.evaluate, a.src, s, frame) for s in ('valid', 'test')}
        rec = read_run_record(a.evaluate).get('ablation', {'name': Path(a.evaluate).name, 'seed': None})
        row = dict(rec, name=f"{a.name or rec['name'] + ('_wrap' if a.wrap else '_pkg' if a.package else '_framelookup' if a.frame_lookup else '_uncrop')}/local", data=str(a.src), **out)
        print(f"[{row['name']} seed {row['seed']}] " + '  '.join(
            f"{s.upper()} " + ' / '.join(f"{out[s]['fused'][k]:.1f}" for k in ('image_auroc', 'pixel_auroc', 'aupro')) for s in out))
        if a.log:
            with open(a.log, 'a') as f: f.write(json.dumps(row) + '\n')
        return row
    if a.dst is None: ap.error('give SRC and DST, or --evaluate RUN SRC')
    if a.grid:
        if a.per != 'image': ap.error('--grid cuts one square per image')
        print(f'{crop_grid_folder(a.src, a.dst, a.grid, a.margin, a.fixed, a.smallest)} images cropped to their tissue on {a.grid} px frames into {a.dst}')
    elif a.fixed or a.smallest != SMALLEST: ap.error('--fixed and --smallest need --grid')
    else: print(f'{crop_folder(a.src, a.dst, a.margin, a.per)} images cropped to their tissue ({a.per}) into {a.dst}')


if __name__ == '__main__':
    main()
