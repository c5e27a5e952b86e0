#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""A local HTTPS emulator of Azure Key Vault's secret reads, for tests.

    python3 tests/emulator/keyvault.py --cert FILE --key FILE [--bind ADDR] [--port N]
        [--port-file FILE] [--log FILE] [--imds-log FILE] [--resource URI]
        [--secret NAME=VALUE[,version=V][,exp=EPOCH][,nbf=EPOCH][,enabled=false]]...
        [--fault FAULT]...

Serves GET /secrets/<name>[/<version>]?api-version=... like Key Vault:
  - api-version missing -> 400 BadParameter;
  - no "Authorization: Bearer <token>" -> 401 with Key Vault's challenge;
    with --imds-log, a token that the IMDS emulator (tests/emulator/imds.py)
    did not issue for --resource (default https://vault.azure.net), as its
    log shows -> 401; without --imds-log any bearer token is accepted;
  - unknown name or version -> 404 SecretNotFound;
  - enabled=false -> 403 Forbidden "Operation get is not allowed on a
    disabled secret.";
  - else 200 {"value","id","attributes":{enabled,created,updated,
    recoveryLevel,recoverableDays[,exp][,nbf]},"tags":{}}.
Everything listens on TLS with --cert/--key; the handshake runs in the
request's thread, so a client that rejects the certificate shows up in the
log as a handshake failure and never as a request.

--log FILE: one JSON object per line.  Requests: {"method","path","query",
"headers" (lower-case names, without authorization),"auth_scheme",
"token_sha256" (hex SHA-256 of the bearer token, never the token itself),
"auth" ("ok", "missing", "unknown", "wrong-resource", "unchecked"),"status",
"fault"}.  Handshake failures: {"method": null, "tls_error": "..."}.

Faults are consumed one per secret request, before anything is checked,
in order (then requests are answered normally):
    "<status>"               a Key Vault error body (403: its long RBAC text)
    "<status>:retry-after=N" the same with Retry-After: N
    "302"..."308"            a redirect to https://evil.example.com/<path>
    "hang"                   never answer (until the client gives up)
    "reset"                  close the connection with an RST
    "huge"                   200 with a 10 MiB body
    "badjson"                200 with an HTML body
    "field:NAME=JSON"        200 whose top-level field NAME is JSON
    "nofield:NAME"           200 without top-level field NAME
"hang-all" (start only) makes every request hang.
"""

import argparse
import hashlib
import json
import os
import re
import secrets
import select
import signal
import socket
import ssl
import struct
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from imds import HUGE_BYTES, write_port_file  # noqa: E402

SECRET_PATH = re.compile(r"^/secrets/([0-9A-Za-z-]+)(?:/([0-9A-Za-z]*))?/?$")
ERROR_CODES = {
    400: "BadParameter",
    401: "Unauthorized",
    403: "Forbidden",
    404: "SecretNotFound",
    409: "Conflict",
    429: "Throttled",
    500: "InternalServerError",
    502: "BadGateway",
    503: "ServiceUnavailable",
    504: "GatewayTimeout",
}
# Key Vault's own texts where they matter to a test: its 403 for a missing
# role assignment is long (it names the caller, action and resource).
ERROR_MESSAGES = {
    403: "Caller is not authorized to perform action on resource.\r\nIf role assignments, deny assignments "
         "or role definitions were changed recently, please observe propagation time.\r\nCaller: "
         "appid=00000000-0000-0000-0000-000000000001;oid=00000000-0000-0000-0000-000000000002;"
         "iss=https://sts.windows.net/00000000-0000-0000-0000-000000000000/\r\nAction: "
         "'Microsoft.KeyVault/vaults/secrets/getSecret/action'\r\nResource: '/subscriptions/"
         "00000000-0000-0000-0000-000000000003/resourcegroups/rg/providers/microsoft.keyvault/vaults/"
         "myvault/secrets/db-password'\r\nAssignment: (not found)\r\nDenyAssignmentId: null\r\n"
         "DecisionReason: null \r\nVault: myvault;location=westeurope\r\n",
}
REDIRECTS = range(300, 309)
SECRET_OPTIONS = re.compile(r",(version|exp|nbf|enabled)=([^,]*)$")


class Secret:
    def __init__(self, spec):
        name, sep, rest = spec.partition("=")
        if not sep or not re.fullmatch(r"[0-9A-Za-z-]+", name):
            raise ValueError("bad --secret %r: use NAME=VALUE[,version=V][,exp=EPOCH][,nbf=EPOCH]"
                             "[,enabled=false]" % spec)
        self.name = name
        self.version = secrets.token_hex(16)
        self.attributes = {"enabled": True}
        while True:
            m = SECRET_OPTIONS.search(rest)
            if not m:
                break
            key, value = m.groups()
            rest = rest[: m.start()]
            if key == "version":
                self.version = value
            elif key == "enabled":
                self.attributes["enabled"] = value != "false"
            else:
                self.attributes[key] = int(value)
        self.value = rest


class State:
    def __init__(self, args):
        self.args = args
        self.secrets = [Secret(s) for s in args.secret]
        self.lock = threading.Lock()
        self.hang_all = "hang-all" in args.fault
        self.faults = [f for f in args.fault if f != "hang-all"]
        self.log_file = open(args.log, "a", encoding="utf-8") if args.log else None

    def next_fault(self):
        with self.lock:
            if self.hang_all:
                return "hang"
            return self.faults.pop(0) if self.faults else None

    def record(self, entry):
        with self.lock:
            if self.log_file:
                self.log_file.write(json.dumps(entry) + "\n")
                self.log_file.flush()

    def token_status(self, token):
        """ok / unknown / wrong-resource / unchecked, from the IMDS emulator's log."""
        if not self.args.imds_log:
            return "unchecked"
        try:
            with open(self.args.imds_log, encoding="utf-8") as f:
                issued = [json.loads(line) for line in f if line.strip()]
        except FileNotFoundError:
            issued = []
        resources = [e.get("query", {}).get("resource", [None])[0]
                     for e in issued if e.get("access_token") == token]
        if not resources:
            return "unknown"
        return "ok" if self.args.resource in resources else "wrong-resource"


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "keyvault-emulator/1"

    def log_message(self, *args):
        pass

    def finish(self):
        try:
            super().finish()
        except OSError:
            pass

    def state(self):
        return self.server.state

    def send(self, status, body, content_type="application/json; charset=utf-8", extra=()):
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        for name, value in extra:
            self.send_header(name, value)
        self.end_headers()
        try:
            self.wfile.write(data)
        except OSError:
            self.close_connection = True

    def send_error_body(self, status, code, message, extra=()):
        self.send(status, {"error": {"code": code, "message": message}}, extra=extra)

    def entry(self, status, auth, fault=None):
        scheme, _, token = (self.headers.get("Authorization") or "").partition(" ")
        self.state().record({
            "method": self.command,
            "path": urllib.parse.urlsplit(self.path).path,
            "query": urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query, keep_blank_values=True),
            "headers": {k.lower(): v for k, v in self.headers.items() if k.lower() != "authorization"},
            "auth_scheme": scheme or None,
            "token_sha256": hashlib.sha256(token.encode()).hexdigest() if token else None,
            "auth": auth,
            "status": status,
            "fault": fault,
        })

    # ---- faults ---------------------------------------------------------------

    def wait_for_client_close(self):
        sock = self.connection
        while True:
            ready, _, _ = select.select([sock], [], [], 0.5)
            if not ready:
                continue
            try:
                if not sock.recv(4096):
                    return
            except ssl.SSLWantReadError:
                continue
            except OSError:
                return

    def fault_response(self, fault):
        """Answers per the fault; False for the faults that shape a 200."""
        if fault.startswith(("field:", "nofield:")):
            return False
        if fault == "hang":
            self.entry(0, None, fault)
            self.wait_for_client_close()
        elif fault == "reset":
            self.entry(0, None, fault)
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.connection.close()
        elif fault == "huge":
            self.entry(200, None, fault)
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(HUGE_BYTES))
            self.end_headers()
            try:
                for _ in range(HUGE_BYTES // 65536):
                    self.wfile.write(b"x" * 65536)
            except OSError:
                pass
        elif fault == "badjson":
            self.entry(200, None, fault)
            self.send(200, b"<html><body>upstream error</body></html>", "text/html")
            return True
        else:
            status, sep, option = fault.partition(":")
            code = int(status)
            self.entry(code, None, fault)
            if code in REDIRECTS:
                self.send(code, b"", extra=[("Location", "https://evil.example.com" + self.path)])
                return True
            extra = [("Retry-After", option[len("retry-after="):])] if sep else []
            self.send_error_body(code, ERROR_CODES.get(code, "Error%d" % code),
                                 ERROR_MESSAGES.get(code, "emulated fault %s" % fault), extra=extra)
            return True
        self.close_connection = True
        return True

    # ---- the secret endpoint -------------------------------------------------------

    def authorize(self):
        """The auth verdict, or None after answering 401."""
        header = self.headers.get("Authorization") or ""
        scheme, _, token = header.partition(" ")
        challenge = [("WWW-Authenticate", 'Bearer authorization="https://login.microsoftonline.com/'
                                          '00000000-0000-0000-0000-000000000000", resource="%s"'
                      % self.state().args.resource)]
        if scheme != "Bearer" or not token:
            self.entry(401, "missing")
            self.send_error_body(401, "Unauthorized", "AKV10000: Request is missing a Bearer or PoP token.",
                                 extra=challenge)
            return None
        verdict = self.state().token_status(token)
        if verdict == "unknown":
            self.entry(401, verdict)
            self.send_error_body(401, "Unauthorized", "AKV10032: Invalid issuer.", extra=challenge)
            return None
        if verdict == "wrong-resource":
            self.entry(401, verdict)
            self.send_error_body(401, "Unauthorized", "AKV10022: Invalid audience. Expected %s."
                                 % self.state().args.resource, extra=challenge)
            return None
        return verdict

    def secret_body(self, secret, fault):
        host = self.headers.get("Host") or "localhost"
        now = int(time.time())
        attributes = dict(secret.attributes, created=now - 86400, updated=now - 86400,
                          recoveryLevel="Recoverable+Purgeable", recoverableDays=90)
        body = {"value": secret.value,
                "id": "https://%s/secrets/%s/%s" % (host, secret.name, secret.version),
                "attributes": attributes, "tags": {}}
        if fault and fault.startswith("field:"):
            name, _, value = fault[len("field:"):].partition("=")
            body[name] = json.loads(value)
        elif fault and fault.startswith("nofield:"):
            body.pop(fault[len("nofield:"):], None)
        return body

    def do_GET(self):
        st = self.state()
        url = urllib.parse.urlsplit(self.path)
        m = SECRET_PATH.match(url.path)
        if not m:
            self.entry(404, None)
            return self.send_error_body(404, "NotFound", "no such path %s" % url.path)
        fault = st.next_fault()
        if fault and self.fault_response(fault):
            return
        if "api-version" not in urllib.parse.parse_qs(url.query):
            self.entry(400, None, fault)
            return self.send_error_body(400, "BadParameter", "The api-version query parameter "
                                        "(?api-version=) is required for all requests")
        auth = self.authorize()
        if auth is None:
            return
        name, version = m.group(1), m.group(2) or ""
        found = [s for s in st.secrets if s.name.lower() == name.lower() and version in ("", s.version)]
        if not found:
            self.entry(404, auth, fault)
            return self.send_error_body(404, "SecretNotFound", "A secret with (name/version) = (%s/%s) was not "
                                        "found in this key vault." % (name, version))
        secret = found[-1]
        if not secret.attributes.get("enabled", True):
            self.entry(403, auth, fault)
            return self.send_error_body(403, "Forbidden", "Operation get is not allowed on a disabled secret.")
        self.entry(200, auth, fault)
        self.send(200, self.secret_body(secret, fault))


def check_fault(fault):
    status, sep, option = fault.partition(":")
    if fault in ("hang", "hang-all", "reset", "huge", "badjson"):
        return
    if status.isdigit() and (not sep or option.startswith("retry-after=")):
        return
    if fault.startswith("field:") and "=" in fault:
        json.loads(fault.partition("=")[2])
        return
    if fault.startswith("nofield:") and len(fault) > len("nofield:"):
        return
    raise ValueError("unknown fault %r" % fault)


def main():
    p = argparse.ArgumentParser(description="Azure Key Vault secret-read emulator (tests only)")
    p.add_argument("--bind", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--port-file")
    p.add_argument("--cert", required=True)
    p.add_argument("--key", required=True)
    p.add_argument("--log")
    p.add_argument("--imds-log")
    p.add_argument("--resource", default="https://vault.azure.net")
    p.add_argument("--secret", action="append", default=[])
    p.add_argument("--fault", action="append", default=[])
    args = p.parse_args()
    try:
        for spec in args.secret:
            Secret(spec)
        for f in args.fault:
            check_fault(f)
    except ValueError as e:
        p.error(str(e))

    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(args.cert, args.key)

    class Server(ThreadingHTTPServer):
        address_family = socket.AF_INET6 if ":" in args.bind else socket.AF_INET
        daemon_threads = True
        allow_reuse_address = True

        def finish_request(self, request, client_address):
            # The handshake runs here, in the request's thread.
            request.settimeout(10)
            try:
                tls = context.wrap_socket(request, server_side=True)
            except (ssl.SSLError, OSError) as e:
                self.state.record({"method": None, "tls_error": str(e)})
                return
            tls.settimeout(None)
            try:
                super().finish_request(tls, client_address)
            finally:
                tls.close()

    server = Server((args.bind, args.port), Handler)
    server.state = State(args)

    def stop(signum, frame):
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    if args.port_file:
        write_port_file(args.port_file, server.server_address[1])
    server.serve_forever(poll_interval=0.1)
    server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
