"""recoservice/Dockerfile agrees with `python -m recoservice serve --help` and with the Container
App in infra/app/recoservice.bicep, installs what recoservice imports, and its command serves.

No Docker daemon is needed: the image's command line is run from a copy of the build context
(what .dockerignore lets through), with this interpreter standing in for the image's.
"""

from __future__ import annotations

import ast
import fnmatch
import importlib.metadata
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
from infra_helpers import ROOT, parse, resources_of_type, variable

CONTEXT = ROOT / "recoservice"
DOCKERFILE = CONTEXT / "Dockerfile"
SERVE = ["python", "-m", "recoservice", "serve"]


def instructions() -> list[tuple[str, str]]:
    """``(INSTRUCTION, arguments)`` pairs, continuation lines joined, comments dropped."""
    logical, current = [], ""
    for line in DOCKERFILE.read_text(encoding="utf-8").splitlines():
        stripped = line.strip()
        if not current and (not stripped or stripped.startswith("#")):
            continue
        if stripped.endswith("\\"):
            current += stripped[:-1] + " "
            continue
        logical.append(current + stripped)
        current = ""
    return [(text.split(None, 1)[0].upper(), text.split(None, 1)[1]) for text in logical]


def instruction(name: str) -> str:
    (value,) = [args for kind, args in instructions() if kind == name]
    return value


def image_argv() -> list[str]:
    return json.loads(instruction("ENTRYPOINT")) + json.loads(instruction("CMD"))


def option_value(argv: list[str], option: str) -> str:
    return argv[argv.index(option) + 1]


def serve_help() -> tuple[set[str], set[str]]:
    """``(options, required options)`` from ``python -m recoservice serve --help``."""
    result = subprocess.run([sys.executable, "-m", "recoservice", "serve", "--help"],
                            capture_output=True, text=True, cwd=ROOT, timeout=60, check=True)
    usage, _, rest = result.stdout.partition("\n\n")
    options = set(re.findall(r"(?<![\w-])(--[a-z][a-z0-9-]*)", result.stdout))
    optional = set(re.findall(r"\[(--[a-z][a-z0-9-]*)", usage))
    required = set(re.findall(r"(--[a-z][a-z0-9-]*)", usage)) - optional
    return options, required


def container_app() -> dict:
    (app,) = resources_of_type(parse("app/recoservice.bicep"),
                               "Microsoft.App/containerApps").values()
    return app["config"]


def container() -> dict:
    (only,) = container_app()["properties"]["template"]["containers"]
    return only


def container_args() -> list[str]:
    """The args the Container App gives the image (replacing its CMD)."""
    return container()["args"]


def test_image_is_slim_python_311_and_runs_as_non_root():
    assert re.fullmatch(r"python:3\.11-slim(-\w+)?", instruction("FROM"))
    user = instruction("USER")
    assert user not in ("root", "0")
    assert "useradd" in " ".join(args for kind, args in instructions() if kind == "RUN")


def test_command_serves_recoservice_on_all_interfaces():
    argv = image_argv()

    assert argv[:4] == SERVE
    assert option_value(argv, "--host") == "0.0.0.0"


def test_every_option_of_the_image_and_the_container_app_exists():
    options, required = serve_help()
    args = container_args()

    image_options = {a for a in image_argv() if a.startswith("--")}
    app_options = {a for a in args if isinstance(a, str) and a.startswith("--")}
    assert image_options <= options, image_options - options
    assert app_options <= options, app_options - options
    assert required <= image_options, required - image_options
    # The app's args replace CMD; the ENTRYPOINT keeps --host and --port.
    entrypoint = set(json.loads(instruction("ENTRYPOINT")))
    assert required <= (app_options | entrypoint), required - app_options


def test_port_agrees_between_command_expose_and_ingress():
    argv = image_argv()
    parsed = parse("app/recoservice.bicep")
    ingress = container_app()["properties"]["configuration"]["ingress"]

    port = int(option_value(argv, "--port"))
    assert int(instruction("EXPOSE")) == port
    assert ingress["targetPort"] == "port"
    assert variable(parsed, "port") == port


def test_state_dir_agrees_between_image_and_container_app():
    parsed = parse("app/recoservice.bicep")
    (container,) = container_app()["properties"]["template"]["containers"]

    state_dir = option_value(image_argv(), "--state-dir")
    assert variable(parsed, "stateDir") == state_dir
    assert container_args()[container_args().index("--state-dir") + 1] == "stateDir"
    assert container["volumeMounts"][0]["mountPath"] == "stateDir"
    assert any(f"mkdir -p {state_dir}" in args for kind, args in instructions() if kind == "RUN")


def third_party_imports() -> set[str]:
    stdlib = set(sys.stdlib_module_names)
    found = set()
    for path in CONTEXT.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                found |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                found.add(node.module.split(".")[0])
    return {name for name in found if name not in stdlib and name != "recoservice"}


def normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def installed_closure(requirements: list[str]) -> set[str]:
    """Distributions pip installs for ``requirements``, resolved in this environment."""
    seen: set[str] = set()
    todo = [re.split(r"[<>=!~\[; ]", r, maxsplit=1)[0] for r in requirements]
    while todo:
        name = normalise(todo.pop())
        if name in seen:
            continue
        seen.add(name)
        try:
            requires = importlib.metadata.requires(name) or []
        except importlib.metadata.PackageNotFoundError:
            continue  # a dependency only for other Pythons (environment marker)
        for requirement in requires:
            if "extra ==" not in requirement:
                todo.append(re.split(r"[<>=!~\[; (]", requirement, maxsplit=1)[0])
    return seen


def test_image_installs_every_third_party_package_recoservice_imports():
    pip = " ".join(args for kind, args in instructions()
                   if kind == "RUN" and "pip install" in args)
    requirements = re.findall(r'"([^"]+)"', pip)
    providers = importlib.metadata.packages_distributions()

    installed = installed_closure(requirements)
    for module in sorted(third_party_imports()):
        dists = {normalise(d) for d in providers.get(module, [])}
        assert dists & installed, f"recoservice imports {module}; the image installs no {dists}"


def build_context_copy(target: Path) -> Path:
    """Copy what the Dockerfile's COPY gets (.dockerignore applied) to ``target/recoservice``."""
    ignored = [line.strip().rstrip("/") for line in
               (CONTEXT / ".dockerignore").read_text(encoding="utf-8").splitlines()
               if line.strip() and not line.startswith("#")]
    destination = target / "recoservice"

    def ignore(directory: str, names: list[str]) -> set[str]:
        return {n for n in names if any(fnmatch.fnmatch(n, pattern) for pattern in ignored)}

    shutil.copytree(CONTEXT, destination, ignore=ignore)
    return destination


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_context_leaves_out_build_files_and_caches(tmp_path):
    copied = build_context_copy(tmp_path)

    assert (copied / "__main__.py").is_file()
    assert not (copied / "Dockerfile").exists()
    assert not list(copied.rglob("__pycache__"))


@pytest.mark.slow
def test_the_container_apps_command_line_serves_from_the_build_context(tmp_path):
    # The Container App runs ENTRYPOINT + its own args; run the same, from the copied context.
    app_dir = tmp_path / "app"
    build_context_copy(app_dir)
    port = free_port()
    argv = json.loads(instruction("ENTRYPOINT"))
    argv[0] = sys.executable
    argv[argv.index("--port") + 1] = str(port)
    argv[argv.index("--host") + 1] = "127.0.0.1"  # bind locally in the test
    args = ["--state-dir", str(tmp_path / "state"),
            "--allow-blob-host", "example.blob.core.windows.net"]
    assert [a for a in args if a.startswith("--")] == [a for a in container_args()
                                                       if a.startswith("--")]
    env = {**os.environ, "RECOSERVICE_KEYS": "infra-test-key", "PYTHONPATH": ""}
    log = (tmp_path / "recoservice.log").open("w")
    process = subprocess.Popen(argv + args, cwd=app_dir, env=env, stdout=log,
                               stderr=subprocess.STDOUT)
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                openapi = requests.get(f"{base}/openapi.json", timeout=2)
                break
            except requests.ConnectionError:
                if process.poll() is not None or time.monotonic() > deadline:
                    pytest.fail((tmp_path / "recoservice.log").read_text())
                time.sleep(0.3)
        models = f"{base}/recommendations/v4.0/models"
        anonymous = requests.get(models, timeout=10)
        keyed = requests.get(models, headers={"Ocp-Apim-Subscription-Key": "infra-test-key"},
                             timeout=10)
    finally:
        process.terminate()
        process.wait(timeout=30)
        log.close()

    assert openapi.status_code == 200
    assert anonymous.status_code == 401
    assert keyed.status_code == 200


def test_recoservice_trusts_the_ingress_proxy_for_the_scheme():
    (container,) = container_app()["properties"]["template"]["containers"]
    fixed = container["env"]["function"]["parameters"]["arg_1"]

    assert {"name": "FORWARDED_ALLOW_IPS", "value": "*"} in fixed
    assert {"name": "RECOSERVICE_KEYS", "secretRef": "subscription-key"} in fixed


def test_only_the_image_differs_before_and_after_the_first_deploy():
    # azd deploy replaces the image alone: args, probes and env must not depend on it, or the
    # next provision would start a new revision (and drop an ephemeral state).
    spec = container()
    image = spec["image"]["operator"]

    assert image["type"] == "conditional"
    assert image["operands"]["condition"] == "usePlaceholder"
    for field in ("args", "probes", "env", "volumeMounts"):
        assert "usePlaceholder" not in str(spec[field]), field
    assert {p["type"] for p in spec["probes"]} == {"Liveness", "Readiness"}
