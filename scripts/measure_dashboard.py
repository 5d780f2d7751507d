"""Time the dashboard in headless Chromium, and take the screenshots docs/dashboard.md shows.

Opens SITE/index.html from disk in Debian's chromium (through playwright, no browser download) and prints
- the first view: from navigation to every chart of the first view drawn (`rnnbenchTimings.firstView`,
  plotly.min.js's parse included), over `--runs` fresh pages;
- a case's history after a click: `--cases` links of the case list, each clicked on a fresh page (so its
  data file is not cached), timed in the page from the click to the chart drawn (`rnnbenchTimings.history`)
  and from outside (the click to the page's `data-history` naming the case).
The targets (docs/dashboard.md): first view <= 2 s and a history <= 1 s at 365 nights x 6498 cases.

With `--screenshots DIR` it writes dashboard-{overview,history,winners,roofline}.png there instead.

Usage (from the repository root):
    .venv/bin/rnnbench report /tmp/history-365 --out /tmp/site-365
    .venv/bin/python scripts/measure_dashboard.py /tmp/site-365 --runs 5 --cases 10
    .venv/bin/python scripts/measure_dashboard.py SITE --screenshots docs/img
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from pathlib import Path
from typing import Any, NoReturn

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def _fail(message: str) -> NoReturn:
    print(f"measure_dashboard: {message}", file=sys.stderr)
    raise SystemExit(2)


def _open(browser: Any, url: str, width: int = 1280, height: int = 900) -> Any:
    page = browser.new_page(viewport={"width": width, "height": height})
    page.goto(url)
    page.wait_for_selector("body[data-state=ready], body[data-state=error]", timeout=60_000)
    if page.get_attribute("body", "data-state") != "ready":
        _fail(f"the page did not load: {page.inner_text('#summary')}")
    return page


def _summary(name: str, values: list[float]) -> str:
    return (
        f"{name}: median {statistics.median(values):.0f} ms, max {max(values):.0f} ms, "
        f"min {min(values):.0f} ms over {len(values)}"
    )


def measure(browser: Any, url: str, runs: int, cases: int, seed: int) -> None:
    first = []
    for _ in range(runs):
        page = _open(browser, url)
        first.append(page.evaluate("window.rnnbenchTimings.firstView"))
        page.close()
    print(_summary("first view", first))
    page = _open(browser, url)
    links = page.locator("#case-table a").evaluate_all("as => as.map(a => a.dataset.case)")
    page.close()
    inside, outside = [], []
    for sid in random.Random(seed).sample(links, min(cases, len(links))):
        page = _open(browser, url)
        link = page.locator(f"#case-table a[data-case='{sid}']")
        link.scroll_into_view_if_needed()
        start = time.perf_counter()
        link.click()
        page.wait_for_selector(f"body[data-history='{sid}']", timeout=30_000)
        outside.append((time.perf_counter() - start) * 1e3)
        inside.append(page.evaluate("window.rnnbenchTimings.history"))
        page.close()
    print(_summary("case history after a click, in the page", inside))
    print(_summary("case history after a click, click to drawn as playwright sees it", outside))


def screenshots(browser: Any, url: str, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    page = _open(browser, url, height=1000)
    page.screenshot(path=str(out / "dashboard-overview.png"))
    link = page.locator("#regression-table a, #case-table a").first
    link.click()
    sid = link.get_attribute("data-case")
    page.wait_for_selector(f"body[data-history='{sid}']")
    at = page.evaluate(
        """() => {
        const gd = document.getElementById('history-chart');
        const t = gd._fullData.find(d => d.meta);
        const i = t.x.length - 1, xa = gd._fullLayout.xaxis, ya = gd._fullLayout.yaxis;
        const box = gd.querySelector('.nsewdrag').getBoundingClientRect();
        return {x: box.left + xa.d2p(t.x[i]), y: box.top + ya.d2p(t.y[i])};
    }"""
    )
    page.mouse.move(at["x"], at["y"])
    page.locator("#history-chart .hoverlayer .hovertext").first.wait_for()
    page.locator("#history").screenshot(path=str(out / "dashboard-history.png"))
    page.close()
    page = _open(browser, url + "#framework=torch&pass=forward", height=1000)
    page.locator("#winners").screenshot(path=str(out / "dashboard-winners.png"))
    page.locator("#roofline").screenshot(path=str(out / "dashboard-roofline.png"))
    page.close()
    print(f"screenshots written to {out}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("site", type=Path, help="a folder `rnnbench report` wrote")
    p.add_argument("--runs", type=int, default=5, help="fresh pages whose first view is timed")
    p.add_argument("--cases", type=int, default=10, help="case histories opened by a click and timed")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--screenshots", type=Path, help="write the docs' screenshots to this folder instead")
    args = p.parse_args()
    if not (args.site / "index.html").is_file() or not (args.site / "data" / "index.js").is_file():
        _fail(f"{args.site}: not a dashboard site (no index.html and data/index.js)")
    if not Path(CHROMIUM).exists():
        _fail(f"no {CHROMIUM}: install Debian's chromium (make chromium)")
    if args.runs < 1 or args.cases < 1:
        _fail("--runs and --cases must be positive")
    from playwright.sync_api import sync_playwright

    url = (args.site.resolve() / "index.html").as_uri()
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            if args.screenshots:
                screenshots(browser, url, args.screenshots)
            else:
                measure(browser, url, args.runs, args.cases, args.seed)
        finally:
            browser.close()


if __name__ == "__main__":
    main()
