"""gunicorn settings for Outreach: ``gunicorn -c gunicorn.conf.py app:app``.

Each worker is a process with a few threads: a thread waiting on PostgreSQL leaves
the CPU to another, and the process keeps one engine and connection pool. No answer
depends on which worker gives it: tokens are signed, rate-limit counters live in
Redis when ``OUTREACH_RATELIMIT_STORAGE_URL`` names it, and what a worker keeps in
memory (published maps, span and day rows) is checked against generation numbers in
the database before it is used. So hosts and workers can be added freely. Slow
clients: a thread reads its request itself, so a client trickling its body holds the
thread for as long as it keeps trickling (``timeout`` does not end it: it watches the
worker's main loop, not its threads). Hence nginx in front, with
deploy/nginx/outreach-proxy.conf, which hands gunicorn whole requests only
(tests/test_proxy.py). See docs/scaling.md.
"""

import gc
import os
import threading

from config.logs import LOGGING

bind = os.environ.get("OUTREACH_BIND", "127.0.0.1:8000")
workers = int(os.environ.get("OUTREACH_WORKERS", "2"))
worker_class = "gthread"
threads = int(os.environ.get("OUTREACH_THREADS", "4"))
# A 500-item sync takes well under a second; a minute is a stuck request, not work.
timeout = 60
graceful_timeout = 30
keepalive = 5
# Request line and headers are small in this API; bodies are capped by the app (2 MiB).
limit_request_line = 4094
limit_request_fields = 50
limit_request_field_size = 8190
# Recycle workers now and then so that no slow growth of memory accumulates.
max_requests = 20_000
max_requests_jitter = 2_000
# JSON lines, the app's format (config/logs.py); the app logs each request itself.
logconfig_dict = LOGGING
accesslog = None


def post_worker_init(worker: object) -> None:
    """Move everything the app built at start-up out of the collector's sight.

    A batch allocates tens of thousands of short-lived objects, and every full
    collection the cyclic collector runs then walks the whole heap: the app's
    modules, schemas, statements and geography, objects that live as long as the
    worker. Frozen, they are never walked again (the CPU saved: bench/RESULTS.md).
    Garbage made at start-up is collected first, so none is frozen with them.

    Then the worker reads the map's span rows and the filtered stats' day rows ahead in
    a thread (``outreach.read_ahead``), while requests are already served: otherwise
    its first map or filtered summary of a long period would read them all.
    """
    gc.collect()
    gc.freeze()
    from flask import Flask

    from outreach import read_ahead

    app = getattr(worker, "wsgi", None)
    # Not the app when it failed to load: gunicorn then serves its error page.
    if isinstance(app, Flask):
        threading.Thread(target=read_ahead, args=(app,), name="read-ahead", daemon=True).start()
