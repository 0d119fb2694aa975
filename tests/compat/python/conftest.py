"""Fixtures for the Python client compatibility suite: one real spool broker per test.

Pins the broker start-up contract the suite relies on:

    $SPOOL_BIN serve --listeners 127.0.0.1:0 --data-dir DIR --ready-file FILE [--set k=v ...]

The broker writes "127.0.0.1:PORT\\n" to FILE (atomically) once it accepts
connections, logs to stderr, and exits 0 promptly on SIGTERM.

Each test gets a fresh broker in a fresh temp dir (start-up is cheap and a
crash or leftover state can't leak into the next test). A test may restart its
broker (`spool_broker.restart()`): SIGTERM, then the same binary again on the
same data dir and, via `--listeners 127.0.0.1:<the port it had>`, the same
port, so clients configured with the old bootstrap address reconnect to it. A
test may also crash it (`spool_broker.kill9()`: SIGKILL, no shutdown at all) and
bring it back with `restart()`. The broker's stderr goes to <tmp>/spool.log;
when a test fails, the tail of that log is attached to the pytest report.

Environment:
    SPOOL_BIN                  broker binary (default: <repo>/target/debug/spool)
    SPOOL_COMPAT_READY_TIMEOUT seconds to wait for the ready file (default 30)
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[3]
DEFAULT_SPOOL_BIN = REPO_ROOT / "target" / "debug" / "spool"

READY_TIMEOUT_S = float(os.environ.get("SPOOL_COMPAT_READY_TIMEOUT", "30"))
READY_POLL_INTERVAL_S = 0.02
SHUTDOWN_TIMEOUT_S = 15.0
KILL_TIMEOUT_S = 5.0
LOG_TAIL_LINES = 80


def spool_bin() -> Path:
    return Path(os.environ.get("SPOOL_BIN") or DEFAULT_SPOOL_BIN)


def _load_prctl():
    # Resolved up front: preexec_fn runs between fork and exec, where importing or
    # loading libraries is not safe if other threads (client I/O threads) exist.
    if not sys.platform.startswith("linux"):
        return None
    try:
        import ctypes

        return ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None


_PRCTL = _load_prctl()
_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """preexec_fn: have the kernel SIGTERM the broker if pytest itself dies (e.g. hard timeout)."""
    _PRCTL(_PR_SET_PDEATHSIG, int(signal.SIGTERM))


def log_tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    try:
        data = path.read_bytes()
    except OSError as exc:
        return f"<could not read {path}: {exc}>"
    text = data.decode("utf-8", errors="replace").splitlines()
    if not text:
        return "<empty log>"
    return "\n".join(text[-lines:])


class SpoolBroker:
    """A spool broker subprocess started by the fixture; restartable on the same port and data."""

    def __init__(self, workdir: Path, settings: list[str]):
        self.workdir = workdir
        self.data_dir = workdir / "data"
        self.ready_file = workdir / "ready"
        self.log_path = workdir / "spool.log"
        self.settings = settings
        # Port 0 on the first start; the bound address on every restart.
        self.listen = "127.0.0.1:0"
        self.starts = 0
        self.proc: subprocess.Popen | None = None
        self.bootstrap: str | None = None
        self._log_fh = None

    @property
    def argv(self) -> list[str]:
        argv = [
            str(spool_bin()),
            "serve",
            "--listeners", self.listen,
            "--data-dir", str(self.data_dir),
            "--ready-file", str(self.ready_file),
        ]
        for kv in self.settings:
            argv += ["--set", kv]
        return argv

    def start(self) -> str:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        # A stale ready file from a previous run must not pass for this one's.
        self.ready_file.unlink(missing_ok=True)
        # Appended across restarts, so a failure's log tail shows both runs.
        self._log_fh = open(self.log_path, "ab")
        self.starts += 1
        if self.starts > 1:
            self._log_fh.write(f"===== compat suite: broker start #{self.starts} =====\n".encode())
            self._log_fh.flush()
        env = dict(os.environ)
        env.setdefault("RUST_BACKTRACE", "1")
        self.proc = subprocess.Popen(
            self.argv,
            stdin=subprocess.DEVNULL,
            stdout=self._log_fh,
            stderr=subprocess.STDOUT,
            env=env,
            # Own session: a Ctrl-C aimed at pytest doesn't hit the broker first,
            # and teardown stays in charge of how it is stopped.
            start_new_session=True,
            preexec_fn=_die_with_parent if _PRCTL is not None else None,
        )
        self.bootstrap = self._wait_ready()
        return self.bootstrap

    def _wait_ready(self) -> str:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while True:
            rc = self.proc.poll()
            if rc is not None:
                raise RuntimeError(
                    f"spool exited with code {rc} before writing its ready file\n"
                    f"argv: {self.argv}\n(log tail attached below)"
                )
            try:
                content = self.ready_file.read_text()
            except FileNotFoundError:
                content = ""
            # The file is written atomically, but insist on the full line anyway.
            if content.endswith("\n"):
                addr = content.strip()
                host, sep, port = addr.rpartition(":")
                if not sep or not host or not port.isdigit() or int(port) == 0:
                    raise RuntimeError(
                        f"spool ready file has unexpected content {content!r} "
                        "(expected 'HOST:PORT\\n')"
                    )
                return addr
            if time.monotonic() >= deadline:
                raise RuntimeError(
                    f"spool did not write {self.ready_file} within {READY_TIMEOUT_S}s "
                    f"(content so far: {content!r})\n"
                    f"argv: {self.argv}\n(log tail attached below)"
                )
            time.sleep(READY_POLL_INTERVAL_S)

    def stop(self) -> str | None:
        """SIGTERM, wait (bounded), SIGKILL if needed. Returns a problem description or None."""
        problem = None
        if self.proc is not None:
            rc = self.proc.poll()
            if rc is not None:
                problem = f"spool had already exited (code {rc}) before teardown"
            else:
                self.proc.send_signal(signal.SIGTERM)
                try:
                    rc = self.proc.wait(timeout=SHUTDOWN_TIMEOUT_S)
                    if rc != 0:
                        problem = f"spool exited with code {rc} after SIGTERM (expected 0)"
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    try:
                        self.proc.wait(timeout=KILL_TIMEOUT_S)
                    except subprocess.TimeoutExpired:
                        pass
                    problem = (
                        f"spool did not exit within {SHUTDOWN_TIMEOUT_S}s of SIGTERM; "
                        "it was SIGKILLed"
                    )
        if self._log_fh is not None:
            self._log_fh.close()
            self._log_fh = None
        self.proc = None
        return problem

    def kill9(self) -> None:
        """Crashes the broker: SIGKILL (no shutdown of any kind) and waits for it to be gone.
        `restart()` then brings it back on the same port and data dir. Raises if the broker
        had already exited on its own."""
        if self.proc is None:
            raise RuntimeError("kill9: the broker is not running")
        rc = self.proc.poll()
        if rc is not None:
            raise RuntimeError(f"kill9: spool had already exited (code {rc}) (log tail attached below)")
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=KILL_TIMEOUT_S)
        if self._log_fh is not None:
            self._log_fh.write(b"===== compat suite: broker SIGKILLed =====\n")
            self._log_fh.close()
            self._log_fh = None
        self.proc = None

    def restart(self) -> str:
        """Stops the broker cleanly (SIGTERM, exit 0 required) and starts it again on the same
        port and data dir. Returns the bootstrap address, which is unchanged. After `kill9()`
        it only starts it again."""
        old = self.bootstrap
        assert old is not None, "restart() before start()"
        problem = self.stop()
        if problem:
            raise RuntimeError(f"restart: {problem}")
        self.listen = old
        new = self.start()
        if new != old:
            raise RuntimeError(f"restart: broker came back on {new}, not {old}")
        return new


def pytest_configure(config):
    config.addinivalue_line(
        "markers",
        "spool_settings(*kv): extra `--set key=value` arguments for the spool broker of this test",
    )
    config.addinivalue_line("markers", "client_auth(mode): ssl.client.auth of test_tls's broker")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    broker = getattr(item, "_spool_broker", None)
    if broker is not None and report.failed:
        report.sections.append(
            (f"spool broker log tail ({broker.log_path})", log_tail(broker.log_path))
        )


@pytest.fixture
def spool_broker(request, tmp_path):
    """A running spool broker (SpoolBroker); `.bootstrap` is its 'host:port', `.restart()`
    brings it back on the same port and data dir."""
    binary = spool_bin()
    if not binary.exists():
        pytest.fail(
            f"spool binary not found at {binary}: build it (cargo build) or set SPOOL_BIN",
            pytrace=False,
        )
    settings: list[str] = []
    for marker in request.node.iter_markers("spool_settings"):
        settings.extend(marker.args)

    broker = SpoolBroker(tmp_path, settings)
    request.node._spool_broker = broker
    try:
        broker.start()
    except RuntimeError as exc:
        broker.stop()
        pytest.fail(str(exc), pytrace=False)
    except BaseException:
        broker.stop()
        raise
    yield broker
    problem = broker.stop()
    if problem:
        pytest.fail(f"{problem} (log tail attached below)", pytrace=False)


@pytest.fixture
def bootstrap(spool_broker) -> str:
    """Bootstrap address ('host:port') of a fresh spool broker."""
    return spool_broker.bootstrap
