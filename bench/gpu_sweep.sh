#!/usr/bin/env bash
# A quality sweep on one GPU machine (many cores): the default model trained on every LGG patient fold and every demo
# fold, 3 seeds each, then each model scored again several ways (bench/ablation.md says which and why).
#
#   bash bench/gpu_sweep.sh LGG_FOLDS OUT [DEADLINE_S] [WORKERS]
#
# LGG_FOLDS holds fold0..fold4 (`mtlmad make-data --from lgg KAGGLE_3M LGG_FOLDS/foldK --fold K`); the demo's four
# splits are built here (`bench/ablate.py`'s `fold_split`). Every figure goes to OUT/sweep.jsonl (rows as
# bench/ablate.py logs them, with "device": "cuda"), the trained run folders to OUT/runs.tgz.* (pieces of 15 MB).
# The logged G_int2 / G_int1 rows were scored by the prototype of `ScoringConfig.lookup` (git 2c32372,
# bench/proto_intensity.py, its part named `intensity`); the option scores the same, figure for figure.
set -u
LGG=$1; OUT=$2; DEADLINE=${3:-480}; WORKERS=${4:-20}
W=${TMPDIR:-/tmp}/gpu_sweep; R=$W/runs; J=$W/logs; D=$W/demo
mkdir -p "$R" "$J" "$D" "$OUT"
DEV=${DEVICE:-cuda}; PY=${PYTHON:-python3}   # DEVICE=cpu EXTRA="--set steps=5" tries the script out on a CPU
B="$PY bench/ablate.py --device $DEV"
for k in 0 1 2 3; do
  name=mtlmad_demo_brain$([ $k = 0 ] || echo _fold$k)
  $PY -c "import sys; sys.path.insert(0, 'bench'); from ablate import fold_split; from mtlmad.data.brain import make_demo_data; make_demo_data('$D/$name', valid_ungood=3, overwrite=True, split=fold_split($k))" &
done
wait
jobs_for() {  # data folder, runs folder, seed, tag: one job line
  local data=$1 runs=$2 s=$3 tag=$4 run=$2/G_base_s$3 log=$J/$4_s$3.jsonl
  echo "$B --name G_base --data $data --seeds $s --runs $runs --log $log ${EXTRA:-}" \
       "&& $B --rescore $run --data $data --name G_int2 --scorer '{\"lookup\": \"both\"}' --loto --singles --log $log" \
       "&& $B --rescore $run --data $data --name G_bright2 --scorer '{\"brighter\": [\"inpaint\", \"denoise\"]}' --log $log" \
       "&& $B --rescore $run --data $data --name G_int1 --scorer '{\"lookup\": \"brighter\"}' --log $log" \
       "&& $B --rescore $run --data $data --name G_base --loto --singles --log $J/$4_s$3_loto.jsonl"
}
{
  for f in 0 1 2 3 4; do for s in 0 1 2; do jobs_for "$LGG/fold$f" "$R/lgg$f" $s lgg$f; done; done
  for k in 0 1 2 3; do name=mtlmad_demo_brain$([ $k = 0 ] || echo _fold$k); for s in 0 1 2; do jobs_for "$D/$name" "$R/demo$k" $s demo$k; done; done
} > "$W/jobs.txt"
$PY bench/sweep_parallel.py "$W/jobs.txt" --workers "$WORKERS" --deadline "$DEADLINE" --logs "$J" --collect "$OUT/sweep.jsonl"
tail -n 3 "$J"/job_0.out "$J"/job_15.out
# the weights without their calibration (13 MB of per-location reference on LGG): rescoring calibrates again
$PY -c "import sys, torch; from pathlib import Path
for p in Path(sys.argv[1]).rglob('model.pt'):
    d = torch.load(p, weights_only=False); d['norm'] = {}; torch.save(d, p.with_name('weights.pt'))" "$R"
(cd "$W" && find runs -name weights.pt -o -name config.json -o -name run.json -o -name history.json | tar czf - -T - | split -b 15M - "$OUT/runs.tgz.")
ls -la "$OUT"
