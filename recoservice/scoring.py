"""Scoring for the recommend routes and batch jobs: item ids in, recommendation dicts out.

``Scorer`` keeps loaded builds (``SarModel`` plus the id ↔ index maps and catalog names) in a
small cache keyed by ``(model_id, build_id)`` and scores all requests of a call in ONE
vectorised ``SarModel`` call; only the output dicts are built per request.

Reasoning strings (as the v4 service wrote them):

- one known seed: ``People who like '<seed name>' also like '<item name>'``;
- several known seeds: ``People who like the selected items also like '<item name>'``;
- user-to-item: ``People who like the items you used also like '<item name>'``;
- popular items added by backfilling: ``'<item name>' is popular``.

Unknown seeds are ignored. A request none of whose seeds is in the catalog (or an unknown
user) gets no recommendations and an ``error`` sentence; batch jobs write it to the error blob.

Errors (``ApiError``): unknown model 404 ``ModelNotFound``; no active build 409
``NoActiveBuild``; unknown build 404 ``BuildNotFound``; build not Succeeded 409
``BuildNotReady``; user recommendations on a build with ``enableU2I`` false 400.
"""

from __future__ import annotations

import gc
import threading
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from recoservice.errors import ApiError
from recoservice.sar import SarModel
from recoservice.state import State

CACHE_SIZE = 8
_RESOLVED_MAX = 1024
SEVERAL_SEEDS = "People who like the selected items also like"
USER_REASON = "People who like the items you used also like"
NO_SEED_KNOWN = "none of the seed items are in the catalog"
# RawScores.reason values other than a seed's item index.
NONE_KNOWN, SEVERAL, USER = -1, -2, -3


@dataclass
class ScoredRequest:
    """The recommendations of one request, or why there are none."""

    recommendations: list[dict[str, Any]] = field(default_factory=list)
    error: str | None = None


