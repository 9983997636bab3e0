"""Start and stop the local services recobatch runs against: Azurite, recoservice, devhost,
and PostgreSQL (recoservice's shared database, for its tests).

Used by ``make run`` / ``make demo`` and by the test fixtures, so both start the services the
same way. Every service listens on 127.0.0.1 on a free port and logs to a file in its folder.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent

AZURITE_ACCOUNT = "devstoreaccount1"
# Azurite's well-known development key (public, documented by Microsoft; not a secret).
AZURITE_KEY = (
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that is free right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, proc: subprocess.Popen | None, timeout: float, log: Path) -> None:
    """Wait until something accepts connections on ``port``; fail with the log's tail if not."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode}; log {log}:\n{_tail(log)}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"nothing listens on port {port} after {timeout}s; log {log}:\n{_tail(log)}")


def wait_for_http(url: str, proc: subprocess.Popen | None, timeout: float, log: Path) -> None:
    """Wait until ``url`` answers any HTTP status."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode}; log {log}:\n{_tail(log)}")
        try:
            urllib.request.urlopen(url, timeout=2)  # noqa: S310 - loopback only
            return
        except urllib.error.HTTPError:
            return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"{url} did not answer after {timeout}s; log {log}:\n{_tail(log)}")


def _tail(log: Path, lines: int = 40) -> str:
    try:
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


@dataclass
class Service:
    """A started child process with its port and log file."""

    name: str
    proc: subprocess.Popen
    port: int
    log: Path
    extra: dict = field(default_factory=dict)

    def stop(self, kill: bool = False) -> None:
        """Stop the process (SIGTERM, then SIGKILL after 10 s; SIGKILL at once if ``kill``)."""
        if self.proc.poll() is not None:
            return
        try:
            os.killpg(self.proc.pid, signal.SIGKILL if kill else signal.SIGTERM)
        except ProcessLookupError:
            return
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)

    def log_tail(self, lines: int = 60) -> str:
        return _tail(self.log, lines)


def _spawn(name: str, cmd: list[str], workdir: Path, env: dict[str, str] | None = None,
           port: int = 0) -> Service:
    workdir.mkdir(parents=True, exist_ok=True)
    log = workdir / f"{name}.log"
    handle = open(log, "ab")  # noqa: SIM115 - owned by the child process
    proc = subprocess.Popen(
        cmd, stdout=handle, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        cwd=str(REPO_ROOT), env=env or os.environ.copy(), start_new_session=True,
    )
    handle.close()
    return Service(name=name, proc=proc, port=port, log=log)


def azurite_binary() -> str:
    """Path of the Azurite launcher installed by ``npm ci`` (fails loudly when missing)."""
    local = REPO_ROOT / "node_modules" / ".bin" / "azurite"
    if local.exists():
        return str(local)
    found = shutil.which("azurite")
    if found:
        return found
    raise RuntimeError("Azurite is not installed: run `npm ci` in the repository (make setup does)")


def start_azurite(workdir: Path) -> Service:
    """Start Azurite (blob, queue, table) with its data in ``workdir``."""
    blob, queue, table = free_port(), free_port(), free_port()
    cmd = [
        azurite_binary(), "--silent", "--location", str(workdir / "azurite"),
        "--blobHost", "127.0.0.1", "--blobPort", str(blob),
        "--queueHost", "127.0.0.1", "--queuePort", str(queue),
        "--tableHost", "127.0.0.1", "--tablePort", str(table),
        "--skipApiVersionCheck", "--loose",
    ]
    svc = _spawn("azurite", cmd, workdir, port=blob)
    for port in (blob, queue, table):
        wait_for_port(port, svc.proc, 60, svc.log)
    base = "http://127.0.0.1"
    svc.extra["connection_string"] = (
        f"DefaultEndpointsProtocol=http;AccountName={AZURITE_ACCOUNT};AccountKey={AZURITE_KEY};"
        f"BlobEndpoint={base}:{blob}/{AZURITE_ACCOUNT};"
        f"QueueEndpoint={base}:{queue}/{AZURITE_ACCOUNT};"
        f"TableEndpoint={base}:{table}/{AZURITE_ACCOUNT};"
    )
    svc.extra["blob_endpoint"] = f"{base}:{blob}/{AZURITE_ACCOUNT}"
    return svc


def postgres_bin_dir() -> Path:
    """Folder of Debian's PostgreSQL server binaries (``initdb``, ``postgres``); fails with
    how to install them when missing."""
    for candidate in sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True):
        if (candidate / "initdb").exists() and (candidate / "postgres").exists():
            return candidate
    found = shutil.which("initdb")
    if found:
        return Path(found).parent
    raise RuntimeError("the PostgreSQL server is not installed (no /usr/lib/postgresql/*/bin/"
                       "initdb): `apt-get install postgresql` (make setup does, as root)")


def start_postgres(workdir: Path) -> Service:
    """Start a throw-away PostgreSQL server on 127.0.0.1 with its data in a new folder.

    Root may not run postgres: as root the server runs as the ``postgres`` user (Debian's
    package creates it), in a folder under ``/tmp`` that user owns. Password sign-in
    (scram-sha-256) for the ``postgres`` superuser; ``extra["url"]`` has no password and
    ``extra["password"]`` holds it (pass it as ``PGPASSWORD``). ``stop()`` ends the server;
    the caller removes ``extra["data_dir"]``.
    """
    import pwd
    import secrets
    import tempfile

    bin_dir = postgres_bin_dir()
    workdir.mkdir(parents=True, exist_ok=True)
    data = Path(tempfile.mkdtemp(prefix="recoservice-pg-"))
    password = secrets.token_hex(16)
    (data / "pw").write_text(password + "\n")
    run_as: list[str] = []
    if os.geteuid() == 0:
        user = pwd.getpwnam("postgres")  # KeyError: the package is not installed
        os.chown(data, user.pw_uid, user.pw_gid)
        os.chown(data / "pw", user.pw_uid, user.pw_gid)
        run_as = ["runuser", "-u", "postgres", "--"]
    log = workdir / "postgres-initdb.log"
    with open(log, "wb") as handle:
        done = subprocess.run(
            [*run_as, str(bin_dir / "initdb"), "-D", str(data / "db"), "-U", "postgres",
             "--pwfile", str(data / "pw"), "--auth", "scram-sha-256", "--locale", "C.UTF-8",
             "--encoding", "UTF8", "--no-sync"],
            stdout=handle, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, check=False)
    if done.returncode:
        raise RuntimeError(f"initdb failed ({done.returncode}); log {log}:\n{_tail(log)}")
    port = free_port()
    cmd = [*run_as, str(bin_dir / "postgres"), "-D", str(data / "db"), "-h", "127.0.0.1",
           "-p", str(port), "-k", str(data), "-c", "fsync=off", "-c", "max_connections=300",
           "-c", "synchronous_commit=off", "-c", "full_page_writes=off"]
    svc = _spawn("postgres", cmd, workdir, port=port)
    wait_for_port(port, svc.proc, 60, svc.log)
    svc.extra.update(url=f"postgresql://postgres@127.0.0.1:{port}/postgres",
                     password=password, data_dir=str(data), port=port)
    return svc


def start_recoservice(workdir: Path, keys: list[str], demo: bool = True,
                      faults: Path | None = None, port: int | None = None,
                      extra_args: list[str] | None = None,
                      env: dict[str, str] | None = None) -> Service:
    """Start ``python -m recoservice serve`` with its state in ``workdir/state`` (``env``:
    more environment, e.g. ``RECOSERVICE_DATABASE`` and ``PGPASSWORD``)."""
    port = port or free_port()
    cmd = [sys.executable, "-m", "recoservice", "serve", "--host", "127.0.0.1",
           "--port", str(port), "--state-dir", str(workdir / "state")]
    if demo:
        cmd.append("--demo")
    if faults is not None:
        cmd += ["--faults", str(faults)]
    cmd += extra_args or []
    # Keys travel in the environment, not on the command line (where `ps` would show them).
    child_env = {**os.environ, **(env or {}), "RECOSERVICE_KEYS": ",".join(keys)}
    svc = _spawn("recoservice", cmd, workdir, env=child_env, port=port)
    base = f"http://127.0.0.1:{port}/recommendations/v4.0"
    wait_for_http(f"http://127.0.0.1:{port}/openapi.json", svc.proc, 120, svc.log)
    svc.extra["base_url"] = base
    svc.extra["keys"] = list(keys)
    return svc


def start_devhost(app_dir: Path, workdir: Path, env: dict[str, str] | None = None,
                  port: int | None = None, timer_scale: float = 1.0,
                  master_key: str | None = None, state_dir: Path | None = None,
                  settings: Path | None = None) -> Service:
    """Start ``python -m devhost`` for ``app_dir`` with its state in ``workdir/state``.

    The master key comes from ``master_key`` (else ``$DEVHOST_MASTER_KEY`` in ``env``) and is
    passed through the environment, never on the command line.
    """
    port = port or free_port()
    child_env = {**os.environ, **(env or {})}
    if master_key:
        child_env["DEVHOST_MASTER_KEY"] = master_key
    cmd = [sys.executable, "-m", "devhost", "--app-dir", str(app_dir), "--port", str(port),
           "--timer-scale", str(timer_scale),
           "--state-dir", str(state_dir or workdir / "state")]
    if settings is not None:
        cmd += ["--settings", str(settings)]
    svc = _spawn("devhost", cmd, workdir, env=child_env, port=port)
    wait_for_http(f"http://127.0.0.1:{port}/durabletask/instances/", svc.proc, 60, svc.log)
    svc.extra["base_url"] = f"http://127.0.0.1:{port}"
    svc.extra["master_key"] = child_env.get("DEVHOST_MASTER_KEY", "")
    return svc
