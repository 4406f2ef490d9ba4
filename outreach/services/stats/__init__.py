"""Aggregates for the plan's coordination: totals, time series, hexagon and sector maps.

Every figure here is read from the rollup tables, never from raw encounters. A
request without a sector or shift-kind filter reads the per-organisation tables
(``RollupTotal``, ``PersonYear``, ``RollupCellSpan`` for maps), whose cost does not
grow with the encounters. A filtered summary, time series or sector map sums the day
rows of the finer tables (``RollupSector``, ``RollupPerson``), which each worker keeps
by organisation and day while they hold (``readmodel``), so it reads
only the days that changed since. A filtered hexagon map reads the hexagon day rows.

Every figure leaves through ``disclosure.Gate``; every request is audited
(action, filters, number of counts returned) in the transaction that reads, so the
event is committed before the response exists.

One module a concern, each importing only those above it:

- ``scope``: what a request covers (period, filters) and who asks;
- ``counters``: sums read from the rollup tables;
- ``filtered``: a filtered scope's sums from the day rows this worker keeps;
- ``publication``: figures as the disclosure gate lets them out;
- ``summary``, ``series``, ``maps``: the use cases of ``/api/v1/stats``;
- ``warmup``: what a worker reads and publishes ahead when it starts.
"""
