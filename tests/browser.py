"""Headless Chromium from the command line: a page's DOM after its scripts ran, and a screenshot of it.

Chromium's own `--dump-dom` and `--screenshot` with a virtual-time budget wait for the page's scripts and
requests, so a single-page app like MLflow's UI is rendered before it is read; no browser driver needed.
"""
from __future__ import annotations

import html
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", "--hide-scrollbars"]


def chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


@dataclass(frozen=True)
class Page:
    dom: str  # the serialised DOM after the scripts ran

    @property
    def text(self) -> str:
        """The page's text, tags, scripts and styles removed, whitespace collapsed."""
        body = re.sub(r"<(script|style)\b.*?</\1>", " ", self.dom, flags=re.S)
        return html.unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", body))).strip()

    @property
    def title(self) -> str:
        found = re.search(r"<title>(.*?)</title>", self.dom, flags=re.S)
        return html.unescape(found.group(1)).strip() if found else ""


def load(url: str, screenshot: Path | None = None, size: str = "1600,1000", budget_ms: int = 15000) -> Page:
    """The page at `url` in a fresh profile (no stored UI settings), optionally saved as a PNG."""
    with tempfile.TemporaryDirectory(prefix="chromium-") as profile:
        command = [chromium(), *FLAGS, f"--user-data-dir={profile}", f"--window-size={size}",
                   f"--virtual-time-budget={budget_ms}", "--dump-dom"]
        if screenshot is not None:
            command.append(f"--screenshot={screenshot}")
        done = subprocess.run([*command, url], capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr[-2000:]
    return Page(done.stdout)
