"""The anomaly explorer in a real browser: JupyterLab + Debian's Chromium driven by Playwright.

Starts JupyterLab on 127.0.0.1 (free port, random token) in a temporary folder holding a copy of
tests/browser/explorer.ipynb, runs all its cells from the Run menu, waits for the explorer, then moves the
threshold slider with the keyboard and clicks 'next', checking each time that the panel image changed; then checks
that the upload button shows its whole label, that a new sort and a task toggle keep the image on screen, and that
the routing picture is drawn large. Leaves a screenshot of the widget in test-artifacts/explorer.png (and of the page in explorer_page.png). Skipped only where /usr/bin/chromium is missing."""
import base64
import contextlib
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
HERE = Path(__file__).resolve().parent / 'browser'
CHROMIUM = '/usr/bin/chromium'
CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
                 '--disable-component-update', '--disable-sync', '--disable-quic', '--no-first-run']
SHOT = ROOT / 'test-artifacts' / 'explorer.png'

pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists(),
                                reason=f'{CHROMIUM} is missing: install Debian chromium (apt-get install chromium), as .ci/run does')

# No network from the server: no news feed, no update check, no language-server scan.
SERVER_CONFIG = """c.LabApp.news_url = None
c.LabApp.check_for_updates_class = 'jupyterlab.NeverCheckForUpdate'
c.LanguageServerManager.autodetect = False
c.LabApp.extension_manager = 'readonly'
c.ServerApp.open_browser = False
c.ServerApp.allow_root = True
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def _start_lab(tmp: Path, notebook: str = 'explorer.ipynb'):
    "JupyterLab serving a copy of `notebook` (from tests/browser, with the stand-ins); returns (process, url, log path)."
    work, cfg = tmp / 'lab', tmp / 'jupyter'
    work.mkdir(); cfg.mkdir()
    for f in (notebook, 'explorer_standins.py'): shutil.copy(HERE / f, work / f)
    (cfg / 'jupyter_server_config.py').write_text(SERVER_CONFIG)
    news = tmp / 'settings' / '@jupyterlab' / 'apputils-extension' / 'notification.jupyterlab-settings'
    news.parent.mkdir(parents=True); news.write_text('{"fetchNews": "false"}')  # no news toast over the page
    port, token = _free_port(), secrets.token_hex(16)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get('PYTHONPATH', '')]),
               JUPYTER_CONFIG_DIR=str(cfg), JUPYTER_RUNTIME_DIR=str(tmp / 'runtime'), IPYTHONDIR=str(tmp / 'ipython'),
               JUPYTERLAB_SETTINGS_DIR=str(tmp / 'settings'), JUPYTERLAB_WORKSPACES_DIR=str(tmp / 'workspaces'),
               MPLBACKEND='Agg', OMP_NUM_THREADS='1')
    log = tmp / 'lab.log'
    proc = subprocess.Popen([sys.executable, '-m', 'jupyterlab', '--no-browser', '--ServerApp.ip=127.0.0.1',
                             f'--ServerApp.port={port}', '--ServerApp.port_retries=0', f'--IdentityProvider.token={token}',
                             f'--ServerApp.root_dir={work}'],
                            cwd=work, env=env, stdout=log.open('wb'), stderr=subprocess.STDOUT, start_new_session=True)
    base = f'http://127.0.0.1:{port}'
    deadline = time.monotonic() + 40
    while time.monotonic() < deadline:
        if proc.poll() is not None: break
        try:
            with urllib.request.urlopen(f'{base}/api/status?token={token}', timeout=2) as r:
                if r.status == 200: return proc, f'{base}/lab/tree/{notebook}?token={token}', log
        except OSError: time.sleep(0.3)
    _stop(proc)
    raise RuntimeError(f'JupyterLab did not start:\n{log.read_text()[-3000:]}')


def _stop(proc):
    "Stop the server we started (and the kernels it started, in its process group)."
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try: proc.wait(10)
        except subprocess.TimeoutExpired: pass
    try: os.killpg(proc.pid, signal.SIGKILL)  # the group we created with start_new_session; leftovers only
    except ProcessLookupError: pass


def _png(page) -> tuple[str, bytes]:
    "The panel image's src and the PNG bytes behind it."
    img = page.locator('img.mtlmad-panels')
    src = img.get_attribute('src')
    b64 = page.evaluate("""async (src) => { const b = new Uint8Array(await (await fetch(src)).arrayBuffer());
        let s = ''; for (const x of b) s += String.fromCharCode(x); return btoa(s); }""", src)
    return src, base64.b64decode(b64)


def _wait_change(page, old_src, timeout=20):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        src = page.locator('img.mtlmad-panels').get_attribute('src')
        if src and src != old_src: return _png(page)
        page.wait_for_timeout(100)
    raise AssertionError('the explorer image did not change')


def _prompts(page) -> list[str]:
    return [t.strip() for t in page.locator('.jp-CodeCell .jp-InputPrompt').all_inner_texts()]


def _run_all(page, tries=4):
    "Run > Run All Cells, again if a click made while the kernel was still connecting was lost."
    for _ in range(tries):
        page.locator('.lm-MenuBar-itemLabel', has_text='Run').first.click()
        page.locator('li.lm-Menu-item[data-command="runmenu:run-all"]').click()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if any(re.search(r'\[(\*|\d+)\]', p) for p in _prompts(page)): return
            page.wait_for_timeout(200)
    raise AssertionError('Run All Cells did not start the cells')


def _wait_all_done(page, timeout=60):
    "Wait until every code cell has run (a number in its prompt, none queued)."
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ps = _prompts(page)
        if ps and all(re.fullmatch(r'\[\d+\]:?', p) for p in ps): return
        page.wait_for_timeout(200)
    raise AssertionError(f'cells still running or not run: {_prompts(page)}')


@contextlib.contextmanager
def lab_page(tmp: Path, notebook: str = 'explorer.ipynb', height: int = 1000):
    "A Chromium page on `notebook` in a fresh JupyterLab, all its cells started; a failure carries the server's log."
    sync_api = pytest.importorskip('playwright.sync_api', reason='the playwright package is not installed (pip install playwright)')
    proc, url, log = _start_lab(tmp, notebook)
    try:
        with sync_api.sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
            try:
                page = browser.new_page(viewport={'width': 1400, 'height': height})
                page.set_default_timeout(45_000)
                page.goto(url)
                page.wait_for_selector('.jp-NotebookPanel .jp-Cell .jp-InputArea')
                page.wait_for_selector('.jp-Notebook-ExecutionIndicator[data-status="idle"]')
                _run_all(page)
                yield page
            finally:
                browser.close()
    except Exception as e:
        raise AssertionError(f'{e}\n--- JupyterLab log (tail) ---\n{log.read_text()[-3000:]}') from e
    finally:
        _stop(proc)


def test_explorer_in_jupyterlab(tmp_path):
    t0 = time.monotonic()
    with lab_page(tmp_path, height=1000) as page:
        page.wait_for_selector('img.mtlmad-panels[src]', timeout=60_000)
        _wait_all_done(page)
        src0, png0 = _png(page)
        assert png0[:8] == b'\x89PNG\r\n\x1a\n' and len(png0) > 1000
        assert page.get_by_text('model on').first.is_visible()

        readout = page.locator('.mtlmad-threshold .widget-readout')
        before = readout.inner_text()
        handle = page.locator('.mtlmad-threshold .noUi-handle')
        handle.focus(); page.keyboard.press('Home')  # lowest threshold: most of the map outlined
        src1, png1 = _wait_change(page, src0)
        assert png1 != png0 and readout.inner_text() != before

        page.locator('button.mtlmad-next').click()
        src2, png2 = _wait_change(page, src1)
        assert png2 != png1 and src2 != src1
        assert page.locator('.widget-slider:has-text("image") .widget-readout').first.inner_text().strip() == '1'

        # the upload button shows its whole label
        width, room = page.evaluate("() => { const b = document.querySelector('.mtlmad-upload'); return [b.scrollWidth, b.clientWidth]; }")
        assert width <= room, f'the upload button cuts its label ({width} px of text in {room} px)'
        # a new sort and a task toggle keep the image on screen (the slider moves to its place in the new order)
        name = lambda: page.locator('.mtlmad-table b').first.inner_text()
        shown = name()
        page.locator('.widget-dropdown:has-text("sort") select').select_option(label='score ↓')
        page.wait_for_timeout(500)
        assert name() == shown
        page.locator('button.widget-toggle-button', has_text='bright').click()
        src3, _ = _wait_change(page, src2)  # the fusion changed
        assert name() == shown
        routing = page.locator('img.mtlmad-routing').bounding_box()
        assert routing['width'] >= 300 and routing['height'] >= 120, routing  # readable, with axes

        page.locator('button.widget-toggle-button', has_text='bright').click()  # back on, for the picture
        _wait_change(page, src3)
        SHOT.parent.mkdir(exist_ok=True)
        page.locator('.jp-OutputArea-output').last.screenshot(path=str(SHOT))  # the whole widget, routing included
        page.screenshot(path=str(SHOT.with_name('explorer_page.png')), full_page=True)
    assert SHOT.stat().st_size > 10_000
    assert time.monotonic() - t0 < 120
