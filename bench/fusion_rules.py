"""Ways to fuse the parts' image scores, compared on the same forward passes: validation in-sample and cross-fitted, test reported.

    python bench/fusion_rules.py RUN [RUN ...] [--rules top2,top1,...] [--scorer JSON] [--halves 20] [--data DIR] [--out OUT.json]

Every rule here acts on the parts' image scores after the calibration (`TaskNorm`), so one scoring pass of each split
serves them all. For each run and each rule it prints the image AUROC (percent) of:
- `valid`: the validation split under the run's calibration (on its own data: on all its validation normals), what
  `mtlmad evaluate --split valid` reports;
- `cross`: the validation split cross-fitted (`bench/crossfit.py`: calibrated on half of its patients' normals, judged on
  the other half, averaged over the halves);
- `test`: the test split under the run's calibration (reported only).

Each rule is paired against the first (today's: the mean of the two largest votes), and against the mirror part
alone. The rules (`RULES`):
- `top1`, `top2`, `top3`, `all`: the mean of the 1, 2, 3 or all largest votes (`ScoringConfig.top_parts`); a group
  (`ScoringConfig.groups`) is one vote, its parts' largest z;
- `map_max`: the fused map's maximum (`ScoringConfig.fusion='max'`);
- `fisher`: each vote's z as a one-sided normal tail probability, combined by Fisher's sum of -2 log p;
- `two_kinds`: two votes, the largest z of the learned parts and the largest of the no-learning parts, averaged;
- `RULE-no_PART` (e.g. `top2-no_lookup`): the rule without PART's vote (its map stays in the fused map)."""
import argparse, json, re, shlex, sys
from pathlib import Path

import numpy as np
import torch
from scipy.stats import norm as normal

from ablate import run_scorer
from crossfit import fit_norms, halves, patient_groups
from mtlmad.calibration import LOOKUP, MIRROR
from mtlmad.checkpoint import run_data
from mtlmad.jobs import load_run_split
from mtlmad.metrics import image_auroc
from mtlmad.score import fuse_scores, largest_mean, merge_groups

NO_LEARNING = (LOOKUP, MIRROR)


def votes(sc, norms: dict, scores: dict, idx) -> tuple[dict, list]:
    "Each part's z-score on the images `idx` selects, and the votes: the groups' parts merged by their largest z."
    z = {t: norms[t].z_score(norms[t].scale_z(s[idx]) if s.ndim == 2 else s[idx]) for t, s in scores.items()}
    return z, merge_groups(z, sc.groups)


def parse_rule(rule: str) -> tuple[str, str]:
    "A rule's name and the part it leaves out ('' for none); a clear error for a rule that is not one of `RULES`' kinds."
    base, _, drop = rule.partition('-no_')
    if not (base in ('all', 'map_max', 'fisher', 'two_kinds') or re.fullmatch(r'top[1-9][0-9]*', base)) or (rule != base and not drop):
        raise ValueError(f'unknown rule {rule!r}: one of topN (N >= 1), all, map_max, fisher, two_kinds, each optionally -no_PART')
    return base, drop


def rule_scores(rule: str, sc, norms: dict, scores: dict, maps: dict, idx) -> np.ndarray:
    "The fused image scores of the images `idx` selects under `rule` (`RULE-no_PART`: with PART's vote left out)."
    rule, drop = parse_rule(rule)
    if drop: scores = {t: s for t, s in scores.items() if t != drop}
    z, v = votes(sc, norms, scores, idx)
    if rule.startswith('top') or rule == 'all': return largest_mean(v, 0 if rule == 'all' else int(rule[3:]))
    if rule == 'map_max':
        one = {t: norms[t].scale_z(s[idx]) if s.ndim == 2 else s[idx] for t, s in scores.items()}
        return fuse_scores(one, norms, 'max', list(scores), {t: m[idx] for t, m in maps.items()}, sc.sigma, sc.top_parts, sc.groups, sc.lookup_map)
    if rule == 'fisher': return -2 * np.sum([normal.logsf(x) for x in v], 0)
    if rule == 'two_kinds':
        learned = [z[t] for t in z if t not in NO_LEARNING]
        fixed = [z[t] for t in z if t in NO_LEARNING]
        return (np.max(learned, 0) + np.max(fixed, 0)) / 2


RULES = ('top2', 'top1', 'top3', 'all', 'map_max', 'fisher', 'two_kinds')


