"""The notebooks as a static site (tools/build_docs.py) and their saved outputs (tools/execute_notebooks.py).

Fast checks on small notebooks written here: the output trimming, the size budget, the pages and their links. Then
the site in Debian's Chromium (Playwright, file:// URLs): it loads, its links lead to pages that exist, and its
figures decode. The same in Chromium for the site built from nbs/, once the notebooks are committed with outputs."""
import base64, io, subprocess, sys
from pathlib import Path
from urllib.parse import unquote, urlparse

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

from test_browser import CHROMIUM, CHROMIUM_ARGS

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / 'tools'))
import execute_notebooks as ex  # noqa: E402

browser = pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f'{CHROMIUM} is missing: install Debian chromium')


def png_bytes() -> bytes:
    "A small matplotlib figure as PNG."
    import matplotlib; matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(2, 1.5), dpi=50)
    ax.plot([0, 1, 2], [0, 1, 0])
    buf = io.BytesIO(); fig.savefig(buf, format='png'); plt.close(fig)
    return buf.getvalue()


def figure_output():
    return new_output('display_data', data={'image/png': base64.b64encode(png_bytes()).decode(),
                                            'text/plain': '<Figure size 100x75 with 1 Axes>'})


def write_nb(path: Path, *cells):
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(new_notebook(cells=list(cells)), path)
    return path


