"DistributedDataParallel on the CPU (gloo): 2 processes under torchrun follow the single-process run with the same global batch."
import os, socket, subprocess, sys, textwrap
from pathlib import Path

import pytest
import torch

from mtlmad.core import MTLConfig

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = textwrap.dedent("""
    import sys, torch
    torch.set_num_threads(1)
    from mtlmad.core import MTLConfig
    from mtlmad.train import fit
    from mtlmad.distributed import init_distributed, dist_info
    init_distributed('cpu')
    x = torch.rand(int(sys.argv[3]), 1, 32, 32, generator=torch.Generator().manual_seed(1))
    fit(MTLConfig.from_json(sys.argv[2]), x, out_dir=sys.argv[1], progress=False, device='cpu')
    print('rank', dist_info()[0], 'of', dist_info()[1], 'done')
    if torch.distributed.is_initialized(): torch.distributed.destroy_process_group()   # gloo's threads end before exit, not in it
""")
# losses that are means over images split exactly across processes; only the summation order differs
EXACT = MTLConfig(image_size=32, width=4, n_experts=2, epochs=2, batch_size=8, warmup_steps=2, tasks=('geometry', 'jigsaw', 'tissue'))
# all five tasks and top-k routing: the Dice, weighted-L1 and balance terms are computed per slice
ALL = EXACT.replace(tasks=('inpaint', 'jigsaw', 'geometry', 'tissue', 'pseudo_anomaly'), top_k=1)


def _free_port():
    with socket.socket() as s: s.bind(('127.0.0.1', 0)); return s.getsockname()[1]


def _run(args, timeout=120):
    env = {**os.environ, 'OMP_NUM_THREADS': '1', 'PYTHONPATH': str(ROOT)}
    for k in ('RANK', 'WORLD_SIZE', 'LOCAL_RANK', 'MASTER_ADDR', 'MASTER_PORT'): env.pop(k, None)
    p = subprocess.run(args, env=env, capture_output=True, text=True, timeout=timeout)
    assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-4000:]
    return p


def torchrun(n): return [sys.executable, '-m', 'torch.distributed.run', f'--nproc_per_node={n}', '--nnodes=1',
                         '--master_addr=127.0.0.1', f'--master_port={_free_port()}']


def _weights(run): return torch.load(Path(run) / 'model.pt', weights_only=True)['model']


def _max_diff(a, b): return max((a[k].float() - b[k].float()).abs().max().item() for k in a)


@pytest.mark.parametrize('cfg,n_images,tol', [(EXACT, 16, 1e-4), (ALL, 14, 5e-3)], ids=['mean-losses', 'all-tasks-topk'])
def test_two_processes_match_one(tmp_path, cfg, n_images, tol):
    (tmp_path / 'ddp.py').write_text(SCRIPT)
    one, two = tmp_path / 'one', tmp_path / 'two'
    _run([sys.executable, str(tmp_path / 'ddp.py'), str(one), cfg.to_json(), str(n_images)])
    p = _run(torchrun(2) + [str(tmp_path / 'ddp.py'), str(two), cfg.to_json(), str(n_images)])
    assert 'rank 1 of 2 done' in p.stdout and 'rank 0 of 2 done' in p.stdout
    a, b = _weights(one), _weights(two)
    d = _max_diff(a, b)
    print(f'\n{cfg.tasks} top_k={cfg.top_k}, {n_images} images (batch {cfg.batch_size}): 2 processes vs 1, '
          f'max |weight difference| = {d:.2e} (tolerance {tol})')
    assert d < tol
    h1 = torch.load(one / 'model.pt', weights_only=True)['history']['train']
    h2 = torch.load(two / 'model.pt', weights_only=True)['history']['train']
    assert len(h1) == len(h2) and abs(h1[-1]['total'] - h2[-1]['total']) < 1e-3 * max(1, abs(h1[-1]['total']))


def test_cli_train_under_torchrun(tmp_path):
    sys.path.insert(0, str(ROOT / 'tests'))
    from fixtures import make_bmad
    data = make_bmad(tmp_path, 'Chest', n_train=12, n_valid=(2, 2), n_test=(2, 2))
    opts = ['train', '--data', str(data), '--epochs', '1', '--image-size', '32', '--width', '4', '--experts', '2',
            '--batch-size', '4', '--tasks', 'geometry,jigsaw', '--device', 'cpu']
    _run([sys.executable, '-m', 'mtlmad.cli', *opts, '--out', str(tmp_path / 'one')])
    _run(torchrun(2) + ['-m', 'mtlmad.cli', *opts, '--out', str(tmp_path / 'two')])
    d = _max_diff(_weights(tmp_path / 'one'), _weights(tmp_path / 'two'))
    print(f'\nmtlmad train, 2 processes vs 1: max |weight difference| = {d:.2e}')
    assert d < 1e-4 and (tmp_path / 'two' / 'run.json').is_file()


def test_run_record_is_never_half_written(tmp_path):
    "Under torchrun every process reads run.json while rank 0 rewrites it: a reader sees the old record or the new, whole."
    import threading
    from mtlmad.checkpoint import read_run_record, update_run_record
    update_run_record(tmp_path, step=0, pad='x' * 200_000)
    done, seen = threading.Event(), []
    def writer():
        for i in range(1, 150): update_run_record(tmp_path, step=i, pad='x' * 200_000)
        done.set()
    t = threading.Thread(target=writer); t.start()
    while not done.is_set(): seen.append(read_run_record(tmp_path)['step'])   # raises on a half-written file
    t.join()
    assert read_run_record(tmp_path)['step'] == 149 and seen == sorted(seen)