def judge(sc, rules, valid, test, groups, n_halves: int = 20, seed: int = 0) -> dict:
    "Every rule's valid / cross-fitted / test image AUROC (percent), and the mirror part alone's, on one run."
    vmaps, vscores, _, vfg = sc._parts(valid.images, parts=list(sc.fusion_tasks), per_scale=True)
    tmaps, tscores, _, _ = sc._parts(test.images, parts=list(sc.fusion_tasks), per_scale=True)
    vl, tl = np.asarray(valid.labels), np.asarray(test.labels)
    full = {t: sc.norms[t] for t in vscores}   # the run's calibration (on its own data: fitted on these normals, `bench/crossfit.py`)
    allv, allt = np.ones(len(vl), bool), np.ones(len(tl), bool)
    alone = lambda norms, scores, idx: votes(sc, norms, scores, idx)[0][MIRROR]
    out = {r: dict(valid=100 * image_auroc(vl, rule_scores(r, sc, full, vscores, vmaps, allv)),
                   test=100 * image_auroc(tl, rule_scores(r, sc, full, tscores, tmaps, allt)), cross=[]) for r in (*rules, 'mirror')
           if r != 'mirror'}
    out['mirror'] = dict(valid=100 * image_auroc(vl, alone(full, vscores, allv)), test=100 * image_auroc(tl, alone(full, tscores, allt)), cross=[])
    for a in halves(groups, vl, n_halves, seed):
        b = ~a
        na = fit_norms(vscores, vmaps, vfg, a & (vl == 0))
        for r in rules: out[r]['cross'].append(image_auroc(vl[b], rule_scores(r, sc, na, vscores, vmaps, b)))
        out['mirror']['cross'].append(image_auroc(vl[b], alone(na, vscores, b)))
    for r in out: out[r]['cross'] = 100 * float(np.mean(out[r]['cross']))
    return out


def main(argv=None):
    torch.set_num_threads(1)
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('runs', nargs='+', metavar='RUN')
    ap.add_argument('--scorer', type=json.loads, default={}, help='scoring settings to calibrate each run under, as JSON (default: its own)')
    ap.add_argument('--rules', default=','.join(RULES), help=f'comma list of {RULES}; the first is the one the others are paired against')
    ap.add_argument('--halves', type=int, default=20, help='random halves of the validation patients (default 20; `bench/crossfit.py`)')
    ap.add_argument('--data', default=None, help="dataset folder (default: each run's own)")
    ap.add_argument('--out', default=None, help='also write every run\'s figures here, as JSON')
    a = ap.parse_args(argv)
    rules = a.rules.split(',')
    for r in rules: parse_rule(r)
    res = {}
    for run in a.runs:
        data = a.data or run_data(run)
        sc = run_scorer(Path(run), a.scorer, data)
        valid, test = (load_run_split(run, sc.cfg, data, s) for s in ('valid', 'test'))
        res[run] = judge(sc, rules, valid, test, patient_groups(valid.paths, valid.labels), a.halves)
        print(Path(run).name, ' '.join(f"{r}={res[run][r]['valid']:.1f}/{res[run][r]['cross']:.1f}/{res[run][r]['test']:.1f}" for r in res[run]), flush=True)
        if a.out: Path(a.out).write_text(json.dumps(dict(command=shlex.join(['python', 'bench/fusion_rules.py', *(argv if argv is not None else sys.argv[1:])]), runs=res), indent=1))
    summarise(res, rules)
    return res


def summarise(res: dict, rules) -> None:
    "Means, and each rule paired against the first rule and against the mirror part alone (SE; runs above)."
    se = lambda d: np.std(d, ddof=1) / np.sqrt(len(d)) if len(d) > 1 else float('nan')
    pair = lambda d: f'{np.mean(d):+.2f} ({se(d):.2f}; {sum(x > 0 for x in d)}/{len(d)})'
    print('| rule | valid | cross | test | vs ' + rules[0] + ': valid | cross | test | vs mirror: valid | cross | test |')
    print('|---' * 10 + '|')
    for r in [*rules, 'mirror']:
        row = [f"{np.mean([x[r][k] for x in res.values()]):.1f}" for k in ('valid', 'cross', 'test')]
        row += [pair([x[r][k] - x[rules[0]][k] for x in res.values()]) for k in ('valid', 'cross', 'test')]
        row += [pair([x[r][k] - x['mirror'][k] for x in res.values()]) for k in ('valid', 'cross', 'test')]
        print(f'| {r} | ' + ' | '.join(row) + ' |')


if __name__ == '__main__':
    main()
