#!/usr/bin/env bash
# A quality sweep on one GPU machine (many cores): the default model trained on every LGG patient fold and/or every
# demo fold, 3 seeds each, then each model scored again several ways (bench/ablation.md says which and why).
#
#   ONLY=lgg|demo|all bash bench/gpu_sweep.sh LGG_FOLDS OUT [DEADLINE_S] [WORKERS]
#
# LGG_FOLDS holds fold0..fold4 (`mtlmad make-data --from lgg KAGGLE_3M LGG_FOLDS/foldK --fold K`); the demo's four
# splits are built here (`bench/ablate.py`'s `fold_split`). Every figure goes to OUT/sweep.jsonl (rows as
# bench/ablate.py logs them, with "device": "cuda"), the trained run folders to OUT/runs.tgz.* (pieces of 15 MB).
# ONLY=lgg gives the machine to LGG's 15 trainings alone: with the demo's 12 beside them (27 at once on 16 cores)
# none of LGG's finished inside 8 minutes (mtlmad 0.2.11).
# Rescorings (after each training, in this order; a job cut off at the deadline keeps the rows it logged):
#   G_lf01  lookup part both sides, its own floor 0.1 (0.2.12's `lookup_floor`), with leave-one-part-out rows
#   G_lf05 / G_lf02 / G_lf05w  the same at floor 0.05 / 0.2 / 0.5 (0.5: `floor`'s, the lookup part of 0.2.11)
#   G_bf01  the lookup part brighter only, floor 0.1
# The 0.2.11 rows G_int2 / G_int1 / G_bright2 were scored by this script at git c4e074f (its own jobs_for).
set -u
LGG=$1; OUT=$2; DEADLINE=${3:-480}; WORKERS=${4:-20}; ONLY=${ONLY:-all}
W=${TMPDIR:-/tmp}/gpu_sweep; R=$W/runs; J=$W/logs; D=$W/demo
mkdir -p "$R" "$J" "$D" "$OUT"
DEV=${DEVICE:-cuda}; PY=${PYTHON:-python3}   # DEVICE=cpu EXTRA="--set steps=5" tries the script out on a CPU
B="$PY bench/ablate.py --device $DEV"
if [ "$ONLY" != lgg ]; then
  for k in 0 1 2 3; do
    name=mtlmad_demo_brain$([ $k = 0 ] || echo _fold$k)
    $PY -c "import sys; sys.path.insert(0, 'bench'); from ablate import fold_split; from mtlmad.data.brain import make_demo_data; make_demo_data('$D/$name', valid_ungood=3, overwrite=True, split=fold_split($k))" &
  done
  wait
fi
resc() {  # run, data, log, name, scoring JSON, extra flags: one rescoring
  echo "&& $B --rescore $1 --data $2 --name $4 --scorer '$5' ${6:-} --log $3"
}
jobs_for() {  # data folder, runs folder, seed, tag: one job line
  local data=$1 runs=$2 s=$3 tag=$4 run=$2/G_base_s$3 log=$J/$4_s$3.jsonl
  echo "$B --name G_base --data $data --seeds $s --runs $runs --log $log ${EXTRA:-}" \
       "$(resc $run $data $log G_lf01 '{"lookup": "both", "lookup_floor": 0.1}' '--loto --singles')" \
       "$(resc $run $data $log G_lf05 '{"lookup": "both", "lookup_floor": 0.05}')" \
       "$(resc $run $data $log G_lf02 '{"lookup": "both", "lookup_floor": 0.2}')" \
       "$(resc $run $data $log G_bf01 '{"lookup": "brighter", "lookup_floor": 0.1}')" \
       "$(resc $run $data $log G_lf05w '{"lookup": "both", "lookup_floor": 0.5}')"
}
{
  [ "$ONLY" = demo ] || for f in 0 1 2 3 4; do for s in 0 1 2; do jobs_for "$LGG/fold$f" "$R/lgg$f" $s lgg$f; done; done
  [ "$ONLY" = lgg ] || for k in 0 1 2 3; do name=mtlmad_demo_brain$([ $k = 0 ] || echo _fold$k); for s in 0 1 2; do jobs_for "$D/$name" "$R/demo$k" $s demo$k; done; done
} > "$W/jobs.txt"
$PY bench/sweep_parallel.py "$W/jobs.txt" --workers "$WORKERS" --deadline "$DEADLINE" --logs "$J" --collect "$OUT/sweep.jsonl"
tail -n 3 "$J"/job_0.out
# the weights without their calibration (13 MB of per-location reference on LGG): rescoring calibrates again
$PY -c "import sys, torch; from pathlib import Path
for p in Path(sys.argv[1]).rglob('model.pt'):
    d = torch.load(p, weights_only=False); d['norm'] = {}; torch.save(d, p.with_name('weights.pt'))" "$R"
(cd "$W" && find runs -name weights.pt -o -name config.json -o -name run.json -o -name history.json | tar czf - -T - | split -b 15M - "$OUT/runs.tgz.")
ls -la "$OUT"
