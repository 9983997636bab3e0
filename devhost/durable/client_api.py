"""The Durable HTTP management API that ``DurableOrchestrationClient`` and its URLs call.

Served twice by devhost: under ``/durabletask/`` (the client's ``rpcBaseUrl``; loopback only and
keyless, like the host's local RPC endpoint) and under ``/runtime/webhooks/durabletask/`` (the
public management URLs of ``create_check_status_response``, which need the system key, sent as
``code=`` in those URLs). Status codes follow the Durable extension's HttpApiHandler, since the
SDK switches on them.
"""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from typing import Any

from aiohttp import web

from devhost.durable import events as ev
from devhost.durable.clock import iso, parse_iso
from devhost.durable.orchestrations import Engine
from devhost.durable.store import TERMINAL, post_event

RPC_PREFIX = "/durabletask"
WEBHOOK_PREFIX = "/runtime/webhooks/durabletask"
TASK_HUB = "DevHostHub"
CONTINUATION_HEADER = "x-ms-continuation-token"
DEFAULT_PAGE_SIZE = 100


class ClientApi:
    """Routes of the management API on top of the ``Engine``."""

    def __init__(self, engine: Engine, base_url: str, master_key: str,
                 task_hub: str = TASK_HUB) -> None:
        self.engine = engine
        self.store = engine.store
        self.base_url = base_url
        self.master_key = master_key
        self.task_hub = task_hub  # host.json durableTask.hubName, resolved

    # -- the client binding ------------------------------------------------------------------

    def binding_json(self) -> str:
        """The JSON string the worker hands to a ``durable_client_input`` parameter."""
        hook = f"{self.base_url}{WEBHOOK_PREFIX}"
        query = f"taskHub={self.task_hub}&connection=Storage&code={self.master_key}"
        create = f"{hook}/orchestrators/{{functionName}}[/{{instanceId}}]"
        return json.dumps({
            "taskHubName": self.task_hub,
            "creationUrls": {
                "createNewInstancePostUri": f"{create}?{query}",
                "createAndWaitOnNewInstancePostUri":
                    f"{create}?timeout={{timeoutInSeconds}}&pollingInterval="
                    f"{{intervalInSeconds}}&{query}",
            },
            "managementUrls": self.management_urls("INSTANCEID"),
            "baseUrl": hook,
            "requiredQueryStringParameters": query,
            "rpcBaseUrl": f"{self.base_url}{RPC_PREFIX}/",
        })

    def management_urls(self, instance_id: str) -> dict[str, str]:
        hook = f"{self.base_url}{WEBHOOK_PREFIX}/instances/{instance_id}"
        query = f"taskHub={self.task_hub}&connection=Storage&code={self.master_key}"
        return {
            "id": instance_id,
            "statusQueryGetUri": f"{hook}?{query}",
            "sendEventPostUri": f"{hook}/raiseEvent/{{eventName}}?{query}",
            "terminatePostUri": f"{hook}/terminate?reason={{text}}&{query}",
            "rewindPostUri": f"{hook}/rewind?reason={{text}}&{query}",
            "purgeHistoryDeleteUri": f"{hook}?{query}",
            "restartPostUri": f"{hook}/restart?{query}",
            "suspendPostUri": f"{hook}/suspend?reason={{text}}&{query}",
            "resumePostUri": f"{hook}/resume?reason={{text}}&{query}",
        }

    def add_routes(self, app: web.Application, prefix: str) -> None:
        app.router.add_post(f"{prefix}/orchestrators/{{name}}", self.start)
        app.router.add_post(f"{prefix}/orchestrators/{{name}}/{{instance_id}}", self.start)
        app.router.add_get(f"{prefix}/instances/", self.list_instances)
        app.router.add_get(f"{prefix}/instances", self.list_instances)
        app.router.add_delete(f"{prefix}/instances/", self.purge_many)
        app.router.add_get(f"{prefix}/instances/{{instance_id}}", self.status)
        app.router.add_delete(f"{prefix}/instances/{{instance_id}}", self.purge)
        app.router.add_post(f"{prefix}/instances/{{instance_id}}/terminate", self.terminate)
        app.router.add_post(f"{prefix}/instances/{{instance_id}}/raiseEvent/{{event}}",
                            self.raise_event)
        for verb in ("rewind", "suspend", "resume", "restart"):
            app.router.add_post(f"{prefix}/instances/{{instance_id}}/{verb}", self.unsupported)

    # -- handlers ----------------------------------------------------------------------------

    async def start(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        instance_id = request.match_info.get("instance_id") or uuid.uuid4().hex
        if name not in self.engine.orchestrators:
            return _error(400, "One or more of the arguments submitted is incorrect",
                          f"The function '{name}' doesn't exist, is disabled, or is not an "
                          "orchestrator function.", "System.ArgumentException")
        try:
            input_text = _json_text(await request.read())
        except ValueError:
            return _error(400, "Invalid JSON content", "The request body is not valid JSON.",
                          "Newtonsoft.Json.JsonReaderException")
        with self.store.tx() as db:
            row = db.execute("SELECT status FROM instances WHERE id=?", (instance_id,)).fetchone()
            if row is not None and row["status"] not in TERMINAL:
                # what the extension's StartNewAsync throws; its HTTP API answers 500 with it
                return _error(500, "An error has occurred.",
                              f"An Orchestration instance with the status {row['status']} "
                              "already exists.", "System.InvalidOperationException")
            self.engine.create_instance(db, name, instance_id, input_text)
        payload = self.management_urls(instance_id)
        return web.json_response(payload, status=202,
                                 headers={"Location": payload["statusQueryGetUri"]})

    async def status(self, request: web.Request) -> web.Response:
        row = self.store.instance(request.match_info["instance_id"])
        if row is None:
            # a JSON string body: the SDK turns it into a status whose runtime_status is None
            return web.json_response("Instance not found", status=404)
        body = self._status_json(row, request.query)
        code = 202 if row["status"] in ("Pending", "Running") else 200
        if row["status"] == "Failed" and _flag(request.query, "returnInternalServerErrorOnFailure"):
            code = 500
        headers = {}
        if code == 202:
            headers["Location"] = str(request.url)
            headers["Retry-After"] = "1"
        return web.json_response(body, status=code, headers=headers)

    async def list_instances(self, request: web.Request) -> web.Response:
        """One page, as the extension's HttpApiHandler pages: ``top`` (default 100, the
        extension's ``OrchestrationStatusQueryCondition.PageSize``), the token of the next page
        in the ``x-ms-continuation-token`` response header (empty on the last page), sent back
        in the same request header. devhost's token is the last (created, id) of the page."""
        try:
            top = int(request.query.get("top") or DEFAULT_PAGE_SIZE)
            after = _read_token(request.headers.get(CONTINUATION_HEADER))
        except ValueError:
            return _error(400, "Invalid paging", "top or the continuation token is not valid.",
                          "System.ArgumentException")
        rows = sorted(self._filter(request.query), key=lambda r: (r["created"], str(r["id"])))
        if after is not None:
            rows = [r for r in rows if (r["created"], str(r["id"])) > after]
        page, more = rows[:max(top, 1)], len(rows) > max(top, 1)
        token = _make_token(page[-1]) if more else ""
        return web.json_response([self._status_json(r, request.query) for r in page],
                                 headers={CONTINUATION_HEADER: token})

    async def purge(self, request: web.Request) -> web.Response:
        instance_id = request.match_info["instance_id"]
        with self.store.tx() as db:
            deleted = _purge(db, instance_id)
        if not deleted:
            return web.Response(status=404)
        return web.json_response({"instancesDeleted": 1})

    async def purge_many(self, request: web.Request) -> web.Response:
        rows = [r for r in self._filter(request.query) if r["status"] in TERMINAL]
        with self.store.tx() as db:
            count = sum(_purge(db, str(r["id"])) for r in rows)
        if not count:
            return web.Response(status=404)
        return web.json_response({"instancesDeleted": count})

    async def terminate(self, request: web.Request) -> web.Response:
        instance_id = request.match_info["instance_id"]
        with self.store.tx() as db:
            row = db.execute("SELECT status FROM instances WHERE id=?", (instance_id,)).fetchone()
            if row is None:
                return web.Response(status=404)
            if row["status"] in TERMINAL:
                return web.Response(status=410)
            self.engine.terminate(db, instance_id, request.query.get("reason", ""))
        return web.Response(status=202)

    async def raise_event(self, request: web.Request) -> web.Response:
        instance_id = request.match_info["instance_id"]
        try:
            data = _json_text(await request.read())
        except ValueError:
            return _error(400, "Only application/json request content is supported", "", "")
        with self.store.tx() as db:
            row = db.execute("SELECT status, execution FROM instances WHERE id=?",
                             (instance_id,)).fetchone()
            if row is None:
                return web.Response(status=404)
            if row["status"] in TERMINAL:
                return web.Response(status=410)
            raised = ev.event(ev.EVENT_RAISED, self.engine.clock.now(),
                              Name=request.match_info["event"], Input=data)
            post_event(db, instance_id, int(row["execution"]), raised)
        self.engine.wake()
        return web.Response(status=202)

    async def unsupported(self, request: web.Request) -> web.Response:
        return _error(501, "Not implemented by devhost", "rewind, suspend, resume and restart "
                      "are not implemented by devhost", "System.NotImplementedException")

    # -- helpers -----------------------------------------------------------------------------

    def _filter(self, query: Any) -> list[Any]:
        rows = self.store.query("SELECT * FROM instances ORDER BY created")
        statuses = {s for s in query.get("runtimeStatus", "").split(",") if s}
        prefix = query.get("instanceIdPrefix", "")
        since = parse_iso(query["createdTimeFrom"]) if query.get("createdTimeFrom") else None
        until = parse_iso(query["createdTimeTo"]) if query.get("createdTimeTo") else None
        return [r for r in rows
                if (not statuses or r["status"] in statuses) and str(r["id"]).startswith(prefix)
                and (since is None or r["created"] >= since)
                and (until is None or r["created"] <= until)]

    def _status_json(self, row: Any, query: Any) -> dict[str, Any]:
        body: dict[str, Any] = {
            "name": row["name"], "instanceId": row["id"], "runtimeStatus": row["status"],
            "createdTime": iso(row["created"]), "lastUpdatedTime": iso(row["updated"]),
            "customStatus": _loads(row["custom_status"]), "output": _loads(row["output"]),
        }
        if query.get("showInput", "true").lower() != "false":
            body["input"] = _loads(row["input"])
        if _flag(query, "showHistory"):
            body["historyEvents"] = body["history"] = [
                _public_event(e, _flag(query, "showHistoryOutput"))
                for e in self.store.history(str(row["id"]))
                if e["EventType"] not in (ev.ORCHESTRATOR_STARTED, ev.ORCHESTRATOR_COMPLETED)]
        return body


def _json_text(body: bytes) -> str | None:
    """The input as JSON text. The SDK posts ``json.dumps(json_text)``; curl posts the JSON."""
    if not body.strip():
        return None
    value = json.loads(body)
    if isinstance(value, str):
        try:
            json.loads(value)
            return value
        except ValueError:
            pass
    return json.dumps(value)


def _make_token(row: Any) -> str:
    raw = json.dumps([row["created"], str(row["id"])]).encode()
    return base64.urlsafe_b64encode(raw).decode()


def _read_token(token: str | None) -> tuple[Any, str] | None:
    """The (created, id) a continuation token stands for; ``ValueError`` for a foreign one."""
    if not token or token == "null":
        return None
    try:
        created, instance_id = json.loads(base64.urlsafe_b64decode(token.encode()))
    except (ValueError, TypeError, binascii.Error):
        raise ValueError(token) from None
    if not isinstance(instance_id, str) or not isinstance(created, (int, float, str)):
        raise ValueError(token)
    return created, instance_id


def _loads(text: str | None) -> Any:
    return None if text is None else json.loads(text)


def _flag(query: Any, name: str) -> bool:
    return str(query.get(name, "false")).lower() == "true"


def _error(status: int, message: str, exception: str, exception_type: str) -> web.Response:
    return web.json_response({"Message": message, "ExceptionMessage": exception,
                              "ExceptionType": exception_type}, status=status)


def _public_event(event: dict[str, Any], with_output: bool) -> dict[str, Any]:
    out: dict[str, Any] = {"EventType": ev.EVENT_NAMES.get(event["EventType"],
                                                           str(event["EventType"])),
                           "Timestamp": event["Timestamp"]}
    for key in ("EventId", "TaskScheduledId", "TimerId", "Name", "InstanceId", "FireAt",
                "Reason"):
        if key in event and event[key] not in (None, -1):
            out["FunctionName" if key == "Name" else key] = event[key]
    if with_output:
        for key in ("Result", "Input", "Details"):
            if event.get(key) is not None:
                out[key] = event[key]
    return out


def _purge(db: Any, instance_id: str) -> int:
    removed = db.execute("DELETE FROM instances WHERE id=?", (instance_id,)).rowcount
    for table in ("history", "inbox", "work"):
        db.execute(f"DELETE FROM {table} WHERE instance_id=?", (instance_id,))  # noqa: S608
    return int(removed)

