"""The field app's size and speed, in Debian's Chromium with a phone's viewport.

    .venv/bin/python bench/fieldapp.py                # SQLite, as `make run` serves
    .venv/bin/python bench/fieldapp.py --postgresql   # a fresh database on 127.0.0.1:5432

Measures (a benchmark, not a test):

- the app shell's bytes, as served and gzip-compressed (level 6, nginx's default when
  compression is on), vendored h3-js included;
- the time from a tap on "Enregistrer la rencontre" to the encounter durable in the
  phone's IndexedDB (the pending count changes once the transaction has completed),
  at this machine's speed and with the CPU slowed 4 times (Chromium's own throttling,
  the usual stand-in for a mid-range phone);
- the sync of 200 encounters queued offline: from the network's return to an empty
  outbox (two batches of 100 through POST /sync, each answered per item).

The service is the threaded werkzeug server the browser tests use, in this process.
Results go to ``bench/results/fieldapp_<engine>.json``.
"""

from __future__ import annotations

import argparse
import gzip
import json
import platform
import statistics
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import phones  # noqa: E402
from playwright.sync_api import Page, sync_playwright  # noqa: E402
from werkzeug.serving import make_server  # noqa: E402

from outreach import create_app  # noqa: E402
from outreach.extensions import db  # noqa: E402
from outreach.migrate import upgrade  # noqa: E402
from outreach.services import demo, directory  # noqa: E402
from outreach.services.context import OPERATOR  # noqa: E402
from tests.helpers import DEMO_PASSWORD, empty_database, make_settings  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
TAP_TO_OUTBOX = """() => new Promise((done) => {
  const count = document.getElementById('pending-count');
  const started = performance.now();
  const seen = new MutationObserver(() => {
    seen.disconnect();
    done(performance.now() - started);
  });
  seen.observe(count, {childList: true, characterData: true, subtree: true});
  document.getElementById('save-encounter').click();
})"""


def shell_sizes(client: Any) -> dict[str, Any]:
    worker = client.get("/app/sw.js").get_data(as_text=True)
    shell = json.loads(worker.split("const SHELL = ")[1].split(";")[0])
    files = {}
    for path in [*shell, "/app/sw.js"]:
        body = client.get(path).data
        files[path] = {"bytes": len(body), "gzip": len(gzip.compress(body, compresslevel=6))}
    return {
        "files": files,
        "bytes": sum(f["bytes"] for f in files.values()),
        "gzip": sum(f["gzip"] for f in files.values()),
    }


def percentiles(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    return {
        "n": len(ordered),
        "p50": round(statistics.median(ordered), 2),
        "p95": round(ordered[int(0.95 * (len(ordered) - 1))], 2),
        "max": round(ordered[-1], 2),
    }


def log_in(page: Page, url: str) -> None:
    page.goto(f"{url}/app/")
    page.get_by_label("Identifiant", exact=True).fill("demo-worker")
    page.get_by_label("Mot de passe", exact=True).fill(DEMO_PASSWORD)
    page.get_by_role("button", name="Se connecter", exact=True).click()
    page.locator("#screen-shift").wait_for()
    page.get_by_role("button", name="Rencontre", exact=True).click()
    page.get_by_label("Secteur", exact=True).select_option("stalingrad")


def taps(page: Page, n: int) -> list[float]:
    plus = page.get_by_role(
        "button", name="Kit base (inhalation de crack) : un de plus", exact=True
    )
    timings = []
    for _ in range(n):
        plus.click()
        plus.click()
        timings.append(page.evaluate(TAP_TO_OUTBOX))
    return timings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--postgresql", action="store_true")
    parser.add_argument("--taps", type=int, default=50)
    parser.add_argument("--queued", type=int, default=200)
    parser.add_argument("--output", type=Path)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="fieldapp-bench-"))
    if args.postgresql:
        url = phones.sqlalchemy_url(phones.fresh_database("outreach_bench_fieldapp"))
    else:
        url = f"sqlite:///{work / 'bench.db'}"
        upgrade(url)
    settings = make_settings(url, work / "instance")
    app = create_app(settings)
    empty_database(app)
    with app.app_context():
        passwords = app.extensions["outreach.security"].passwords
        demo.seed_demo_accounts(db.session, passwords, DEMO_PASSWORD)
        directory.seed_structures(db.session, OPERATOR)
    server = make_server("127.0.0.1", 0, app, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_port}"
    results: dict[str, Any] = {
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": platform.platform(),
        "database": url.split(":")[0].split("+")[0],
        "shell": shell_sizes(app.test_client()),
    }
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, args=["--no-sandbox"], headless=True
        )
        context = browser.new_context(
            viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True
        )
        page = context.new_page()
        log_in(page, base)
        context.set_offline(True)
        results["tap_to_outbox_ms"] = percentiles(taps(page, args.taps))
        cdp = context.new_cdp_session(page)
        cdp.send("Emulation.setCPUThrottlingRate", {"rate": 4})
        results["tap_to_outbox_ms_cpu_4x_slower"] = percentiles(taps(page, args.taps))
        cdp.send("Emulation.setCPUThrottlingRate", {"rate": 1})
        already = int(page.locator("#pending-count").inner_text())
        taps(page, args.queued - already)
        queued = int(page.locator("#pending-count").inner_text())
        started = time.perf_counter()
        context.set_offline(False)
        page.wait_for_function(
            "() => document.getElementById('pending-count').textContent === '0'",
            polling=5,
            timeout=120_000,
        )
        results["sync"] = {
            "queued": queued,
            "seconds": round(time.perf_counter() - started, 3),
        }
        browser.close()
    server.shutdown()
    output = args.output or ROOT / "bench" / "results" / f"fieldapp_{results['database']}.json"
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps({k: v for k, v in results.items() if k != "shell"}, indent=2))
    print("shell:", results["shell"]["bytes"], "bytes,", results["shell"]["gzip"], "gzip")


if __name__ == "__main__":
    main()
