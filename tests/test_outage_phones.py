"""PostgreSQL restarted under the shipped phone simulator (issue 26, section 7).

Phones of ``bench/phones.py`` sync paced batches to gunicorn with the shipped settings
on a throwaway PostgreSQL cluster, which is stopped (``-m immediate``: a crash) after
their first batches are acknowledged and started again once a phone has been made to
wait. The phones must wait and resume by themselves (they used to give up at the
first 503), gunicorn is never restarted, and the database then holds every encounter
the phones queued exactly once, with rollups grown by exactly those encounters.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from pathlib import Path

from bench import phones
from outreach import migrate
from tests.servers import Cluster, gunicorn


def _until(condition: Callable[[], bool], what: str) -> None:
    """Poll what the phones report (a phone reaching a state gives nothing to wait on)."""
    pause = threading.Event()
    for _ in range(1200):
        if condition():
            return
        pause.wait(0.05)
    raise AssertionError(f"never happened: {what}")


def test_phones_wait_out_a_postgresql_restart_and_every_encounter_is_stored_once(
    cluster: Cluster, tmp_path: Path
) -> None:
    migrate.upgrade(cluster.url)
    psycopg_url = f"postgresql://postgres@127.0.0.1:{cluster.port}/postgres"
    instance = tmp_path / "instance"
    environment = phones.service_environment(psycopg_url, instance)
    accounts = phones.create_accounts(environment, associations=2, workers=2)
    plans = phones.plan_fleet(accounts, days=3, batch_size=20, seed="outage")
    before = phones.stored(psycopg_url, list(phones.queued_ids(plans)))
    settings = {"OUTREACH_WORKERS": "2", "OUTREACH_LOGIN_RATE": "100000 per minute"}
    with gunicorn(cluster.url, instance, **settings) as (server, port):
        reports = {name: phones.PhoneReport() for name in plans}
        fleet = {
            name: phones.Phone("127.0.0.1", port, name, rng=random.Random(name)) for name in plans
        }
        start = time.perf_counter()
        threads = [
            threading.Thread(
                target=phones.sync_queue,
                args=(fleet[name], plans[name][0], reports[name], phones.Pace(start, 0.4)),
            )
            for name in plans
        ]
        for thread in threads:
            thread.start()
        _until(lambda: sum(r.batches for r in reports.values()) >= 4, "four batches acknowledged")
        cluster.stop()
        _until(lambda: any(r.waits for r in reports.values()), "a phone made to wait")
        cluster.start()
        for thread in threads:
            thread.join(timeout=600)
        assert server.poll() is None  # the same gunicorn served throughout
        for phone in fleet.values():
            phone.close()
    assert not [p for report in reports.values() for p in report.problems]
    queued = sum(plan[1] for plan in plans.values())
    assert sum(report.sent for report in reports.values()) == queued
    assert sum(report.waits for report in reports.values()) > 0
    assert phones.check_stored(psycopg_url, plans, before) == []
