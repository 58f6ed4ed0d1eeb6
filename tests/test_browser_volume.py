"""The volume explorer in a real browser: JupyterLab + Debian's Chromium driven by Playwright.

Same harness as tests/test_browser.py: JupyterLab on 127.0.0.1 (free port, random token) in a temporary folder
holding tests/browser/volume_explorer.ipynb, all cells run from the Run menu. Then 'next' moves one slice (the panels,
the orthogonal views and the slice readout change) and the threshold slider moves with the keyboard. Leaves a
screenshot in test-artifacts/volume_explorer.png. Skipped where /usr/bin/chromium or nibabel is missing."""
import time
from pathlib import Path

import pytest

from test_browser import CHROMIUM, _wait_all_done, lab_page

ROOT = Path(__file__).resolve().parents[1]
SHOT = ROOT / 'test-artifacts' / 'volume_explorer.png'

pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f'{CHROMIUM} is missing: install Debian chromium')
nib = pytest.importorskip('nibabel', reason='the volumes extra is not installed (pip install "mtlmad[volumes]")')


def _srcs(page) -> tuple:
    return tuple(page.locator(f'img.mtlmad-volume-{k}').get_attribute('src') for k in ('panels', 'views', 'curve'))


def _wait_change(page, old: tuple, which=(0, 1, 2), timeout=20) -> tuple:
    "Wait until the images at positions `which` all differ from `old`."
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        new = _srcs(page)
        if all(new[i] and new[i] != old[i] for i in which): return new
        page.wait_for_timeout(100)
    raise AssertionError(f'the volume explorer images {which} did not change')


def test_volume_explorer_in_jupyterlab(tmp_path):
    t0 = time.monotonic()
    with lab_page(tmp_path, 'volume_explorer.ipynb', height=1100) as page:
        page.wait_for_selector('img.mtlmad-volume-curve[src]', timeout=60_000)
        _wait_all_done(page)
        s0 = _srcs(page)
        assert all(s0), 'the three images are drawn'
        assert page.get_by_text('model ran on').first.is_visible()
        readout = page.locator('.widget-slider:has-text("axial slice") .widget-readout').first
        k0 = int(readout.inner_text().strip())

        page.locator('button.mtlmad-volume-next').click()
        s1 = _wait_change(page, s0)  # the slice, the views and the marked curve all follow
        assert int(readout.inner_text().strip()) == k0 + 1

        th = page.locator('.mtlmad-volume-threshold .widget-readout')
        before = th.inner_text()
        page.locator('.mtlmad-volume-threshold .noUi-handle').focus(); page.keyboard.press('Home')
        _wait_change(page, s1, which=(0, 1))
        assert th.inner_text() != before

        page.locator('button.mtlmad-volume-next').click(); page.wait_for_timeout(300)
        page.locator('.mtlmad-volume-threshold .noUi-handle').focus(); page.keyboard.press('End')
        page.wait_for_timeout(800)
        SHOT.parent.mkdir(exist_ok=True)
        page.locator('.jp-OutputArea-output').last.screenshot(path=str(SHOT))
        page.screenshot(path=str(SHOT.with_name('volume_explorer_page.png')), full_page=True)
    assert SHOT.stat().st_size > 10_000
    assert time.monotonic() - t0 < 120
