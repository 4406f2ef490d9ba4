"""Maps published earlier, served again while the counters behind them are unchanged;
and how a map's GeoJSON features are written.

A whole-area map is thousands of hexagons whose counts are read, summed and passed
through the publication gate, for an answer that is the same until the next write of
the counters. Each worker keeps the maps it published under the counters' generation
they were computed at (``rollups.generation``); a request whose generation is still
the stored one is answered from here. Every write of the counters replaces the
generation in its own transaction (``services/writes.py``), so a map is never served
after a change it does not show has committed.

What is kept is what was published, masks applied, serialised once as the bytes it
is sent as: nothing here is finer than a response. Every request, served from here
or not, is audited by its use case. The budget counts features (a whole-area map at
resolution 9 is about 9,400), the least recently used map leaves first, and a budget
of 0 keeps nothing.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np
import numpy.typing as npt
import orjson
from cachetools import LRUCache
from sqlalchemy.orm import Session

from outreach.services.rollups import generation


@dataclass(frozen=True)
class PublishedMap:
    """What of a map's response comes from the counters: its features, as the JSON
    array they are sent as, how many, any other members, and how many counts it
    released, for the audit."""

    features: bytes
    size: int
    records: int
    members: dict[str, Any] = field(default_factory=dict)
    rendered: Rendered | None = None


def published_map(
    features: Sequence[bytes],
    records: int,
    members: dict[str, Any] | None = None,
    rendered: Rendered | None = None,
) -> PublishedMap:
    """A map of serialised ``feature``s."""
    return PublishedMap(
        b"[" + b",".join(features) + b"]", len(features), records, members or {}, rendered
    )


@dataclass(frozen=True)
class Rendered:
    """An area map's features as written, with the counts each shows (-1 where masked),
    so that the next version of the map writes again only the areas that changed."""

    areas: list[str]
    shown: npt.NDArray[np.int64]
    features: list[bytes]

    @cached_property
    def rows(self) -> dict[str, int]:
        """Each area's row, for a next version whose areas are not the same."""
        return {area: row for row, area in enumerate(self.areas)}


def render_areas(
    key: str,
    measures: Sequence[str],
    leader: str,
    areas: list[str],
    geometry: Callable[[str], bytes],
    values: npt.NDArray[np.int64],
    masked: npt.NDArray[np.bool_],
    previous: Rendered | None,
) -> Rendered:
    """Each area's feature (``area_features``), its ``values`` published unless
    ``masked``; an area that ``previous`` showed with the same counts keeps its bytes.

    After a sync a whole-area map differs in a few hexagons of thousands, and writing a
    feature costs more than comparing its counts."""
    shown = np.where(masked, -1, values)
    if previous is None:
        again = np.arange(len(areas))
        features: list[bytes] = [b""] * len(areas)
    elif previous.areas == areas:
        again = np.flatnonzero((previous.shown != shown).any(axis=1))
        features = list(previous.features)
    else:
        before = np.array([previous.rows.get(area, -1) for area in areas], dtype=np.intp)
        found = before >= 0
        same = np.zeros(len(areas), dtype=np.bool_)
        same[found] = (previous.shown[before[found]] == shown[found]).all(axis=1)
        again = np.flatnonzero(~same)
        # Areas it did not show are written below, in their place.
        features = [previous.features[row] if row >= 0 else b"" for row in before.tolist()]
    written = area_features(
        key,
        [areas[index] for index in again.tolist()],
        [geometry(areas[index]) for index in again.tolist()],
        area_properties(measures, leader, values[again], masked[again]),
    )
    for index, feature_bytes in zip(again.tolist(), written, strict=True):
        features[index] = feature_bytes
    return Rendered(areas, shown, features)


def area_features(
    key: str,
    areas: Sequence[str],
    geometries: Sequence[bytes],
    properties: Sequence[bytes],
) -> list[bytes]:
    """Each area's GeoJSON feature, named by ``key`` in its properties, around its
    serialised geometry and other properties (the members of a JSON object, as
    ``area_properties`` writes them)."""
    features = []
    for area, geometry, members in zip(areas, geometries, properties, strict=True):
        name = orjson.dumps(area)
        features.append(
            b"".join(
                (
                    b'{"type":"Feature","id":',
                    name,
                    b',"geometry":',
                    geometry,
                    b',"properties":{"',
                    key.encode(),
                    b'":',
                    name,
                    b",",
                    members,
                    b"}}",
                )
            )
        )
    return features


def area_properties(
    measures: Sequence[str],
    leader: str,
    values: npt.NDArray[np.int64],
    masked: npt.NDArray[np.bool_],
) -> list[bytes]:
    """Each area's published ``measures`` (``null`` where masked), whether it is hidden
    (its ``leader`` is) and which counts are, as the members of a JSON object.

    The counts are written by orjson, an object per area; the flags, the same for
    every area of one pattern of masks, once per pattern. A pattern is numbered by its
    masks as bits, so finding its flags hashes an int."""
    names = list(measures)
    patterns = (masked @ (1 << np.arange(len(measures)))).tolist()
    shown = values.astype(object)
    shown[masked] = None
    flags: dict[int, bytes] = {}
    written = []
    for row, pattern in zip(shown.tolist(), patterns, strict=True):
        members = flags.get(pattern)
        if members is None:
            members = flags[pattern] = _flags(measures, leader, pattern)
        written.append(orjson.dumps(dict(zip(names, row, strict=True)))[1:-1] + members)
    return written


def _flags(measures: Sequence[str], leader: str, pattern: int) -> bytes:
    """``,"suppressed":...,"suppressed_counts":[...]`` of one pattern of masks."""
    hidden = [measure for slot, measure in enumerate(measures) if pattern >> slot & 1]
    return b"," + orjson.dumps({"suppressed": leader in hidden, "suppressed_counts": hidden})[1:-1]


@dataclass(frozen=True)
class _Kept:
    generation: int
    published: PublishedMap


def _feature_count(kept: _Kept) -> int:
    return kept.published.size


class PublishedMapCache:
    """Published maps by request, within a budget of features; safe across threads."""

    def __init__(self, max_features: int) -> None:
        self.max_features = max_features
        self._kept: LRUCache[Hashable, _Kept] = LRUCache(max_features, getsizeof=_feature_count)
        self._lock = threading.Lock()

    def publish(
        self,
        session: Session,
        key: Hashable,
        build: Callable[[PublishedMap | None], PublishedMap],
    ) -> PublishedMap:
        """The map ``key`` names, from here if the counters have not changed since it was
        built, else from ``build`` (run in the caller's transaction, given the version
        kept before, if any, to start from) and kept."""
        # Read before the counters: a change committed in between is in what ``build``
        # reads, and only makes the kept map newer than its generation says.
        current = generation(session)
        with self._lock:
            kept = self._kept.get(key)
        if kept is not None and kept.generation == current:
            return kept.published
        published = build(kept.published if kept is not None else None)
        if published.size <= self.max_features:
            with self._lock:
                self._kept[key] = _Kept(current, published)
        return published

    def __len__(self) -> int:
        return len(self._kept)

    def invalidate(self) -> None:
        with self._lock:
            self._kept.clear()
