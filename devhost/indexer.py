"""Index a v2-model function app the way the Python worker does, and call its functions.

``function_app.py`` is imported from the app folder (which goes on ``sys.path``, so the app's
own packages import), its ``FunctionApp``/``DFApp`` object is found, and every function becomes a
``FunctionInfo`` with its trigger and bindings. A binding devhost cannot serve stops the start
with a message naming the function and the binding type.
"""

from __future__ import annotations

import asyncio
import importlib.util
import inspect
import sys
import threading
import uuid
from dataclasses import dataclass, field
from pathlib import Path
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

    @property
    def arg_name(self) -> str:
        return str(self.trigger["name"])


def _plain(value: Any) -> Any:
    """Enum members of the decorators (``AuthLevel.FUNCTION``, ``HttpMethod.POST``) → str."""
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return getattr(value, "value", value)


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
    trigger = {k: _plain(v) for k, v in fn.get_trigger().get_dict_repr().items()}
    ttype = str(trigger["type"])
    if ttype not in TRIGGERS:
        raise IndexError_(f"function '{name}': trigger type '{ttype}' is not supported by devhost "
                          f"(supported: {', '.join(TRIGGERS)})")
    info = FunctionInfo(name=name, trigger_type=ttype, trigger=trigger, func=fn.get_user_function())
    for binding in fn.get_bindings():
        if binding.type == ttype and binding.name == trigger["name"]:
            continue
        if binding.type not in BINDINGS:
            raise IndexError_(f"function '{name}': binding type '{binding.type}' "
                              f"(name '{binding.name}') is not supported by devhost")
        if binding.type == "durableClient":
            info.client_binding = binding.name
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
