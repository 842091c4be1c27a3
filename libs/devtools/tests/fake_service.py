"""A stand-in for a pinworks service: answers /healthz and /readyz, stops on SIGTERM.

Lets the ServiceProcess tests exercise real subprocess plumbing without the real services.
"""

import os
import signal
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        status = 200 if self.path in ("/healthz", "/readyz") else 404
        self.send_response(status)
        self.end_headers()
        self.wfile.write(b"ok" if status == 200 else b"not found")

    def log_message(self, format: str, *args: object) -> None:
        return


def main() -> None:
    if os.environ.get("FAKE_FAIL_AT_START"):
        print("fake service failing on purpose", flush=True)
        sys.exit(3)
    port = int(os.environ["PINWORKS_HEALTH_PORT"])
    server = ThreadingHTTPServer(("127.0.0.1", port), _Handler)
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown).start())
    print(f"fake service listening on {port}", flush=True)
    server.serve_forever()
    print("fake service stopped", flush=True)


if __name__ == "__main__":
    main()
