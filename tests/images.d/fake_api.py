#!/usr/bin/env python3
"""A stand-in for the Random User API (https://randomuser.me/api/1.4/) for tests/images.

The CI machines cannot reach randomuser.me, so the producer image fetches from this server instead.
Every request `GET <any path>?results=N[&seed=..&page=..]` is answered with N users in the API's
shape, cycled from tests/fixtures/randomuser/quirks.json (real quirks: integer postcodes, null
id.value, non-Latin names, ...), each with a fresh login.uuid so that N requests give N distinct
rows in Cassandra. With --tls-cert/--tls-key it serves HTTPS instead of HTTP.

  fake_api.py --port-file F [--port 0] [--tls-cert server.pem --tls-key server.key]

Writes the bound port to F once listening; logs one line per request to stderr. Python 3 stdlib.

For tests that must act while a producer is between two pages (tests/airflow's dead-letter test),
requests of one page size can be held:
  GET /_control/hold?results=N&serve=K   answer K more requests for N users, then hold the next ones
  GET /_control/held?results=N           {"held": how many requests for N users wait right now}
  GET /_control/release?results=N        answer the held ones and stop holding
A held request is answered after at most HOLD_MAX_S anyway, so that a test that dies holding never
leaves a producer waiting for good.
"""
import argparse
import copy
import http.server
import json
import os
import ssl
import sys
import threading
import urllib.parse
import uuid

HOLD_MAX_S = 25   # below the producer's default --api-timeout (30s): a held request never times out
FIXTURE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fixtures", "randomuser", "quirks.json")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--port-file", required=True)
    ap.add_argument("--tls-cert")
    ap.add_argument("--tls-key")
    ap.add_argument("--fixture", default=FIXTURE)
    args = ap.parse_args()

    with open(args.fixture, encoding="utf-8") as f:
        people = json.load(f)["results"]
    lock = threading.Lock()
    served = [0]
    holds = {}   # page size -> {"serve": answered before holding, "held": waiting now, "release": Event}

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self):  # noqa: N802 (http.server's naming)
            url = urllib.parse.urlsplit(self.path)
            q = urllib.parse.parse_qs(url.query)
            try:
                n = int(q.get("results", ["1"])[0])
            except ValueError:
                n = -1
            if url.path.startswith("/_control/"):
                return self._control(url.path[len("/_control/"):], n, q)
            if not 1 <= n <= 5000:
                return self._send(400, {"error": "results must be 1..5000"})
            self._maybe_hold(n)
            with lock:
                start = served[0]
                served[0] += n
            results = []
            for i in range(start, start + n):
                p = copy.deepcopy(people[i % len(people)])
                p["login"]["uuid"] = str(uuid.uuid4())
                p["login"]["username"] = "user%d" % (i + 1)
                results.append(p)
            info = {"seed": q.get("seed", ["f4k3a91"])[0], "results": n,
                    "page": int(q.get("page", ["1"])[0]), "version": "1.4"}
            self._send(200, {"results": results, "info": info})

        def _control(self, what, n, q):
            with lock:
                if what == "hold":
                    holds[n] = {"serve": int(q.get("serve", ["0"])[0]), "held": 0, "release": threading.Event()}
                    return self._send(200, {"holding": n})
                if what == "held":
                    return self._send(200, {"held": holds[n]["held"] if n in holds else 0})
                if what == "release":
                    h = holds.pop(n, None)
                    if h:
                        h["release"].set()
                    return self._send(200, {"released": h["held"] if h else 0})
            return self._send(404, {"error": "unknown control %r" % what})

        def _maybe_hold(self, n):
            with lock:
                h = holds.get(n)
                if h is None:
                    return
                if h["serve"] > 0:
                    h["serve"] -= 1
                    return
                h["held"] += 1
            h["release"].wait(HOLD_MAX_S)
            with lock:
                h["held"] -= 1

        def _send(self, status, obj):
            body = json.dumps(obj, ensure_ascii=False).encode("utf-8")
            self.send_response(status)
            self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, fmt, *a):
            sys.stderr.write("fake_api: %s %s\n" % (self.address_string(), fmt % a))

    srv = http.server.ThreadingHTTPServer((args.host, args.port), Handler)
    if args.tls_cert:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(args.tls_cert, args.tls_key)
        srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
    tmp = args.port_file + ".tmp"
    with open(tmp, "w") as f:
        f.write(str(srv.server_address[1]))
    os.replace(tmp, args.port_file)
    try:
        srv.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
