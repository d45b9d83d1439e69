#!/usr/bin/env python3
"""Regenerate docs/report-screenshot.png: the report of R1 at FP8 on 8× H200 serving 64 users
(with cost and SLO lines), rendered by headless Chromium (scripts/setup_browser.sh installs it).

    .venv/bin/python scripts/screenshot_report.py [--full] [-o docs/report-screenshot.png]

Fonts differ between machines (only DejaVu and Liberation are installed here), so the picture is
for people to look at, not for tests to compare.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OPTIONS = [
    "--weights",
    "fp8",
    "--accelerator",
    "h200-sxm",
    "--concurrency",
    "64",
    "--cost",
    "--requests-per-day",
    "1200",
]
OPTIONS += ["--ttft-ms", "2000", "--tpot-ms", "50"]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-o", "--output", type=Path, default=ROOT / "docs" / "report-screenshot.png")
    ap.add_argument("--full", action="store_true", help="the whole page, not the first screen")
    ap.add_argument("--height", type=int, default=1560, help="viewport height, px")
    args = ap.parse_args()
    exe = shutil.which("chromium")
    if not exe:
        print("chromium is not installed: run bash scripts/setup_browser.sh", file=sys.stderr)
        return 2
    from playwright.sync_api import sync_playwright

    from dsdeploy.cli.main import app

    with tempfile.TemporaryDirectory() as tmp:
        html = Path(tmp) / "report.html"
        try:
            app(["report", *OPTIONS, "-o", str(html)], standalone_mode=False)
        except SystemExit as exc:  # pragma: no cover - typer may still exit
            if exc.code:
                return int(exc.code)
        with sync_playwright() as p:
            b = p.chromium.launch(executable_path=exe)
            page = b.new_page(viewport={"width": 1200, "height": args.height}, device_scale_factor=1)
            page.goto(html.as_uri())
            page.screenshot(path=str(args.output), full_page=args.full)
            b.close()
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
