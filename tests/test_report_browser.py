"""The demo-style report opened in headless Chromium: table present, every image decoded."""

import re
import shutil
import subprocess

import pytest

pytestmark = pytest.mark.slow

CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def _chromium():
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if not exe:
        pytest.fail("chromium not installed: run `make setup` (Debian package chromium)")
    return exe


def test_report_renders_in_chromium_with_all_images(tiny_pipeline, tmp_path):
    report = tiny_pipeline["workdir"] / "results/tiny/report.html"
    exe = _chromium()
    # the network blocked: the page must need nothing beyond its own file (plotly.js embedded)
    common = [
        exe,
        *CHROMIUM_FLAGS,
        f"--user-data-dir={tmp_path / 'profile'}",
        "--virtual-time-budget=10000",
        "--proxy-server=127.0.0.1:9",
        "--host-resolver-rules=MAP * ~NOTFOUND",
    ]
    dom = subprocess.run(
        [*common, "--window-size=1280,2000", "--dump-dom", report.as_uri()], capture_output=True, text=True, timeout=120
    )
    assert dom.returncode == 0, dom.stderr[-2000:]
    m = re.search(r'data-images-total="(\d+)" data-images-loaded="(\d+)"', dom.stdout)
    assert m, "the page's load handler did not run"
    total, loaded = map(int, m.groups())
    assert total >= 2 and loaded == total, f"{total - loaded} broken image(s)"
    assert '<table id="metrics">' in dom.stdout
    # nothing widens the page beyond a 1280 px window (wide tables scroll inside themselves)
    w = re.search(r'data-page-width="(\d+)" data-window-width="(\d+)"', dom.stdout)
    assert w and int(w.group(2)) == 1280 and int(w.group(1)) <= 1280, w and w.groups()
    # the table of contents links every section, the vibrations one included (tiny.yaml runs it)
    toc = re.search(r'<nav id="toc"[^>]*>(.*?)</nav>', dom.stdout, re.S).group(1)
    assert 'href="#comparison"' in toc and 'href="#vibrations"' in toc and 'href="#provenance"' in toc
    assert '<option value="deepmd">' in dom.stdout and '<option value="sevennet0">' in dom.stdout
    # every interactive figure drawn, with data: parity and ML-MD series per model, pair distances
    # per model and AIMD temperature, the AIMD series, the configuration-space map
    p = re.search(r'data-plotly-total="(\d+)" data-plotly-rendered="(\d+)"', dom.stdout)
    assert p and int(p.group(1)) == 2 * 2 + 2 * 2 + 1 + 1 and p.group(2) == p.group(1), p and p.groups()
    for fig in ("fig-map", "fig-mlmd-deepmd", "fig-mlmd-sevennet0", "fig-aimd-series"):
        assert re.search(
            f'<div class="plotly-fig[^"]*" id="{fig}"[^>]*>\\s*<div class="plot-container plotly"', dom.stdout
        ), fig
    assert dom.stdout.count('class="plot-container plotly"') == int(p.group(1))
    html = report.read_text()
    assert not re.search(r'<script[^>]+src=|<link[^>]+href="http', html), "the report loads something from outside"
    shot = tmp_path / "report.png"
    subprocess.run(
        [*common, f"--screenshot={shot}", "--window-size=1200,1600", report.as_uri()], capture_output=True, timeout=120
    )
    assert shot.is_file() and shot.stat().st_size > 20_000  # a rendered page, not a blank one