def build(nbs: Path, out: Path) -> str:
    r = subprocess.run([sys.executable, str(ROOT / 'tools' / 'build_docs.py'), '--nbs', str(nbs), '--out', str(out)],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    return r.stdout


@pytest.fixture(scope='module')
def site(tmp_path_factory):
    "A site built from three executed notebooks: a home page, a page with a figure, a tutorial in a subfolder."
    tmp = tmp_path_factory.mktemp('docs')
    nbs = tmp / 'nbs'
    write_nb(nbs / 'index.ipynb', new_markdown_cell('# Fixture home\n> a subtitle\n\nSee [the figure](01_figure.ipynb).'))
    hidden = new_code_cell('#| hide\nprint("hidden")', outputs=[new_output('stream', text='hidden\n')])
    shown = new_code_cell('#| export\n#| slow\nplot()', outputs=[figure_output()])
    write_nb(nbs / '01_figure.ipynb', new_code_cell('#| default_exp fig'), new_markdown_cell('# A figure'), hidden, shown)
    write_nb(nbs / 'tutorials' / '01_tut.ipynb', new_markdown_cell('# Tutorial one\n[back](../01_figure.ipynb#A-figure)'))
    return tmp / '_docs', build(nbs, tmp / '_docs')


def test_pages_titles_and_links(site):
    out, summary = site
    assert {p.relative_to(out).as_posix() for p in out.rglob('*.html')} == {
        'index.html', '01_figure.html', 'tutorials/01_tut.html'}
    page = (out / '01_figure.html').read_text()
    assert '<title>A figure - ' in page and 'data:image/png;base64,' in page
    assert 'hidden' not in page and '#|' not in page and 'default_exp' not in page and 'plot' in page
    assert 'href="01_figure.html"' in (out / 'index.html').read_text()
    assert 'href="../01_figure.html#A-figure"' in (out / 'tutorials' / '01_tut.html').read_text()
    assert '3 pages, 1 figures' in summary


def test_trim_outputs():
    "stderr and live widgets go, a figure keeps its PNG only, this machine's folders become placeholders."
    paths = ex.machine_paths(ROOT)
    cell = new_code_cell('x', outputs=[
        new_output('stream', name='stderr', text='100%|####| 10/10\n'),
        new_output('stream', name='stdout', text=f'step 1\rstep 2\nsaved {ROOT}/demo_runs/run1 and /tmp/tmpab12cd/x.png\n'),
        new_output('display_data', data={'application/vnd.jupyter.widget-view+json': {'model_id': 'ab'}, 'text/plain': 'VBox()'}),
        figure_output(),
        new_output('execute_result', data={'text/plain': '3', 'application/javascript': 'alert(1)'}, execution_count=4)])
    nb = new_notebook(cells=[cell], metadata={'widgets': {'state': {}}})
    notes = ex.trim_outputs(nb, paths, 'x.ipynb')
    outs = nb.cells[0].outputs
    assert [o.output_type for o in outs] == ['stream', 'display_data', 'execute_result']
    assert outs[0].text == 'step 2\nsaved <repo>/demo_runs/run1 and <tmp>/x.png\n'
    assert list(outs[1].data) == ['image/png'] and list(outs[2].data) == ['text/plain']
    assert 'widgets' not in nb.metadata and len(notes) == 1 and 'x.ipynb, cell 0' in notes[0]


def test_flags_choose_the_cells():
    "The cells nbdev_test would run: not `eval: false`, not a skipped flag, `slow` run."
    assert ex.runs(new_code_cell('#| slow\n1'), {'cuda'})
    assert not ex.runs(new_code_cell('#| eval: false\n1'), set())
    assert not ex.runs(new_code_cell('#| export\n#| cuda\n1'), {'cuda'})
    assert not ex.runs(new_code_cell('from nbdev import nbdev_export\nnbdev_export()'), set())
    assert ex.directives(new_code_cell('#| export\n#| eval:false\nx = 1  #| not a directive')) == {'export': '', 'eval': 'false'}


def test_size_budget(tmp_path, monkeypatch):
    nbs = tmp_path / 'nbs'
    cell = new_code_cell('fig', outputs=[new_output('display_data', data={'image/png': 'A' * 2_000_000})])
    write_nb(nbs / '02_big.ipynb', cell)
    write_nb(nbs / '01_small.ipynb', new_markdown_cell('# small'))
    r = subprocess.run([sys.executable, str(ROOT / 'tools' / 'execute_notebooks.py'), '--check-budget', '--nbs', str(nbs)],
                       capture_output=True, text=True)
    assert r.returncode == 1 and 'nbs/02_big.ipynb is 2.00 MB' in r.stderr and '01_small' not in r.stderr
    assert 'cell 0: 2000 kB' in r.stderr
    monkeypatch.setattr(ex, 'MAX_NOTEBOOK_BYTES', 3_000_000)
    monkeypatch.setattr(ex, 'MAX_TOTAL_BYTES', 1_000_000)
    assert len(errors := ex.check_budget(nbs)) == 1 and 'total 2.00 MB' in errors[0] and '02_big.ipynb' in errors[0]


def test_committed_notebooks_within_budget():
    assert ex.check_budget(ROOT / 'nbs') == []


def decoded_figures(page, url: str) -> list:
    "Open `url`; the natural widths of its images, once they have loaded."
    page.goto(url)
    page.wait_for_load_state('load')
    return page.evaluate("""() => Promise.all([...document.images].map(i => i.decode().then(() => i.naturalWidth,
                                                                                         () => 0)))""")


def check_in_chromium(out: Path, figure_page: Path):
    "Home page and `figure_page` in Chromium: titled, every sidebar link to a page that exists, figures decoded."
    sync_api = pytest.importorskip('playwright.sync_api', reason='the playwright package is not installed')
    with sync_api.sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            page = b.new_page()
            page.set_default_timeout(30_000)
            page.goto((out / 'index.html').as_uri())
            assert page.title()
            hrefs = page.eval_on_selector_all('nav a', 'as => as.map(a => a.href)')
            assert len(hrefs) == len(list(out.rglob('*.html'))) + 1  # every page, and the site's name
            for h in hrefs: assert Path(unquote(urlparse(h).path)).is_file(), h
            widths = decoded_figures(page, figure_page.as_uri())
            assert page.title() and widths and all(w > 0 for w in widths), widths
            return widths
        finally:
            b.close()


@browser
def test_site_in_chromium(site):
    out, _ = site
    assert len(check_in_chromium(out, out / '01_figure.html')) == 1


def notebooks_with_figures() -> dict:
    "{page: number of PNG outputs in shown cells} for the notebooks under nbs/ saved with figures."
    found = {}
    for p in (ROOT / 'nbs').rglob('*.ipynb'):
        cells = [c for c in nbformat.read(p, as_version=4).cells if not {'hide', 'exporti'} & ex.directives(c).keys()]
        n = sum('image/png' in o.get('data', {}) for c in cells for o in c.get('outputs', []))
        if n: found[p.relative_to(ROOT / 'nbs').with_suffix('.html').as_posix()] = n
    return found


@browser
@pytest.mark.skipif(not notebooks_with_figures(),
                    reason='the notebooks under nbs/ are committed without outputs yet (run `make execute`)')
def test_real_site_has_figures(tmp_path):
    figures = notebooks_with_figures()
    summary = build(ROOT / 'nbs', tmp_path / '_docs')
    on_page = {line.split()[0]: int(line.split()[1]) for line in summary.splitlines() if ' figures ' in line}
    assert {page: on_page.get(page) for page in figures} == figures
    best = max(figures, key=figures.get)
    assert len(check_in_chromium(tmp_path / '_docs', tmp_path / '_docs' / best)) == figures[best]
