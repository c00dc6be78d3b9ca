#!/usr/bin/env python3
"""A webhook receiver for the tests of sync-server/tests/webhooks/: verifies every request
with the `standardwebhooks` package (PyPI; installed by scripts/pytools.sh) and logs it.

Listens on 127.0.0.1 at a free port and prints `listening <port>` once ready. Control:

- `POST /_config {"secrets": ["whsec_..."], "plan": [{"status": 500}, ...]}` sets the secrets
  to verify with (each request is checked against each secret separately) and the answers of
  the next requests, in arrival order: `status`, optional `retry_after` (sent as the
  `Retry-After` header), `hold` (seconds to wait before answering) and `body_bytes` (answer
  with that many bytes of `x` instead of the JSON body). Past the plan, 200.
- `GET /_log` returns `{"requests": [...]}`: per request its `webhook_id`, `webhook_timestamp`,
  `webhook_signature`, `verified` (one boolean per secret), `verify_errors`, `arrived_at`
  (seconds since the epoch, float), `status` answered, the event `type` and the raw `body`.

Every other POST is a delivery.
"""

import json
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from standardwebhooks.webhooks import Webhook, WebhookVerificationError

LOCK = threading.Lock()
STATE = {"secrets": [], "plan": [], "log": []}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):  # quiet: the test reads /_log
        pass

    def _reply(self, status, payload, headers=None, body=None):
        body = body if body is not None else json.dumps(payload).encode()
        try:
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(body)))
            for key, value in (headers or {}).items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the sender went away (killed mid-request): nothing to answer

    def _body(self):
        length = int(self.headers.get("content-length") or 0)
        return self.rfile.read(length) if length else b""

    def do_GET(self):
        if self.path == "/_log":
            with LOCK:
                self._reply(200, {"requests": list(STATE["log"])})
        else:
            self._reply(404, {"error": "not found"})

    def do_POST(self):
        body = self._body()
        if self.path == "/_config":
            config = json.loads(body or b"{}")
            with LOCK:
                STATE["secrets"] = config.get("secrets", STATE["secrets"])
                STATE["plan"] = list(config.get("plan", []))
            self._reply(200, {"ok": True})
            return
        headers = {k.lower(): v for k, v in self.headers.items()}
        arrived_at = time.time()
        with LOCK:
            secrets = list(STATE["secrets"])
            step = STATE["plan"].pop(0) if STATE["plan"] else {}
        verified, errors = [], []
        for secret in secrets:
            try:
                Webhook(secret).verify(body, headers)
                verified.append(True)
                errors.append(None)
            except (WebhookVerificationError, ValueError) as e:
                verified.append(False)
                errors.append(str(e))
        try:
            event_type = json.loads(body).get("type")
        except ValueError:
            event_type = None
        status = int(step.get("status", 200))
        entry = {
            "path": self.path,
            "webhook_id": headers.get("webhook-id"),
            "webhook_timestamp": headers.get("webhook-timestamp"),
            "webhook_signature": headers.get("webhook-signature"),
            "verified": verified,
            "verify_errors": errors,
            "arrived_at": arrived_at,
            "status": status,
            "type": event_type,
            "body": body.decode("utf-8", "replace"),
        }
        with LOCK:
            STATE["log"].append(entry)
        if step.get("hold"):
            time.sleep(float(step["hold"]))
        extra = {}
        if step.get("retry_after") is not None:
            extra["retry-after"] = str(step["retry_after"])
        big = b"x" * int(step["body_bytes"]) if step.get("body_bytes") else None
        self._reply(status, {"received": entry["webhook_id"]}, extra, big)


def main():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    print(f"listening {server.server_address[1]}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
