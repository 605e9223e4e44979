"""Local servers for the benchmarks and the tests: free ports, HTTP servers on 127.0.0.1 serving
from a background thread, and stopping a server subprocess."""

from __future__ import annotations

import socket
import subprocess
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Self

__all__ = ["BackgroundHTTPServer", "free_port", "stop_process"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def stop_process(proc: subprocess.Popen[bytes], timeout: float) -> None:
    """SIGTERM, then SIGKILL after ``timeout`` seconds; its stderr pipe, if any, is closed."""
    proc.terminate()
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    if proc.stderr is not None:
        proc.stderr.close()


class _Threaded(ThreadingHTTPServer):
    daemon_threads = True


class BackgroundHTTPServer:
    """A threading HTTP server on 127.0.0.1 at a free port, answering with ``handler`` from a daemon
    thread while the ``with`` block runs. ``backlog`` is the listen queue: raise it where many clients
    connect at once, so none is reset by a full queue."""

    def __init__(self, handler: type[BaseHTTPRequestHandler], *, name: str, backlog: int = 5) -> None:
        self._httpd = _Threaded(("127.0.0.1", 0), handler, bind_and_activate=False)
        self._httpd.request_queue_size = backlog
        try:
            self._httpd.server_bind()
            self._httpd.server_activate()
        except BaseException:
            self._httpd.server_close()
            raise
        self._thread = threading.Thread(target=self._httpd.serve_forever, name=name, daemon=True)

    @property
    def port(self) -> int:
        return int(self._httpd.server_address[1])

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
