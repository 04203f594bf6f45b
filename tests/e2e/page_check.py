"""Open a rendered page (results/report.html) in headless Chromium and report what a person gets:
its section headings, each image (loaded, not blank), each audio element (loads, duration > 0)
and the console's errors. `python -m tests.e2e.page_check PAGE [--shots DIR]` also saves one
screenshot per section.

Needs Debian's chromium + chromium-driver and selenium (`python -m tests.e2e.install_browser`).
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

REPORT_SOURCE = Path(__file__).resolve().parents[2] / "notebooks_src" / "report.py"
# The reviewers' page's sections, in order: the report notebook's numbered headings.
REPORT_SECTIONS = tuple(
    re.findall(r"^# ## (\d+\. .+)$", REPORT_SOURCE.read_text(encoding="utf-8"), flags=re.M)
)
CHROMIUM_FLAGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--autoplay-policy=no-user-gesture-required",
    "--window-size=1400,1000",
)

# Every <img>: loaded, and drawn onto a canvas, more than one colour (a blank figure is one).
IMAGES_JS = """
const out = [];
for (const img of document.images) {
  const r = {alt: img.alt || img.src.slice(0, 40), loaded: img.complete && img.naturalWidth > 0,
             width: img.naturalWidth, height: img.naturalHeight, colours: 0};
  if (r.loaded) {
    const c = document.createElement('canvas');
    c.width = Math.min(img.naturalWidth, 400); c.height = Math.min(img.naturalHeight, 400);
    const ctx = c.getContext('2d');
    ctx.drawImage(img, 0, 0, c.width, c.height);
    const d = ctx.getImageData(0, 0, c.width, c.height).data;
    const seen = new Set();
    for (let i = 0; i < d.length && seen.size < 50; i += 4 * 7) seen.add(d[i] + ',' + d[i+1] + ',' + d[i+2]);
    r.colours = seen.size;
  }
  out.push(r);
}
return out;
"""

# Every <audio>: wait (up to 20 s) for its metadata, then its duration and any media error.
AUDIO_JS = """
const done = arguments[arguments.length - 1];
const audios = Array.from(document.querySelectorAll('audio'));
const wait = a => new Promise(resolve => {
  if (a.readyState >= 1 || a.error) return resolve();
  a.addEventListener('loadedmetadata', () => resolve(), {once: true});
  a.addEventListener('error', () => resolve(), {once: true});
  a.load();
});
const timeout = new Promise(resolve => setTimeout(resolve, 20000));
Promise.race([Promise.all(audios.map(wait)), timeout]).then(() => done(audios.map(a => ({
  duration: a.duration, ready: a.readyState, error: a.error ? a.error.code : null,
  label: (a.parentElement && a.parentElement.innerText || '').trim().slice(0, 60)}))));
"""


@dataclass
class PageReport:
    headings: list[str] = field(default_factory=list)
    images: list[dict] = field(default_factory=list)
    audio: list[dict] = field(default_factory=list)
    console_errors: list[str] = field(default_factory=list)
    shots: list[Path] = field(default_factory=list)


def browser_paths() -> tuple[str | None, str | None]:
    names = ("chromium", "chromium-browser", "google-chrome")
    browser = next((p for p in map(shutil.which, names) if p), None)
    return browser, shutil.which("chromedriver")


def open_driver(profile: Path):  # noqa: ANN201 - selenium's WebDriver
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    browser, driver_path = browser_paths()
    if not (browser and driver_path):
        raise RuntimeError("chromium/chromedriver missing: python -m tests.e2e.install_browser")
    opts = webdriver.ChromeOptions()
    opts.binary_location = browser
    for flag in CHROMIUM_FLAGS:
        opts.add_argument(flag)
    opts.add_argument(f"--user-data-dir={profile}")
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(service=Service(driver_path), options=opts)


def inspect_page(page: Path, profile: Path, shots: Path | None = None) -> PageReport:
    driver = open_driver(profile)
    try:
        driver.set_script_timeout(60)
        driver.get(Path(page).resolve().as_uri())
        # A page of several MB can still be laying out when `get` returns (a full CI run once
        # saw 6 of the 7 section headings): wait until it is complete and its headings stop
        # changing.
        deadline, last = time.monotonic() + 60, None
        while time.monotonic() < deadline:
            now = driver.execute_script(
                "return [document.readyState, document.querySelectorAll('h1, h2').length,"
                " document.body ? document.body.scrollHeight : 0]"
            )
            if now[0] == "complete" and now == last:
                break
            last = now
            time.sleep(0.5)
        report = PageReport()
        report.headings = driver.execute_script(
            "return Array.from(document.querySelectorAll('h1, h2')).map(h => h.innerText.trim())"
        )
        report.images = driver.execute_script(IMAGES_JS)
        report.audio = driver.execute_async_script(AUDIO_JS)
        report.console_errors = [
            entry["message"] for entry in driver.get_log("browser") if entry["level"] == "SEVERE"
        ]
        if shots is not None:
            shots.mkdir(parents=True, exist_ok=True)
            n = driver.execute_script("return document.querySelectorAll('h1, h2').length")
            for i in range(n):
                driver.execute_script(
                    "document.querySelectorAll('h1, h2')[arguments[0]].scrollIntoView()", i
                )
                path = shots / f"section_{i:02d}.png"
                driver.save_screenshot(str(path))
                report.shots.append(path)
        return report
    finally:
        driver.quit()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("page", type=Path)
    parser.add_argument("--shots", type=Path, help="folder for one screenshot per section")
    parser.add_argument("--profile", type=Path, default=Path("/tmp/lse-page-check-profile"))
    args = parser.parse_args(argv)
    report = inspect_page(args.page, args.profile, args.shots)
    print(json.dumps({**report.__dict__, "shots": [str(p) for p in report.shots]}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
