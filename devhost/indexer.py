"""Index a v2-model function app the way the Python worker does, and call its functions.

``function_app.py`` is imported from the app folder (which goes on ``sys.path``, so the app's
own packages import), its ``FunctionApp``/``DFApp`` object is found, and every function becomes a
``FunctionInfo`` with its trigger and bindings. A binding devhost cannot serve stops the start
with a message naming the function and the binding type.

The bindings are the *raw bindings* the worker sends the host (its ``loader.get_fx_raw_bindings``
in azure-functions-python-worker / azure-functions-runtime): the decorators' JSON, or, when a
parameter is annotated with an SDK type of an ``azurefunctions-extensions-bindings-*`` package
(e.g. ``blob.BlobClient``), the base extension's JSON with ``"properties":
{"SupportsDeferredBinding": true}`` on that binding. That flag makes the host send a reference
to the blob (model binding data) instead of its content.
"""

from __future__ import annotations

import asyncio
import importlib.util
import inspect
import json
import sys
import threading
import typing
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import azure.functions as func

TRIGGERS = ("httpTrigger", "blobTrigger", "orchestrationTrigger", "activityTrigger")
# bindings besides the trigger that devhost serves: the durable client and the HTTP output
BINDINGS = ("durableClient", "http")


class IndexError_(Exception):
    """The app cannot be served by devhost (missing app object, unsupported binding)."""


@dataclass
class FunctionInfo:
    """One function of the app: its trigger, its settings and the callable to invoke."""

    name: str
    trigger_type: str
    trigger: dict[str, Any]
    func: Any
    client_binding: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    # the parameters' annotations, resolved as the worker does (typing.get_type_hints)
    pytypes: dict[str, Any] = field(default_factory=dict)

    @property
    def arg_name(self) -> str:
        return str(self.trigger["name"])

    @property
    def deferred(self) -> bool:
        """True when the trigger is bound to an SDK type (the host sends model binding data)."""
        return bool((self.trigger.get("properties") or {}).get("SupportsDeferredBinding"))


def deferred_registry() -> Any:
    """The SDK-type converters' registry, as the worker finds it: only when the app imported
    ``azurefunctions.extensions.base`` (every ``azurefunctions-extensions-bindings-*`` does)."""
    if "azurefunctions.extensions.base" not in sys.modules:
        return None
    import azurefunctions.extensions.base as base

    return base.get_binding_registry()


def raw_bindings(fn: Any) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The function's raw bindings as the worker sends them to the host, and its parameters'
    types.

    The worker resolves annotations with ``typing.get_type_hints`` on the user function; a
    function with an input parameter of a registered SDK type gets its raw bindings from the
    base extension (``get_raw_bindings``), which adds ``SupportsDeferredBinding``.
    """
    user = fn.get_user_function()
    try:
        hints = typing.get_type_hints(user)
    except Exception:  # an annotation that does not resolve: the worker would fail too
        hints = {}
    registry = deferred_registry()
    inputs = {b.name: SimpleNamespace(pytype=hints.get(b.name))
              for b in fn.get_bindings() if _direction(b) != "OUT"}
    if registry is not None and any(registry.check_supported_type(t.pytype)
                                    for t in inputs.values()):
        raw, _logs = registry.get_raw_bindings(fn, inputs)
    else:
        raw = fn.get_raw_bindings()
    return [json.loads(text) for text in raw], hints


def _direction(binding: Any) -> str:
    direction = getattr(binding, "direction", None)
    return str(getattr(direction, "name", direction)).upper()


def load_app(app_dir: Path) -> list[FunctionInfo]:
    """Import ``app_dir/function_app.py`` and describe its functions."""
    script = app_dir / "function_app.py"
    if not script.exists():
        raise IndexError_(f"{script} not found: devhost serves v2-model apps (function_app.py)")
    sys.path.insert(0, str(app_dir))
    spec = importlib.util.spec_from_file_location("function_app", script)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["function_app"] = module
    spec.loader.exec_module(module)
    app = getattr(module, "app", None)
    if app is None:
        app = next((v for v in vars(module).values() if isinstance(v, func.FunctionRegister)),
                   None)
    if app is None:
        raise IndexError_(f"{script} defines no FunctionApp/DFApp object")
    return [_describe(fn) for fn in app.get_functions()]


def _describe(fn: Any) -> FunctionInfo:
    name = fn.get_function_name()
    bindings, hints = raw_bindings(fn)
    trigger_name = fn.get_trigger().name
    trigger = next(b for b in bindings if b.get("name") == trigger_name
                   and str(b.get("type", "")).endswith("Trigger"))
    ttype = str(trigger["type"])
    if ttype not in TRIGGERS:
        raise IndexError_(f"function '{name}': trigger type '{ttype}' is not supported by devhost "
                          f"(supported: {', '.join(TRIGGERS)})")
    info = FunctionInfo(name=name, trigger_type=ttype, trigger=trigger,
                        func=fn.get_user_function(), pytypes=hints)
    for binding in bindings:
        if binding is trigger:
            continue
        if binding["type"] not in BINDINGS:
            raise IndexError_(f"function '{name}': binding type '{binding['type']}' "
                              f"(name '{binding.get('name')}') is not supported by devhost")
        if binding["type"] == "durableClient":
            info.client_binding = str(binding["name"])
    if info.deferred and ttype != "blobTrigger":
        raise IndexError_(f"function '{name}': SDK-type binding on a '{ttype}' trigger is not "
                          "supported by devhost (only blobTrigger)")
    return info


def describe_line(info: FunctionInfo, base_url: str, route_prefix: str) -> str:
    """The line ``func start`` prints for a function."""
    if info.trigger_type == "httpTrigger":
        methods = ",".join(m.upper() for m in (info.trigger.get("methods") or [])) or "GET,POST"
        route = info.trigger.get("route") or info.name
        prefix = f"/{route_prefix}" if route_prefix else ""
        return f"{info.name}: [{methods}] {base_url}{prefix}/{route}"
    return f"{info.name}: {info.trigger_type}"


class InvocationContext:
    """The ``context`` argument a function may declare (the worker's ``func.Context``)."""

    def __init__(self, info: FunctionInfo) -> None:
        self.invocation_id = str(uuid.uuid4())
        self.function_name = info.name
        self.function_directory = str(Path.cwd())
        self.thread_local_storage = threading.local()
        self.trace_context = None
        self.retry_context = None


async def invoke(info: FunctionInfo, kwargs: dict[str, Any]) -> Any:
    """Call a function like the worker: coroutines on this loop, plain functions on a thread."""
    wanted = inspect.signature(info.func).parameters
    if "context" in wanted and "context" not in kwargs:
        kwargs["context"] = InvocationContext(info)
    if inspect.iscoroutinefunction(info.func):
        return await info.func(**kwargs)
    result = await asyncio.get_running_loop().run_in_executor(None, lambda: info.func(**kwargs))
    if inspect.isawaitable(result):
        result = await result
    return result
