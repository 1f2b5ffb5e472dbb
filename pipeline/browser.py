"""Debian's chromium, headless, driven by Selenium through Debian's chromedriver: what the line page's test and
``bench --sweep page`` watch the page with (selenium is a dev extra; setup.sh installs the browser)."""

from __future__ import annotations

import shutil

from model.errors import SetupError


def headless_chromium(width: int = 1300, height: int = 900):
    """A Selenium Chrome driver on the system's chromium; a clear error when either is missing."""
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError as exc:
        raise SetupError("selenium is not installed: pip install -e '.[dev]'") from exc
    chromium, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if not (chromium and driver):
        raise SetupError("chromium and chromedriver are needed: apt-get install chromium chromium-driver")
    opts = webdriver.ChromeOptions()
    opts.binary_location = chromium
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"):
        opts.add_argument(arg)
    opts.add_argument(f"--window-size={width},{height}")
    return webdriver.Chrome(service=Service(driver), options=opts)
