"""The notebooks as a static site (tools/build_docs.py) and their saved outputs (tools/execute_notebooks.py).

Fast checks on small notebooks written here: the output trimming, the size budget, the pages and their links, the
math, callouts and API page in the HTML. Then the site in Debian's Chromium (Playwright, file:// URLs): it loads, its
links lead to pages that exist, its figures decode, its math is MathML with a size, a callout is a box, the search box
finds a page by a heading, and the previous / next links walk the sidebar's order. The same in Chromium for the site
built from nbs/, once the notebooks are committed with outputs."""
import base64, html, io, re, subprocess, sys
from contextlib import contextmanager
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


def build(nbs: Path, out: Path, *args) -> str:
    r = subprocess.run([sys.executable, str(ROOT / 'tools' / 'build_docs.py'), '--nbs', str(nbs), '--out', str(out),
                        *args], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    return r.stdout


MATH = ('# Pixel metrics\nA pixel counts when $s_p \\ge t$; the overlap of the regions $r$ is\n\n'
        '$$\\mathrm{PRO}(t)=\\frac1{R}\\sum_{\\text{regions } r}\\frac{|\\{p\\in r: s_p\\ge t\\}|}{|r|}$$\n\n'
        '## Per-region overlap\nText.')
CALLOUTS = (':::{.callout-note}\n## A short schedule\nSo that it runs on a **laptop**.\n:::\n\nBetween.\n\n'
            ':::{.callout-warning title="Careful"}\nNo heading in this one.\n:::')


@pytest.fixture(scope='module')
def site(tmp_path_factory):
    """A site built from four executed notebooks (a home page, a page with a figure, a page with math that documents
    `mtlmad.metrics`, a tutorial with callouts in a subfolder) and the API page of `mtlmad.metrics`."""
    tmp = tmp_path_factory.mktemp('docs')
    nbs = tmp / 'nbs'
    home = '# Fixture home\n> a subtitle\n\nSee [the figure](01_figure.ipynb).\n\n## Getting started\nText.'
    write_nb(nbs / 'index.ipynb', new_markdown_cell(home))
    hidden = new_code_cell('#| hide\nprint("hidden")', outputs=[new_output('stream', text='hidden\n')])
    shown = new_code_cell('#| export\n#| slow\nplot()', outputs=[figure_output()])
    write_nb(nbs / '01_figure.ipynb', new_code_cell('#| default_exp fig'), new_markdown_cell('# A figure'), hidden, shown)
    write_nb(nbs / '02_metrics.ipynb', new_code_cell('#| default_exp metrics'), new_markdown_cell(MATH))
    tutorial = new_markdown_cell('# Tutorial one\n[back](../01_figure.ipynb#A-figure)')
    write_nb(nbs / 'tutorials' / '01_tut.ipynb', tutorial, new_markdown_cell(CALLOUTS))
    return tmp / '_docs', build(nbs, tmp / '_docs', '--lib', 'mtlmad.metrics')


def text_of(page_html: str) -> str:
    "The page's main text, tags (and the MathML inside them) out."
    main = page_html.split('<main>', 1)[1]
    return html.unescape(re.sub(r'<math.*?</math>|<[^>]+>', '', main, flags=re.S))


def test_pages_titles_and_links(site):
    out, summary = site
    assert {p.relative_to(out).as_posix() for p in out.rglob('*.html')} == {
        'index.html', '01_figure.html', '02_metrics.html', 'tutorials/01_tut.html', 'api.html'}
    page = (out / '01_figure.html').read_text()
    assert '<title>A figure - ' in page and 'data:image/png;base64,' in page
    assert 'hidden' not in page and '#|' not in page and 'default_exp' not in page and 'plot' in page
    assert 'href="01_figure.html"' in (out / 'index.html').read_text()
    assert 'href="../01_figure.html#A-figure"' in (out / 'tutorials' / '01_tut.html').read_text()
    assert '5 pages, 1 figures' in summary


def test_math_callouts_api_in_html(site):
    "LaTeX became MathML, callouts boxes, and the API page shows `show_doc`'s signature of each exported function."
    out, _ = site
    page = (out / '02_metrics.html').read_text()
    assert page.count('<math') == 3 and page.count('display="block"') == 1 and '$' not in text_of(page)
    assert '<mfrac>' in page and '<h2 id="Per-region-overlap">' in page
    tut = (out / 'tutorials' / '01_tut.html').read_text()
    assert ':::' not in tut and '<div class="callout-title">A short schedule</div>' in tut
    assert re.search(r'<div class="callout callout-note">.*<strong>laptop</strong>.*</div>', tut, re.S)
    assert '<div class="callout callout-warning"><div class="callout-title">Careful</div>' in tut
    api = (out / 'api.html').read_text()
    m = re.search(r'<h3 id="mtlmad.metrics.pixel_auroc">.*?</h3>(.*?)<h3', api, re.S)
    sig = r'def pixel_auroc\(\s+masks, # \(N,H,W\) ground-truth masks.*\)->float:'
    assert m and re.search(sig, text_of('<main>' + m[1]), re.S)
    assert 'Pixel-level AUROC' in m[1] and 'href="02_metrics.html"' in api
    assert '<a class="next" href="../api.html">' in tut and '<a class="prev" href="../02_metrics.html">' in tut


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


@contextmanager
def chromium_page():
    "A page of headless Debian Chromium."
    sync_api = pytest.importorskip('playwright.sync_api', reason='the playwright package is not installed')
    with sync_api.sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            page = b.new_page()
            page.set_default_timeout(30_000)
            yield page
        finally:
            b.close()


def check_in_chromium(page, out: Path, figure_page: Path):
    "Home page and `figure_page`: titled, every sidebar link to a page that exists, figures decoded."
    page.goto((out / 'index.html').as_uri())
    assert page.title()
    hrefs = page.eval_on_selector_all('nav a', 'as => as.map(a => a.href)')
    assert len(hrefs) == len(list(out.rglob('*.html'))) + 1  # every page, and the site's name
    for h in hrefs: assert Path(unquote(urlparse(h).path)).is_file(), h
    widths = decoded_figures(page, figure_page.as_uri())
    assert page.title() and widths and all(w > 0 for w in widths), widths
    return widths


def walk_pager(page, out: Path) -> list:
    "Follow the `next` links from the home page to the last page, then one `previous`: the pages visited."
    page.goto((out / 'index.html').as_uri())
    sidebar = page.eval_on_selector_all('nav ul:not(#search-results) a', 'as => as.map(a => a.href)')
    seen = [page.url]
    assert not page.locator('.pager a.prev').count()
    while page.locator('.pager a.next').count():
        with page.expect_navigation():  # to the new page's `load`: a long page has its pager at the end
            page.click('.pager a.next')
        seen.append(page.url)
    assert seen == sidebar and all(Path(unquote(urlparse(u).path)).is_file() for u in seen)
    with page.expect_navigation():
        page.click('.pager a.prev')
    assert page.url == seen[-2]
    return seen


def search(page, query: str) -> list:
    "Type `query` in the search box: the links it lists."
    page.fill('#search', query)
    return page.eval_on_selector_all('#search-results a', 'as => as.map(a => a.href)')


@browser
def test_site_in_chromium(site):
    out, _ = site
    with chromium_page() as page:
        assert len(check_in_chromium(page, out, out / '01_figure.html')) == 1
        assert len(walk_pager(page, out)) == 5

        page.goto((out / '02_metrics.html').as_uri())  # math: MathML, laid out by the browser's MathML engine
        maths = page.eval_on_selector_all('math', """ms => ms.map(m => [getComputedStyle(m).display,
                                                                       m.getBoundingClientRect().height])""")
        assert [d for d, _ in maths] == ['math', 'math', 'block math'], maths  # 'math' is CSS's inline math
        assert all(h > 0 for _, h in maths) and maths[2][1] > 2 * maths[0][1]  # the fraction stands taller
        assert '$' not in page.inner_text('main')

        page.goto((out / 'tutorials' / '01_tut.html').as_uri())  # a callout is a box with its title
        box = page.locator('.callout-note')
        assert box.locator('.callout-title').inner_text() == 'A short schedule' and 'laptop' in box.inner_text()
        style = box.evaluate('b => [getComputedStyle(b).borderLeftWidth, getComputedStyle(b).backgroundColor]')
        assert style[0] != '0px' and style[1] != 'rgba(0, 0, 0, 0)', style
        assert page.locator('.callout-warning .callout-title').inner_text() == 'Careful'

        hits = search(page, 'getting started')  # from a page in a subfolder: the links go from the site's root
        assert hits[0] == (out / 'index.html').as_uri() + '#Getting-started', hits
        assert search(page, 'pixel_auroc')[0].endswith('/api.html#mtlmad.metrics.pixel_auroc')
        assert search(page, 'zzzz') == [] and page.inner_text('#search-results') == 'no match'
        search(page, 'tutorial')
        page.press('#search', 'Enter')
        page.wait_for_url('**/tutorials/01_tut.html')

        page.goto((out / 'api.html').as_uri())  # the API page: each exported function with its signature
        sig = page.locator('[id="mtlmad.metrics.pixel_auroc"] + div').inner_text()
        assert sig.startswith('def pixel_auroc(') and '# (N,H,W) ground-truth masks' in sig, sig


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
    best, out = max(figures, key=figures.get), tmp_path / '_docs'
    with chromium_page() as page:
        assert len(check_in_chromium(page, out, out / best)) == figures[best]
        walk_pager(page, out)
        page.goto((out / '07_metrics.html').as_uri())
        assert page.locator('math[display="block"]').count() and '$$' not in page.inner_text('main')
