"""Subprocesses with time bounds: one-shot commands and background servers."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from pathlib import Path

DEFAULT_TIMEOUT = 20.0


class StepFailed(RuntimeError):
    """A generator step did not do what the scenario needs."""


def run(cmd: list[str], cwd: Path, *, timeout: float = DEFAULT_TIMEOUT, input: bytes | None = None,
        env: dict | None = None, check: bool = True) -> subprocess.CompletedProcess:
    full_env = dict(os.environ, **(env or {}))
    try:
        done = subprocess.run(cmd, cwd=cwd, input=input, capture_output=True, timeout=timeout, env=full_env)
    except subprocess.TimeoutExpired as exc:
        raise StepFailed(f"timed out after {timeout}s: {' '.join(cmd)}") from exc
    if check and done.returncode != 0:
        raise StepFailed(f"exit {done.returncode}: {' '.join(cmd)}\n{done.stdout.decode(errors='replace')}"
                         f"\n{done.stderr.decode(errors='replace')}")
    return done


class Background:
    """A long-running process whose output is collected by threads; always killed on exit."""

    def __init__(self, cmd: list[str], cwd: Path, *, env: dict | None = None, stdin: bool = False):
        self.cmd = cmd
        self.stdout = bytearray()
        self.stderr = bytearray()
        self.proc = subprocess.Popen(
            cmd, cwd=cwd, env=dict(os.environ, **(env or {})),
            stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
        self._threads = [threading.Thread(target=self._pump, args=(self.proc.stdout, self.stdout), daemon=True),
                         threading.Thread(target=self._pump, args=(self.proc.stderr, self.stderr), daemon=True)]
        for t in self._threads:
            t.start()

    @staticmethod
    def _pump(stream, sink: bytearray) -> None:
        for chunk in iter(lambda: stream.read1(4096), b""):
            sink.extend(chunk)

    def write(self, data: bytes) -> None:
        self.proc.stdin.write(data)
        self.proc.stdin.flush()

    def wait_output(self, needle: bytes, timeout: float, *, stream: str = "any") -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if (stream in ("any", "stdout") and needle in self.stdout) or \
               (stream in ("any", "stderr") and needle in self.stderr):
                return
            if self.proc.poll() is not None:
                time.sleep(0.05)
                if needle in self.stdout or needle in self.stderr:
                    return
                raise StepFailed(f"{self.cmd[0]} exited ({self.proc.returncode}) before {needle!r}:\n{self.text()}")
            time.sleep(0.02)
        raise StepFailed(f"{self.cmd[0]}: no {needle!r} within {timeout}s:\n{self.text()}")

    def wait(self, timeout: float) -> int:
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired as exc:
            self.stop()
            raise StepFailed(f"timed out after {timeout}s: {' '.join(self.cmd)}\n{self.text()}") from exc

    def text(self) -> str:
        return (self.stdout + b"\n" + self.stderr).decode(errors="replace")

    def stop(self, sig: int = signal.SIGTERM, grace: float = 3.0) -> None:
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, sig)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(grace)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(grace)
        for t in self._threads:
            t.join(1.0)
        if self.proc.stdin:
            try:
                self.proc.stdin.close()
            except OSError:
                pass

    def __enter__(self) -> "Background":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def _listening(port: int, udp: bool = False) -> bool:
    # /proc/net/tcp{,6}: local address "IP:PORT" in hex, state 0A = LISTEN (a bound UDP socket: 07 in
    # /proc/net/udp{,6}). Probing by connecting would put an extra connection into the capture.
    names, state = (("/proc/net/udp", "/proc/net/udp6"), "07") if udp else (("/proc/net/tcp", "/proc/net/tcp6"), "0A")
    for name in names:
        try:
            lines = Path(name).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if fields[3] == state and int(fields[1].rsplit(":", 1)[1], 16) == port:
                return True
    return False


def wait_listening(port: int, timeout: float = 10.0, server: Background | None = None, udp: bool = False) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if _listening(port, udp):
            return
        if server is not None and server.proc.poll() is not None:
            raise StepFailed(f"server exited before listening on {port}:\n{server.text()}")
        time.sleep(0.02)
    raise StepFailed(f"nothing listening on port {port} after {timeout}s")


def ensure_free(port: int, timeout: float = 5.0, udp: bool = False) -> None:
    """Before starting a server: a listener left on the port would otherwise pass for ours."""
    deadline = time.monotonic() + timeout
    while _listening(port, udp):
        if time.monotonic() > deadline:
            raise StepFailed(f"port {port} is already in use by another process")
        time.sleep(0.05)
