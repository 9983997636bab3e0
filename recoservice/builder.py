"""SAR builds: parse build requests, then fit, save and activate a model in a thread.

Build types (``buildType``, case-insensitive) all build a SAR model; they differ in defaults:

============== ============================================================================
``sar``        SAR with the defaults below, overridden by ``buildParameters.sar``.
``recommendation``  Same defaults as ``sar`` (v4's "Recommendation" build, item-to-item and
               user-to-item); parameters from ``buildParameters.recommendation`` or ``.sar``.
``fbt``        "Frequently bought together": ``cooccurrenceUnit`` ``timestamp`` (items in the
               same basket), ``enableBackfilling`` false, ``enableU2I`` false; parameters
               from ``buildParameters.fbt`` or ``.sar``.
============== ============================================================================

SAR parameters (camelCase, defaults): ``supportThreshold`` 3, ``similarityFunction``
``jaccard`` (cooccurrence|lift|jaccard, any case), ``cooccurrenceUnit`` ``user``
(user|timestamp), ``enableBackfilling`` true, ``allowSeedItemsInRecommendations`` false,
``enableU2I`` true, ``halfLifeInDays`` 30, ``setActive`` true (also accepted at top level):
false keeps the model's active build unchanged. Unknown parameters are refused (400).
"""

from __future__ import annotations

import json
import logging
import threading
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from recoservice.errors import ApiError
from recoservice.imports import EVENT_NAMES
from recoservice.sar import EVENT_WEIGHTS, SarModel, SarParams
from recoservice.scoring import save_ids
from recoservice.state import State, now_iso

log = logging.getLogger("recoservice.builds")

BUILD_TYPES = {"sar": "Sar", "recommendation": "Recommendation", "fbt": "Fbt"}
_TYPE_DEFAULTS: dict[str, dict[str, Any]] = {
    "sar": {},
    "recommendation": {},
    "fbt": {"cooccurrence_unit": "timestamp", "enable_backfilling": False, "enable_u2i": False},
}
# camelCase API name → (SarParams field, expected JSON type, allowed values or None)
_PARAMS: dict[str, tuple[str, type | tuple[type, ...], tuple[str, ...] | None]] = {
    "supportThreshold": ("support_threshold", int, None),
    "similarityFunction": ("similarity", str, ("cooccurrence", "lift", "jaccard")),
    "cooccurrenceUnit": ("cooccurrence_unit", str, ("user", "timestamp")),
    "enableBackfilling": ("enable_backfilling", bool, None),
    "allowSeedItemsInRecommendations": ("allow_seed_items", bool, None),
    "enableU2I": ("enable_u2i", bool, None),
    "halfLifeInDays": ("half_life_days", (int, float), None),
}


@dataclass(frozen=True)
class BuildRequest:
    """A validated ``POST /models/{id}/builds`` body."""

    build_type: str          # API spelling: Sar, Recommendation, Fbt
    description: str
    params: SarParams
    set_active: bool


def _bad(message: str) -> ApiError:
    return ApiError(400, "BadArgument", message)


def parse_build_request(body: dict[str, Any]) -> BuildRequest:
    """Validate a build request body; raise 400 naming the offending field."""
    raw_type = body.get("buildType", "sar")
    if not isinstance(raw_type, str) or raw_type.lower() not in BUILD_TYPES:
        raise _bad(f"Body field 'buildType' must be one of {', '.join(BUILD_TYPES)} "
                   "(case-insensitive).")
    kind = raw_type.lower()
    description = body.get("description", "")
    if not isinstance(description, str) or len(description) > 512:
        raise _bad("Body field 'description' must be a string of at most 512 characters.")
    container = body.get("buildParameters")
    container = {} if container is None else container
    if not isinstance(container, dict):
        raise _bad("Body field 'buildParameters' must be an object.")
    section = kind if kind in container else "sar"
    params_in = container.get(section)
    params_in = {} if params_in is None else params_in
    if not isinstance(params_in, dict):
        raise _bad(f"Body field 'buildParameters.{section}' must be an object.")
    values: dict[str, Any] = dict(_TYPE_DEFAULTS[kind])
    set_active = body.get("setActive", True)
    for name, value in params_in.items():
        where = f"buildParameters.{section}.{name}"
        if name == "setActive":
            set_active = value
            continue
        if name not in _PARAMS:
            raise _bad(f"Body field '{where}' is not a known SAR parameter "
                       f"(known: {', '.join(sorted([*_PARAMS, 'setActive']))}).")
        attr, kind_of, allowed = _PARAMS[name]
        if not isinstance(value, kind_of) or (isinstance(value, bool) and kind_of is not bool):
            raise _bad(f"Body field '{where}' has the wrong type.")
        if allowed is not None:
            value = value.lower()
            if value not in allowed:
                raise _bad(f"Body field '{where}' must be one of {', '.join(allowed)}.")
        if name == "supportThreshold" and value < 1:
            raise _bad(f"Body field '{where}' must be at least 1.")
        if name == "halfLifeInDays" and not value > 0:
            raise _bad(f"Body field '{where}' must be positive.")
        values[attr] = value
    if not isinstance(set_active, bool):
        raise _bad("Body field 'setActive' must be true or false.")
    return BuildRequest(BUILD_TYPES[kind], description, SarParams(**values).validated(),
                        set_active)


def create_build(state: State, model_id: str, request: BuildRequest,
                 operation_id: str | None) -> int:
    """Record a ``NotStarted`` build; return its id."""
    with state.db() as conn:
        build_id = state.next_build_id(conn)
        conn.execute(
            "INSERT INTO builds (id, model_id, description, type, status, params, set_active, "
            "operation_id, modified) VALUES (?, ?, ?, ?, 'NotStarted', ?, ?, ?, ?)",
            (build_id, model_id, request.description, request.build_type,
             json.dumps(asdict(request.params)), int(request.set_active), operation_id,
             now_iso()))
    return build_id


