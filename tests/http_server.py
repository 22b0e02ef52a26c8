"""A loopback HTTP server for download tests: files from memory, ranges, cut transfers."""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


class MemoryServer:
    """Files served from memory on 127.0.0.1; optional support for 'Range: bytes=N-' requests, and
    ``cut_after``: announce the whole file but close the connection after that many bytes (once)."""

    def __init__(self, files: dict[str, bytes], ranges: bool = False, cut_after: int | None = None) -> None:
        self.files, self.ranges, self.cut_after, self.requests = files, ranges, cut_after, []
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                server.requests.append((self.path, self.headers.get("Range")))
                body = server.files.get(self.path.lstrip("/"))
                if body is None:
                    self.send_error(404, "no such file")
                    return
                start = 0
                requested = self.headers.get("Range")
                if server.ranges and requested:
                    start = int(requested.removeprefix("bytes=").rstrip("-"))
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
                else:
                    self.send_response(200)
                self.send_header("Content-Length", str(len(body) - start))
                self.end_headers()
                if server.cut_after is not None:
                    self.wfile.write(body[start:start + server.cut_after])
                    server.cut_after = None
                    self.close_connection = True
                    return
                self.wfile.write(body[start:])

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.02,), daemon=True)
        self.thread.start()

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/{name}"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@contextmanager
def serve(folder: Path) -> Iterator[str]:
    """Serve the files of ``folder``; yields the base URL."""
    server = MemoryServer({p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()})
    try:
        yield server.url("")
    finally:
        server.close()
