"""The report renders from real and synthetic results, its images are real PNGs, a browser loads them, and
everything from results is HTML-escaped."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pytest

from rnnbench.analysis.doctor import document, measure_set
from rnnbench.analysis.frame import load
from rnnbench.case import Case
from rnnbench.cli import main
from rnnbench.report.build import _chart_of, build_report
from tests import synthetic_runs as S

ASV_DATA = Path(__file__).parent / "data" / "asv-legacy"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
# `make test` installs chromium and sets this, so there a missing browser fails instead of skipping
NO_BROWSER = not Path(CHROMIUM).exists() and not os.environ.get("RNNBENCH_REQUIRE_BROWSER")
EVIL_MACHINE = '<script>alert("machine")</script>'
EVIL_ERROR = "<script>alert('error')</script> & <img src=x onerror=alert(1)>"


def _results(root: Path) -> Path:
    """A results tree: synthetic history on one machine, a machine with a hostile name, real asv, a real tiny run."""
    cases = S.cases(
        frameworks=("numpy", "torch"), cells=("gru",), batches=(1, 16), hiddens=(64, 256), seq_lens=(16, 64)
    )
    first = datetime(2026, 2, 1, tzinfo=timezone.utc)
    for i in range(4):
        S.write(
            S.nightly(cases, i, first, scale=lambda c, i=i: 1.5 if i >= 2 and c.formulation == "hoisted" else 1.0), root
        )
    S.write(S.document(cases[:6], machine_name=EVIL_MACHINE, failures={cases[0].key: EVIL_ERROR}), root)
    shutil.copytree(ASV_DATA, root / "asv")
    # a real (tiny) run: a few numpy kernels timed here, stored as a runner document
    real = [Case("numpy", "cpu", "rnn", f, "eager", "forward", 4, 16, 16, 8) for f in ("separate", "concat", "hoisted")]
    from rnnbench import backends
    from rnnbench.measure.verify import make_inputs

    kernels = {c: backends.get("numpy").build(c, *make_inputs(c)).call for c in real}
    measured = measure_set(kernels, dict.fromkeys(real, 5), n_samples=5)
    from rnnbench.measure.machine import fingerprint

    S.write(document(measured, machine=fingerprint() | {"machine": "this-host"}).to_json(), root)
    return root


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = _results(tmp_path_factory.mktemp("results"))
    out = tmp_path_factory.mktemp("site")
    assert main(["report", str(root), "--out", str(out), "--static", "-q", "--max-charts", "6"]) == 0
    return out


def _images(site: Path) -> list[str]:
    return re.findall(r'<img src="([^"]+)"', (site / "index.html").read_text(encoding="utf-8"))


def test_every_section_and_finding_is_present(site: Path) -> None:
    page = (site / "index.html").read_text(encoding="utf-8")
    for title in (
        "Winner maps",
        "Scaling",
        "Distance to the limit",
        "History",
        "Cross-framework",
        "Environment",
        "Failed",
    ):
        assert title in page
    findings = re.findall(r'<p class="finding">(.*?)</p>', page)
    assert len(findings) == 7 and all(findings)
    # the injected hoisted slowdown (x1.5 from the third run) and asv's concat regression are found
    assert re.search(r"<td>regression</td><td>\+\d+\.\d%</td>(<td>[^<]*</td>){2}<td>02020202</td>", page)
    assert re.search(r"<td>regression</td><td>\+\d+\.\d%</td>(<td>[^<]*</td>){2}<td>f31f865c</td>", page)
    assert "this-host" in page  # the real run is in the environment table


def test_images_are_valid_non_blank_pngs(site: Path) -> None:
    import matplotlib.image as mpimg

    names = _images(site)
    assert len(names) >= 10
    kinds = {n.split("/")[-1].split("-")[0] for n in names}
    assert kinds == {"winners", "scaling", "limit", "history", "frameworks"}
    for name in names:
        path = site / name
        assert path.stat().st_size > 1000
        pixels = mpimg.imread(path)
        assert pixels.ndim == 3 and pixels.shape[0] > 100 and pixels.shape[1] > 100
        assert float(pixels[..., :3].std()) > 0.02, f"{name} is blank"


def test_results_are_html_escaped(site: Path) -> None:
    page = (site / "index.html").read_text(encoding="utf-8")
    assert "<script" not in page.lower()
    assert "<img src=x" not in page
    assert "&lt;script&gt;alert(&quot;machine&quot;)&lt;/script&gt;" in page
    assert "&lt;script&gt;alert(&#x27;error&#x27;)&lt;/script&gt; &amp; &lt;img src=x onerror=alert(1)&gt;" in page


def test_frame_has_rows_from_every_source(tmp_path: Path) -> None:
    frame = load([_results(tmp_path)])
    assert set(frame["source"]) == {"run", "asv"}
    assert {"asv-tiny", "this-host", "synth-box", EVIL_MACHINE} <= set(frame["machine"])
    assert frame.loc[frame["source"].eq("asv"), "key"].str.startswith("numpy/cpu/").all()


def _chromium(*args: str, tmp: Path) -> subprocess.CompletedProcess[str]:
    flags = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={tmp / 'chromium-profile'}",
    ]
    return subprocess.run([CHROMIUM, *flags, *args], capture_output=True, text=True, timeout=120)


# a test harness page beside the report: loads index.html in an iframe and counts images that decoded
_CHECK = """<!DOCTYPE html><html><body><iframe id="f" src="index.html" width="1200" height="800"></iframe>
<pre id="out">pending</pre><script>
document.getElementById('f').addEventListener('load', function () {
  var out = document.getElementById('out');
  try {
    var doc = this.contentDocument, imgs = Array.prototype.slice.call(doc.images);
    Promise.all(imgs.map(function (im) {
      return im.complete ? Promise.resolve() : new Promise(function (r) { im.onload = im.onerror = r; });
    })).then(function () {
      var ok = imgs.filter(function (im) { return im.complete && im.naturalWidth > 0; }).length;
      out.textContent = 'IMAGES ' + ok + '/' + imgs.length;
    });
  } catch (e) { out.textContent = 'ERROR ' + e; }
});
</script></body></html>"""


def _loaded_images(site: Path, tmp: Path) -> tuple[int, int]:
    check = site / "check.html"
    check.write_text(_CHECK)
    try:
        res = _chromium(
            "--allow-file-access-from-files", "--virtual-time-budget=15000", "--dump-dom", check.as_uri(), tmp=tmp
        )
    finally:
        check.unlink()
    m = re.search(r"IMAGES (\d+)/(\d+)", res.stdout)
    assert m, f"harness did not report: {res.stdout[-500:]} {res.stderr[-500:]}"
    return int(m.group(1)), int(m.group(2))


@pytest.mark.skipif(NO_BROWSER, reason="chromium not installed (make test installs it)")
def test_browser_opens_the_report_offline_and_loads_every_image(site: Path, tmp_path: Path) -> None:
    ok, total = _loaded_images(site, tmp_path)
    assert total == len(_images(site)) and ok == total
    # the check can fail: a missing image is noticed
    broken = tmp_path / "broken"
    shutil.copytree(site, broken)
    (broken / _images(site)[0]).unlink()
    ok, total = _loaded_images(broken, tmp_path)
    assert ok == total - 1


@pytest.mark.skipif(NO_BROWSER, reason="chromium not installed (make test installs it)")
@pytest.mark.slow  # Chromium renders the whole page and screenshots it
def test_browser_screenshot_is_not_blank(site: Path, tmp_path: Path) -> None:
    import matplotlib.image as mpimg

    shot = tmp_path / "shot.png"
    _chromium(
        f"--screenshot={shot}",
        "--window-size=1280,2400",
        "--hide-scrollbars",
        (site / "index.html").as_uri(),
        tmp=tmp_path,
    )
    pixels = mpimg.imread(shot)[..., :3]
    assert pixels.shape[0] >= 2000
    colours = np.unique((pixels.reshape(-1, 3) * 255).astype(np.uint8), axis=0)
    assert len(colours) > 200, "screenshot is (nearly) blank"
    assert float(pixels.std()) > 0.05


def test_report_of_nothing_is_a_usage_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "empty").mkdir()
    assert main(["report", str(tmp_path / "empty"), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("rnnbench: error: no rnnbench or asv results") and err.count("\n") == 1


def test_build_report_handles_a_single_run_without_history(tmp_path: Path) -> None:
    cases = S.cases(frameworks=("numpy",), cells=("rnn",), batches=(4,), hiddens=(32,), seq_lens=(8,))
    S.write(S.document(cases), tmp_path / "r")
    page = build_report(load([tmp_path / "r"]), tmp_path / "site", progress=False)
    text = page.read_text(encoding="utf-8")
    assert "no history yet" in text
    assert "Concat beats separate on" in text


def test_history_charts_group_formulations_by_the_column_not_a_key_position() -> None:
    case = Case("torch", "cpu", "gru", "concat", "eager", "forward", 16, 64, 64, 32)
    form, chart = _chart_of(case.key, case.formulation)
    assert form == "concat" and chart == case.key.replace("/concat/", "/*/")
    assert _chart_of(case.replace(formulation="hoisted").key, "hoisted")[1] == chart
    # an asv benchmark that is no rnnbench case has no formulation: its own chart, labelled by its key
    gemm = "asv/bench_gemm.PeakGEMM.time_matmul/numpy/cpu/float32/512"
    assert _chart_of(gemm, float("nan")) == (gemm, gemm)
    assert _chart_of(gemm, None) == (gemm, gemm)
