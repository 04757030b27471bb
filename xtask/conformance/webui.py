"""The real Web UI in a real browser that clicks: Selenium driving Debian's
Chromium through Debian's chromedriver (no driver download).

    python webui.py download --url URL --out DIR --expect TEXT [--expect TEXT ...]
            [--chromium PATH] [--chromedriver PATH] [--browser-flag=FLAG ...]
            [--timeout SECONDS]

Opens the workflow page URL, waits for a payload shown as an external-storage
reference (the Web UI asks the Codec Server with `?preserveStorageRefs=true`
and shows a reference as a button labelled with the stored size, e.g.
`1.05 MB`, beside "Payload downloads require a codec server with a /download
endpoint"), checks the value itself is not on the page, saves `DIR/reference.png`, clicks the download button (the Web UI
posts the reference to the Codec Server's `/download` and saves the decoded
value as a file), waits for that file in `DIR/downloads`, checks it holds every
TEXT, and saves `DIR/downloaded.png`. Prints one line of what it saw; exits 1
with the reason on any failure (the page's text and a screenshot are saved).
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import time
from pathlib import Path

from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException, WebDriverException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webelement import WebElement


# The Web UI's download button of a stored payload: labelled with its size.
SIZE_LABEL = re.compile(r"^\d[\d.,]*\s*(Bytes|B|KB|MB|GB)$", re.IGNORECASE)
# The Web UI's note beside a reference.
REFERENCE_NOTE = "Payload downloads require a codec server"


class Failed(Exception):
    """A check that did not hold; the message says what the page showed."""


def browser(chromium: str, chromedriver: str, flags: list[str], downloads: Path) -> webdriver.Chrome:
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in [*flags, "--window-size=1400,1200"]:
        options.add_argument(flag)
    options.add_experimental_option(
        "prefs",
        {"download.default_directory": str(downloads), "download.prompt_for_download": False},
    )
    driver = webdriver.Chrome(options=options, service=Service(chromedriver))
    # Headless Chromium saves downloads only where it is told to.
    driver.execute_cdp_cmd("Browser.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(downloads)})
    return driver


def wait_for(what: str, timeout: float, probe):
    """`probe()` until it returns something truthy, else `Failed(what)`."""
    deadline = time.monotonic() + timeout
    while True:
        found = probe()
        if found:
            return found
        if time.monotonic() > deadline:
            raise Failed(f"no {what} within {timeout:.0f} s")
        time.sleep(0.25)


def download_buttons(driver: webdriver.Chrome) -> list[WebElement]:
    """The enabled size-labelled buttons of references on the page (none
    while the page renders)."""
    try:
        if REFERENCE_NOTE not in driver.find_element(By.TAG_NAME, "body").text:
            return []
        return [
            b
            for b in driver.find_elements(By.TAG_NAME, "button")
            if b.is_displayed() and b.is_enabled() and SIZE_LABEL.match(b.text.strip())
        ]
    except StaleElementReferenceException:
        # The page re-rendered under us: look again.
        return []


def saved_file(downloads: Path, sizes: dict[Path, int]) -> Path | None:
    """The one downloaded file, once Chromium has finished it: no partial
    (`.crdownload`) or hidden file left, not empty, and the same size as at
    the last look (`sizes` remembers it)."""
    files = list(downloads.iterdir())
    if len(files) != 1 or files[0].name.startswith(".") or files[0].name.endswith(".crdownload"):
        return None
    path = files[0]
    size = path.stat().st_size
    stable = size > 0 and sizes.get(path) == size
    sizes[path] = size
    return path if stable else None


def download(args: argparse.Namespace) -> int:
    out = Path(args.out)
    downloads = out / "downloads"
    downloads.mkdir(parents=True, exist_ok=True)
    for old in downloads.iterdir():
        old.unlink()
    driver = browser(args.chromium, args.chromedriver, args.browser_flag, downloads)
    try:
        driver.get(args.url)
        what = f"payload shown as a reference (an enabled size-labelled download button beside {REFERENCE_NOTE!r}) on {args.url}"
        buttons = wait_for(what, args.timeout, lambda: download_buttons(driver))
        label = " ".join(buttons[0].text.split())
        page = driver.find_element(By.TAG_NAME, "body").text
        inline = [t for t in args.expect if t in page]
        if inline:
            raise Failed(f"the page shows the stored value inline ({inline}): it was not left a reference")
        driver.save_screenshot(str(out / "reference.png"))
        # Found again right before the click: the page may have re-rendered.
        button = wait_for(what, args.timeout, lambda: download_buttons(driver))[0]
        driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", button)
        button.click()
        sizes: dict[Path, int] = {}
        saved = wait_for(f"downloaded file in {downloads}", args.timeout, lambda: saved_file(downloads, sizes))
        text = saved.read_text(encoding="utf-8", errors="replace")
        missing = [t for t in args.expect if t not in text]
        if missing:
            raise Failed(f"{saved.name} ({len(text)} characters) lacks {missing}; it begins {text[:300]!r}")
        driver.save_screenshot(str(out / "downloaded.png"))
        print(
            f"{len(buttons)} reference(s) shown, button {label!r}; the click saved {saved.name} "
            f"({len(text)} characters, holding {args.expect})"
        )
        return 0
    except (Failed, WebDriverException) as err:
        try:
            driver.save_screenshot(str(out / "failed.png"))
            (out / "failed-page.txt").write_text(driver.find_element(By.TAG_NAME, "body").text)
        except WebDriverException:
            pass
        print(f"webui: {err}", file=sys.stderr)
        return 1
    finally:
        driver.quit()


def main() -> int:
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("download")
    p.add_argument("--url", required=True, help="the Web UI's workflow page")
    p.add_argument("--out", required=True, help="folder for screenshots and the downloaded file")
    p.add_argument("--expect", action="append", required=True, help="text the downloaded file holds")
    p.add_argument("--chromium", default="/usr/bin/chromium")
    p.add_argument("--chromedriver", default="/usr/bin/chromedriver")
    p.add_argument(
        "--browser-flag",
        action="append",
        default=[],
        help="a Chromium flag (repeat; xtask passes how Chromium runs on this machine, --headless first)",
    )
    p.add_argument("--timeout", type=float, default=60)
    args = parser.parse_args()
    # Selenium Manager must not look for drivers on the network: ours is given.
    os.environ.setdefault("SE_OFFLINE", "true")
    return {"download": download}[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
