"""`python -m tests.e2e.install_browser`: what the browser test needs (`make demo-test` runs it).

Debian's `chromium` + `chromium-driver` (apt-get, as root) and the `selenium` package (pip). Does
nothing for what is already there, so it is cheap to run every time.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys

APT_PACKAGES = ("chromium", "chromium-driver")
SELENIUM_SPEC = "selenium>=4.20,<5"


def browser_paths() -> tuple[str | None, str | None]:
    """(chromium, chromedriver) executables, or None where missing."""
    browser = next(
        (p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if p),
        None,
    )
    return browser, shutil.which("chromedriver")


def _apt_install() -> None:
    if os.geteuid() != 0:
        sys.exit(
            "error: chromium/chromedriver missing; install them as root: "
            f"apt-get install -y {' '.join(APT_PACKAGES)}"
        )
    if not shutil.which("apt-get"):
        sys.exit("error: no apt-get here; install Chromium and its chromedriver by hand")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    cmd = ["apt-get", "install", "-y", "--no-install-recommends", *APT_PACKAGES]
    if subprocess.run(cmd, env=env).returncode != 0:
        # A stale package index is the usual cause; refresh once and retry.
        subprocess.run(["apt-get", "update"], env=env, check=True)
        subprocess.run(cmd, env=env, check=True)


def main() -> int:
    browser, driver = browser_paths()
    if browser and driver:
        print(f"browser: {browser}, driver: {driver}")
    else:
        _apt_install()
        browser, driver = browser_paths()
        if not (browser and driver):
            sys.exit("error: chromium or chromedriver still missing after apt-get install")
        print(f"installed: {browser}, {driver}")
    if importlib.util.find_spec("selenium") is None:
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", SELENIUM_SPEC], check=True)
        print(f"installed {SELENIUM_SPEC}")
    else:
        print("selenium: present")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
