"""``python app.py`` as a subprocess on loopback, for the benchmarks that drive it over HTTP.

The server is a real, separate process (as in production), so that it can be measured (peak RSS from
``/proc/PID/status``) and killed (``kill -9``) without touching the benchmark itself.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
HOST = "127.0.0.1"


def free_port() -> int:
    """A TCP port free on the loopback interface right now."""
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


@dataclass
class LiveApp:
    """``python app.py --host 127.0.0.1 --port PORT --data-dir DATA_DIR [extra args]``, started by :meth:`start`.

    The server's output goes to ``log`` (appended over restarts).
    """

    data_dir: Path
    port: int = field(default_factory=free_port)
    extra_args: tuple[str, ...] = ()
    log: Path | None = None
    process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}/"

    def start(self, timeout_s: float = 180) -> None:
        """Start the server and wait until it answers HTTP; ``RuntimeError`` if it exits or takes too long."""
        command = [sys.executable, "app.py", "--host", HOST, "--port", str(self.port), "--data-dir", str(self.data_dir)]
        env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False"}
        log = (self.log or self.data_dir / "server.log").open("ab")
        self.process = subprocess.Popen([*command, *self.extra_args], cwd=REPO, env=env, stdout=log, stderr=log)
        log.close()
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the app exited with status {self.process.returncode}; see {log.name}")
            try:
                with urllib.request.urlopen(self.url + "config", timeout=5):
                    return
            except OSError:
                time.sleep(0.5)
        self.stop()
        raise RuntimeError(f"the app did not answer within {timeout_s:.0f} s; see {log.name}")

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def peak_rss_mib(self) -> float:
        """The server's peak resident memory so far (``VmHWM``), in MiB."""
        assert self.process is not None
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
        raise RuntimeError("no VmHWM in /proc status")

    def cpu_seconds(self) -> float:
        """CPU time (user + system) the server has used so far, in seconds."""
        assert self.process is not None
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime

    def kill(self) -> None:
        """``kill -9`` the server (no clean shutdown) and reap it."""
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()

    def stop(self) -> None:
        """Terminate the server if it is running (then ``kill -9`` it after 10 s)."""
        if not self.alive():
            return
        assert self.process is not None
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.kill()
