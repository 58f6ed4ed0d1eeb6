"The prose quotes the defaults the code has (tools/check_quoted_defaults.py), and the check catches a stale quote."
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / 'tools'))
import check_quoted_defaults as cqd  # noqa: E402
from mtlmad.core import MTLConfig  # noqa: E402

TABLE = '''| proxy task | input -> target | its error means | default |
|---|---|---|---|
| `inpaint` | a | b | on |
| `denoise` | a | b | on |
| `geometry` | a | b | on |
| `tissue` | a | b | on |
| `pseudo_anomaly` | a | b | on |
| `jigsaw` | a | b | option (its map carried no signal) |

After the table.'''


def _bad(text): return [(q.what, q.quoted) for q in cqd.quotes(text) if not q.ok]


def test_the_prose_quotes_todays_defaults():
    found = cqd.check()
    assert [q for q in found if not q.ok] == []
    kinds = {q.what for q in found}   # the patterns still find the quotes they were written for
    assert {'steps', 'image size', 'width', 'default task count', 'tasks off by default', 'task table: tasks'} <= kinds
    assert cqd.main([]) == 0


@pytest.mark.parametrize('text, what, quoted', [
    ('The real defaults (128x128, width 32, 30 steps) take minutes.', 'steps', 30),
    ('the default schedule (1,000 steps, about 3 minutes)', 'steps', 1000),
    ('The real defaults (64x64, width 32, 420 steps) take minutes.', 'image size', 64),
    ('the default settings (128x128 images, `width=16`, the default number of steps)', 'width', 16),
    ('trained from scratch on **six proxy tasks** at once', 'default task count', 6),
    ('Scoring all four default tasks costs about 98 M', 'default task count', 4),
    ('the default tasks: every task but geometry', 'tasks off by default', 'geometry'),
    ('with one gate per task (top-1 routing)', 'top-k routing', 1),
    ("run_demo('demo_runs')  # MTLConfig(): 96 px, the default steps", 'image size', 96),
])
def test_a_stale_quote_is_caught(text, what, quoted):
    assert _bad(text) == [(what, quoted)]


def test_the_task_table():
    assert _bad(TABLE) == []
    no_tissue = ['denoise', 'geometry', 'inpaint', 'pseudo_anomaly']
    without_tissue = TABLE.replace('| `tissue` | a | b | on |\n', '')
    assert _bad(without_tissue) == [('task table: tasks', sorted(no_tissue + ['jigsaw'])),
                                    ('task table: on by default', no_tissue)]
    every = ['denoise', 'geometry', 'inpaint', 'jigsaw', 'pseudo_anomaly', 'tissue']
    assert _bad(TABLE.replace('| option (its', '| on (its')) == [('task table: on by default', every)]


def test_compared_with_the_config():
    cfg = MTLConfig(steps=30)   # a default that moved: the quote is now the stale one
    assert [(q.quoted, q.expected) for q in cqd.quotes('the defaults (300 steps)', cfg=cfg)] == [(300, 30)]


@pytest.mark.parametrize('text', [
    "longer did not help at the demo's size (1,000 steps scored lower on validation than 300)",
    'slices; 128 px, 300 steps; folds 1-3, one seed each',
    'Here we keep only the two tasks that inpaint and segment',
    'a quick run (`--quick`: 20 steps at 64 px)',
    'by default (`--from demo`) the demo dataset',
    'every one but the last',
])
def test_no_quote_where_none_is_meant(text):
    assert cqd.quotes(text) == []