@dataclass
class LoadedBuild:
    """A build ready to score: the model, its item/user ids and catalog fields by index."""

    model: SarModel
    item_ids: list[str]
    item_index: dict[str, int]
    user_index: dict[str, int]
    names: list[str]
    metadata: list[str]
    quoted: list[str] = field(default_factory=list)          # " '<name>'" per item
    popular_reason: list[str] = field(default_factory=list)  # "'<name>' is popular"
    # Pre-encoded output pieces, built once per build by their users (batch_output).
    encoded: dict[Any, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.quoted = [f" '{name}'" for name in self.names]
        self.popular_reason = [f"'{name}' is popular" for name in self.names]


@dataclass
class RawScores:
    """Scores of many requests as plain lists, before any output is built.

    ``idx[r]``, ``score[r]`` (rounded to 6 decimals), ``fill[r]`` (backfilled?) hold ``k``
    entries each, padded with -1; ``reason[r]`` says which reasoning applies (see
    ``Scorer.score_items``).
    """

    built: LoadedBuild
    reason: list[int]
    idx: list[list[int]]
    score: list[list[float]]
    fill: list[list[bool]]


def load_ids(path) -> tuple[list[str], list[str]]:
    with np.load(path, allow_pickle=False) as npz:
        return npz["item_ids"].tolist(), npz["user_ids"].tolist()


def save_ids(path, item_ids: Sequence[str], user_ids: Sequence[str]) -> None:
    with open(path, "wb") as fh:  # a file object keeps numpy from renaming the file
        np.savez(fh, item_ids=np.asarray(item_ids, dtype=str),
                 user_ids=np.asarray(user_ids, dtype=str))


class Scorer:
    """Recommendations from built models, for routes and batch jobs (thread-safe)."""

    def __init__(self, state: State) -> None:
        self.state = state
        self._cache: OrderedDict[tuple[str, int], LoadedBuild] = OrderedDict()
        self._lock = threading.Lock()
        self._load_lock = threading.Lock()
        self._forgotten: dict[str, int] = {}  # model id → times forget() was called
        # (model id, build id asked for) → (State.writes when read, build id to use)
        self._resolved: dict[tuple[str, int | None], tuple[int, int]] = {}
        # model id → catalog_meta.modified last seen: with a shared database another replica
        # may change a catalog, and the builds loaded here must then be read again.
        self._catalogs: dict[str, str | None] = {}

    # -- builds --------------------------------------------------------------------------------

    def resolve_build(self, model_id: str, build_id: int | None) -> int:
        """The build to score with: ``build_id`` or the model's active build (see errors).

        One statement (it runs for every single call): the model, its active build and the
        chosen build's status together; and not even that while no write transaction has
        committed since the same question was answered (``State.writes``), when this process
        is the only writer. With a shared database the statement runs every time and also
        reads when the catalog last changed, so a catalog uploaded through another replica
        drops the builds loaded here (``forget``).
        """
        writes = self.state.writes  # read before the query: a write during it invalidates
        known = self._resolved.get((model_id, build_id))
        if known is not None and known[0] == writes and self.state.cache_reads:
            return known[1]
        resolved, catalog = self._resolve_build(model_id, build_id)
        if not self.state.cache_reads:
            seen = self._catalogs.get(model_id, catalog)
            self._catalogs[model_id] = catalog
            if seen != catalog:
                self.forget(model_id)
        if len(self._resolved) >= _RESOLVED_MAX:
            self._resolved.clear()
        self._resolved[(model_id, build_id)] = (writes, resolved)
        return resolved

    def _resolve_build(self, model_id: str, build_id: int | None) -> tuple[int, str | None]:
        row = self.state.read_one(
            "SELECT m.active_build_id AS active, b.id AS found, b.status AS status, "
            "(SELECT c.modified FROM catalog_meta c WHERE c.model_id = m.id) AS catalog "
            "FROM models m LEFT JOIN builds b ON b.model_id = m.id "
            "AND b.id = COALESCE(?, m.active_build_id) WHERE m.id = ?", (build_id, model_id))
        if row is None:
            raise ApiError(404, "ModelNotFound", f"Model '{model_id}' does not exist.")
        if build_id is None:
            build_id = row["active"]
            if build_id is None:
                raise ApiError(409, "NoActiveBuild",
                               f"Model '{model_id}' has no active build; build it first "
                               "(POST /models/{id}/builds) or name a buildId.")
        if row["found"] is None:
            raise ApiError(404, "BuildNotFound",
                           f"Model '{model_id}' has no build {build_id}.")
        if row["status"] != "Succeeded":
            raise ApiError(409, "BuildNotReady",
                           f"Build {build_id} is {row['status']}; only a Succeeded build "
                           "can score.")
        return int(build_id), row["catalog"]

    def load(self, model_id: str, build_id: int | None) -> LoadedBuild:
        """The loaded build (cached; at most ``CACHE_SIZE`` builds stay in memory)."""
        build_id = self.resolve_build(model_id, build_id)
        key = (model_id, build_id)
        loaded = self.cached(model_id, build_id)
        if loaded is not None:
            return loaded
        # Disk loads take seconds: one at a time, and never while holding the cache lock,
        # so a look-up of a cached build (``cached``, from the event loop) never waits on one.
        with self._load_lock:
            loaded = self.cached(model_id, build_id)
            if loaded is not None:
                return loaded
            with self._lock:
                generation = self._forgotten.get(model_id, 0)
            loaded = self._read(model_id, build_id)
            with self._lock:
                if self._forgotten.get(model_id, 0) != generation:
                    return loaded  # forgotten while read (catalog changed): do not cache
                self._cache[key] = loaded
                while len(self._cache) > CACHE_SIZE:
                    self._cache.popitem(last=False)
            return loaded

    def cached(self, model_id: str, build_id: int) -> LoadedBuild | None:
        """The build if it is loaded already (a resolved ``build_id``), else ``None``; fast."""
        key = (model_id, build_id)
        with self._lock:
            loaded = self._cache.get(key)
            if loaded is not None:
                self._cache.move_to_end(key)
            return loaded

    def _read(self, model_id: str, build_id: int) -> LoadedBuild:
        model = SarModel.load(self.state.fetch(self.state.build_path(model_id, build_id)))
        model.prepare()  # the ranked rows, here on a worker thread, not on the event loop
        item_ids, user_ids = load_ids(self.state.fetch(self.state.ids_path(model_id, build_id)))
        with self.state.db(write=False) as conn:
            rows = {r["item_id"]: (r["name"], r["metadata"]) for r in conn.execute(
                "SELECT item_id, name, metadata FROM catalog_items WHERE model_id = ?",
                (model_id,))}
        names = [rows.get(i, (i, ""))[0] for i in item_ids]
        metadata = [rows.get(i, (i, ""))[1] for i in item_ids]
        return LoadedBuild(model, item_ids, {i: n for n, i in enumerate(item_ids)},
                           {u: n for n, u in enumerate(user_ids)}, names, metadata)

    def forget(self, model_id: str) -> None:
        """Drop cached builds of a model (its catalog changed or it was deleted)."""
        with self._lock:
            self._forgotten[model_id] = self._forgotten.get(model_id, 0) + 1
            for key in [k for k in self._cache if k[0] == model_id]:
                del self._cache[key]

    # -- scoring -------------------------------------------------------------------------------

    def score_items(self, model_id: str, build_id: int | None,
                    seed_lists: Sequence[Sequence[str]], k: int,
                    minimal_score: float = 0.0) -> RawScores:
        """Item-to-item scores for every seed list, in ONE vectorised call, as plain lists.

        ``reason[r]`` is the index of the one known seed (its name goes into the reasoning),
        ``SEVERAL`` for several known seeds, ``NONE_KNOWN`` when no seed is in the catalog.
        """
        _check_k(k)
        built = self.load(model_id, build_id)
        indptr, indices = [0], []
        reason = []
        for seeds in seed_lists:
            # dict.fromkeys: drop repeated seeds, keep their order for the reasoning.
            known = [built.item_index[s] for s in dict.fromkeys(seeds)
                     if s in built.item_index]
            indices.extend(known)
            indptr.append(len(indices))
            reason.append(known[0] if len(known) == 1 else SEVERAL if known else NONE_KNOWN)
        idx, score, fill = _as_lists(*built.model.recommend_items(
            np.asarray(indptr, dtype=np.int64), np.asarray(indices, dtype=np.int64), k,
            minimal_score=minimal_score, return_backfill=True))
        return RawScores(built, reason, idx, score, fill)

    def score_users(self, model_id: str, build_id: int | None, user_ids: Sequence[str],
                    k: int, minimal_score: float = 0.0) -> RawScores:
        """User-to-item scores for every user id, as plain lists (``reason``: ``USER`` for a
        known user, ``NONE_KNOWN`` for an unknown one)."""
        _check_k(k)
        built = self.load(model_id, build_id)
        users = [built.user_index.get(u, -1) for u in user_ids]
        try:
            idx, score, fill = _as_lists(*built.model.recommend_users(
                np.asarray(users, dtype=np.int64), k, minimal_score=minimal_score,
                return_backfill=True))
        except ValueError as exc:
            raise ApiError(400, "BadArgument",
                           f"This build cannot recommend for users: {exc}.") from exc
        reason = [USER if u >= 0 else NONE_KNOWN for u in users]
        return RawScores(built, reason, idx, score, fill)

    def recommend_items(self, model_id: str, build_id: int | None,
                        seed_lists: Sequence[Sequence[str]], k: int,
                        include_metadata: bool = False,
                        minimal_score: float = 0.0) -> list[ScoredRequest]:
        """Item-to-item recommendations for every seed list, in order."""
        if len(seed_lists) == 1:
            _check_k(k)
            return [self.recommend_one(self.load(model_id, build_id), seed_lists[0], k,
                                       include_metadata, minimal_score)]
        raw = self.score_items(model_id, build_id, seed_lists, k, minimal_score)
        built = raw.built
        out = []
        with _gc_paused():
            for r, why in enumerate(raw.reason):
                if why == NONE_KNOWN:
                    out.append(ScoredRequest(error=NO_SEED_KNOWN))
                    continue
                because = (SEVERAL_SEEDS if why == SEVERAL
                           else f"People who like '{built.names[why]}' also like")
                out.append(ScoredRequest(_recs(built, raw.idx[r], raw.score[r], raw.fill[r],
                                               because, include_metadata)))
        return out

    @staticmethod
    def recommend_one(built: LoadedBuild, seeds: Sequence[str], k: int,
                      include_metadata: bool = False,
                      minimal_score: float = 0.0) -> ScoredRequest:
        """One item-to-item request on a loaded build (single calls): a fraction of a
        millisecond, so the recommend route runs it on the event loop. Same results as in bulk
        (``SarModel.recommend_one``)."""
        _check_k(k)
        known = [built.item_index[s] for s in dict.fromkeys(seeds) if s in built.item_index]
        if not known:
            return ScoredRequest(error=NO_SEED_KNOWN)
        idx, score, fill = built.model.recommend_one(known, k, minimal_score=minimal_score)
        because = (f"People who like '{built.names[known[0]]}' also like"
                   if len(known) == 1 else SEVERAL_SEEDS)
        rounded = np.round(np.asarray(score, dtype=np.float64), 6).tolist()
        return ScoredRequest(_recs(built, idx, rounded, fill, because, include_metadata))

    def recommend_users(self, model_id: str, build_id: int | None, user_ids: Sequence[str],
                        k: int, include_metadata: bool = False,
                        minimal_score: float = 0.0) -> list[ScoredRequest]:
        """User-to-item recommendations for every user id, in order."""
        raw = self.score_users(model_id, build_id, user_ids, k, minimal_score)
        out = []
        with _gc_paused():
            for r, why in enumerate(raw.reason):
                if why == NONE_KNOWN:
                    out.append(ScoredRequest(error=unknown_user(user_ids[r])))
                    continue
                out.append(ScoredRequest(_recs(raw.built, raw.idx[r], raw.score[r],
                                               raw.fill[r], USER_REASON, include_metadata)))
        return out


def unknown_user(user_id: object) -> str:
    return f"user '{user_id}' is not in the usage data"


_gc_lock = threading.Lock()
_gc_users = 0
_gc_was_enabled = False


@contextmanager
def _gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector while output dicts are built.

    Building ~10 dicts and lists per request for 100,000 requests makes the collector run
    again and again over the growing, cycle-free result; pausing it halves scoring time. A
    counter keeps it paused until the last concurrent scorer is done (gc state is global),
    then restores what the first one found.
    """
    global _gc_users, _gc_was_enabled
    with _gc_lock:
        if _gc_users == 0:
            _gc_was_enabled = gc.isenabled()
            gc.disable()
        _gc_users += 1
    try:
        yield
    finally:
        with _gc_lock:
            _gc_users -= 1
            if _gc_users == 0 and _gc_was_enabled:
                gc.enable()


def _check_k(k: int) -> None:
    if not isinstance(k, int) or isinstance(k, bool) or not 1 <= k <= 100:
        raise ApiError(400, "BadArgument", "numberOfResults must be an integer from 1 to 100.")


def _recs(built: LoadedBuild, idx: list[int], score: list[float], fill: list[bool],
          because: str, include_metadata: bool) -> list[dict[str, Any]]:
    """Output dicts of one request (inputs are plain lists: numpy scalars cost ~10x more)."""
    recs = []
    for item, rating, backfilled in zip(idx, score, fill, strict=True):
        if item < 0:
            break
        recs.append({"itemId": built.item_ids[item], "name": built.names[item],
                     "metadata": built.metadata[item] if include_metadata else "",
                     "rating": rating,
                     "reasoning": [built.popular_reason[item] if backfilled
                                   else because + built.quoted[item]]})
    return recs


def _as_lists(idx: np.ndarray, score: np.ndarray,
              fill: np.ndarray) -> tuple[list, list, list]:
    """Whole result matrices as nested lists, ratings rounded to 6 decimals, in one go."""
    return idx.tolist(), np.round(score.astype(np.float64), 6).tolist(), fill.tolist()