class BuildCancelled(Exception):
    """The build's operation was cancelled."""


def run_build(state: State, model_id: str, build_id: int, operation_id: str | None) -> None:
    """Fit the build's SAR model, save it and (if asked) make it active; never raises.

    Progress goes to the build row and, when given, the operation (10 % data read, 30 % fit
    started, 90 % saved, 100 % done).
    """
    def progress(status: str, percent: int, message: str = "") -> None:
        stamp = now_iso()
        with state.db() as conn:
            conn.execute("UPDATE builds SET status = ?, status_message = ?, modified = ?, "
                         "start_time = COALESCE(start_time, ?), end_time = CASE WHEN ? IN "
                         "('Succeeded', 'Failed', 'Cancelled') THEN ? ELSE end_time END "
                         "WHERE id = ?", (status, message, stamp, stamp, status, stamp,
                                          build_id))
        if operation_id is None:
            return
        if status == "Running":
            # Only NotStarted becomes Running, in one statement: a plain update could
            # overwrite a "Cancelling" that arrived meanwhile.
            state.claim(operation_id)
            state.update_operation(operation_id, percent_complete=percent, message=message)
        else:
            state.update_operation(operation_id, status=status, percent_complete=percent,
                                   message=message)

    def check_cancel() -> None:
        if operation_id is not None and state.is_cancel_requested(operation_id):
            raise BuildCancelled

    try:
        progress("Running", 5)
        check_cancel()
        with state.db() as conn:
            row = conn.execute("SELECT params, set_active FROM builds WHERE id = ?",
                               (build_id,)).fetchone()
        params = SarParams(**json.loads(row["params"]))
        item_ids, users, items, times, weights, user_ids = _load_usage(state, model_id)
        progress("Running", 10)
        check_cancel()
        model = SarModel.fit(users, items, times, weights, len(user_ids), len(item_ids), params)
        check_cancel()
        model.save(state.build_path(model_id, build_id))
        save_ids(state.ids_path(model_id, build_id), item_ids, user_ids)
        state.publish(state.build_path(model_id, build_id))
        state.publish(state.ids_path(model_id, build_id))
        progress("Running", 90)
        check_cancel()
        # One transaction: a poller never sees Succeeded without the result or activation.
        with state.db() as conn:
            if row["set_active"]:
                conn.execute("UPDATE models SET active_build_id = ? WHERE id = ?",
                             (build_id, model_id))
            if operation_id is not None:
                state.update_operation(operation_id, result={"buildId": build_id})
            progress("Succeeded", 100, f"Built from {len(items)} usage events, "
                     f"{len(user_ids)} users, {len(item_ids)} catalog items.")
    except BuildCancelled:
        progress("Cancelled", 100, "The build was cancelled.")
    except ApiError as exc:
        progress("Failed", 100, exc.message)
    except Exception as exc:  # a failed build must be reported, never kill the service
        log.exception("build %s of model %s failed", build_id, model_id)
        progress("Failed", 100, f"The build failed: {type(exc).__name__}: {exc}")


def _load_usage(state: State, model_id: str):
    """Catalog item ids (index order) and all usage as index arrays; error if either is empty."""
    with state.db() as conn:
        item_ids = [r[0] for r in conn.execute(
            "SELECT item_id FROM catalog_items WHERE model_id = ? ORDER BY seq", (model_id,))]
        file_ids = [r[0] for r in conn.execute(
            "SELECT id FROM usage_files WHERE model_id = ? ORDER BY created, id", (model_id,))]
    if not item_ids:
        raise ApiError(400, "NoCatalog", "The model has no catalog; upload one before building.")
    catalog = {item: n for n, item in enumerate(item_ids)}
    parts = []
    for file_id in file_ids:
        with np.load(state.fetch(state.usage_path(model_id, file_id)),
                     allow_pickle=False) as npz:
            parts.append({name: npz[name] for name in npz.files})
    if not parts or not sum(len(p["ts"]) for p in parts):
        raise ApiError(400, "NoUsage", "The model has no usage data; upload some before "
                       "building.")
    # Each file dictionary-encodes its ids; map them to catalog indices and global users.
    items = np.concatenate([
        np.asarray([catalog[i] for i in p["item_ids"].tolist()], dtype=np.int64)[p["item_code"]]
        if len(p["item_ids"]) else np.zeros(0, dtype=np.int64) for p in parts])
    user_ids, inverse = np.unique(np.concatenate([p["user_ids"] for p in parts]),
                                  return_inverse=True)
    offsets = np.cumsum([0] + [len(p["user_ids"]) for p in parts])
    users = np.concatenate([inverse[offsets[n] + p["user_code"]] for n, p in enumerate(parts)])
    weights = np.asarray([EVENT_WEIGHTS[name] for name in EVENT_NAMES], dtype=np.float64)
    events = np.concatenate([p["event"] for p in parts]).astype(np.int64)
    times = np.concatenate([p["ts"] for p in parts])
    return (item_ids, users.astype(np.int64), items, times, weights[events],
            user_ids.tolist())


def start_build(state: State, model_id: str, build_id: int, operation_id: str | None) -> None:
    """Run the build in a daemon thread (a stuck build must not keep the process alive)."""
    threading.Thread(target=run_build, args=(state, model_id, build_id, operation_id),
                     name=f"build-{build_id}", daemon=True).start()
