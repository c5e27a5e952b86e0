#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""A local emulator of Azure's managed-identity token endpoints, for tests.

Speaks IMDS by default (and Arc, App Service, Cloud Shell or workload
identity with --mode).  Faults make it misbehave on purpose.  The interface
is a contract other tests rely on: see tests/emulator/README.md.
"""

import argparse
import base64
import collections
import json
import os
import secrets
import sys
import time
import urllib.parse

import common

TOKEN_PATH = "/metadata/identity/oauth2/token"
MODE_API_VERSION = {
    "imds": "2018-02-01",
    "arc": "2019-11-01",
    "appservice": "2019-08-01",
}
ARC_TOKEN_DIR = "/var/opt/azcmagent/tokens"
FAULTS = common.FAULTS | {"drip", "truncated"}
# IMDS's documented limits for the identity endpoints (per VM), which
# --limits enforces: requests answered at once and started per second.
LIMIT_IN_FLIGHT = 5
LIMIT_PER_SECOND = 20
# Seconds the emulator asks a throttled caller to wait (Retry-After).
THROTTLE_RETRY_AFTER = 1
# Smallest --token-size: room for a JWT-shaped header and some claims.
MIN_TOKEN_SIZE = 200
# Reason strings for emulated error statuses, in the style of IMDS's bodies.
ERROR_NAMES = {
    400: "invalid_request",
    404: "not_found",
    410: "gone",
    429: "too_many_requests",
    500: "unknown_error",
    502: "bad_gateway",
    503: "service_unavailable",
    504: "gateway_timeout",
}


def new_access_token(size=None):
    """A fresh random JWT-shaped token: three base64url parts, ~1.3 KB, or
    exactly size characters (the signature part takes up the difference)."""

    def part(raw):
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    header = part(json.dumps({"typ": "JWT", "alg": "RS256", "x5t": secrets.token_hex(8)}).encode())
    if size is None:
        claims = part(json.dumps({"aud": "emulated", "nonce": secrets.token_hex(300)}).encode())
        return "%s.%s.%s" % (header, claims, part(secrets.token_bytes(256)))
    claims = part(json.dumps({"aud": "emulated", "nonce": secrets.token_hex(8)}).encode())
    room = size - len(header) - len(claims) - 2
    return "%s.%s.%s" % (header, claims, part(secrets.token_bytes(room))[:room])


class Identity:
    def __init__(self, spec):
        self.system = spec == "system"
        self.ids = {}
        if not self.system:
            for item in spec.split(","):
                name, sep, value = item.partition("=")
                if not sep or name not in ("client_id", "object_id", "msi_res_id"):
                    raise ValueError("bad --identity %r: use system or client_id=C,object_id=O,msi_res_id=R" % spec)
                self.ids[name] = value


class State(common.State):
    def __init__(self, args):
        super().__init__(args, keep_log=True)  # GET /_emulator/log serves it
        self.identities = [Identity(s) for s in (args.identity or ["system"])]
        self.arc_keys = set()
        self.in_flight = 0
        self.admitted = collections.deque()  # monotonic start times of the last second

    def admit(self):
        """With --limits: True and one more request in flight when IMDS's
        limits allow another token request now, else False.  Only admitted
        requests count against the limits."""
        if not self.args.limits:
            return True
        now = time.monotonic()
        with self.lock:
            while self.admitted and now - self.admitted[0] >= 1.0:
                self.admitted.popleft()
            if self.in_flight >= LIMIT_IN_FLIGHT or len(self.admitted) >= LIMIT_PER_SECOND:
                return False
            self.in_flight += 1
            self.admitted.append(now)
            return True

    def done(self):
        if self.args.limits:
            with self.lock:
                self.in_flight -= 1


class Handler(common.Handler):
    server_version = "imds-emulator/1"

    def entry(self, status, token=None, expires_on=None, fault=None, body=None, throttled=False):
        e = dict(self.request_fields(), status=status, access_token=token, expires_on=expires_on, fault=fault,
                 throttled=throttled, time=round(time.time(), 3))
        if body is not None:
            e["form"] = body
        self.state().record(e)

    def answer_status_fault(self, code, fault, extra):
        self.send(code, {"error": ERROR_NAMES.get(code, "error_%d" % code),
                         "error_description": "emulated fault %s" % fault}, extra=extra)

    # ---- the token endpoint -------------------------------------------------

    def error(self, status, error, description, fault=None):
        self.entry(status, fault=fault)
        self.send(status, {"error": error, "error_description": description})

    def select_identity(self, query):
        """Returns (identity, None) or (None, (error, description))."""
        idents = self.state().identities
        chosen = [(n, query[n][0]) for n in ("client_id", "object_id", "msi_res_id", "mi_res_id",
                                             "principal_id") if n in query]
        if len(chosen) > 1:
            return None, ("invalid_request", "Only one of client_id, object_id and msi_res_id may be given")
        if chosen:
            name, value = chosen[0]
            name = {"mi_res_id": "msi_res_id", "principal_id": "object_id"}.get(name, name)
            for ident in idents:
                if not ident.system and ident.ids.get(name) == value:
                    return ident, None
            return None, ("invalid_request", "Identity not found")
        if any(i.system for i in idents):
            return next(i for i in idents if i.system), None
        if len(idents) == 1:
            return idents[0], None
        if not idents:
            return None, ("invalid_request", "Identity not found")
        return None, ("invalid_request", "Multiple user assigned identities exist, please specify "
                      "the clientId / resourceId of the identity in the token request")

    def token_body(self, resource, ident, fault, numeric=False):
        lifetime = self.state().args.lifetime
        now = int(time.time())
        token = new_access_token(self.state().args.token_size)
        body = {
            "access_token": token,
            "refresh_token": "",
            "expires_in": str(lifetime),
            "expires_on": str(now + lifetime),
            "ext_expires_in": str(lifetime),
            "not_before": str(now),
            "resource": resource,
            "token_type": "Bearer",
        }
        if ident is not None and not ident.system:
            body.update(ident.ids)
        if numeric:  # Entra v2: numbers, and no expires_on
            body = {"access_token": token, "expires_in": lifetime, "ext_expires_in": lifetime,
                    "token_type": "Bearer"}
        return common.shape_body(body, fault)

    def answer_token(self, resource, ident, fault, numeric=False, form=None):
        body = self.token_body(resource, ident, fault, numeric)
        data = json.dumps(body).encode()
        if fault == "truncated":
            data = data[: len(data) // 2]
        token = body.get("access_token")
        expires = body.get("expires_on")
        try:
            expires = int(expires) if expires is not None else None
        except (TypeError, ValueError):
            expires = None
        if expires is None and numeric:
            expires = int(time.time()) + self.state().args.lifetime
        self.entry(200, token=token if isinstance(token, str) else None,
                   expires_on=expires, fault=fault, body=form)
        self.send(200, data)

    def token_request(self, mode, form=None):
        st = self.state()
        query = self.parse_query()
        fault = st.next_fault()
        if fault and fault.startswith("slow:"):
            time.sleep(float(fault[len("slow:"):]))
        elif fault and self.fault_response(fault):
            return
        if mode in ("imds", "arc", "cloudshell") and self.headers.get("Metadata") != "true":
            return self.error(400, "bad_request_102", "Required metadata header not specified", fault)
        if self.headers.get("X-Forwarded-For") is not None:
            return self.error(400, "bad_request_103",
                              "Request contains a X-Forwarded-For header; proxies are not supported", fault)
        want_version = MODE_API_VERSION.get(mode)
        if want_version and "api-version" not in query:
            return self.error(400, "invalid_request", "api-version was not specified", fault)
        if any(len(v) > 1 for v in query.values()):
            return self.error(400, "invalid_request", "Duplicate query parameter names", fault)
        # IMDS takes any version from 2018-02-01 on; the other sources are pinned.
        if want_version and mode != "imds" and query["api-version"][0] != want_version:
            return self.error(400, "invalid_request",
                              "api-version %s is not supported here (want %s)"
                              % (query["api-version"][0], want_version), fault)
        if mode == "arc" and not self.arc_authorized(fault):
            return
        if mode == "appservice" and self.headers.get("X-IDENTITY-HEADER") != st.args.secret:
            return self.error(401, "unauthorized", "X-IDENTITY-HEADER missing or wrong", fault)
        resource = (form or query).get("resource", [""])[0]
        if not resource:
            return self.error(400, "invalid_request", "Required query variable 'resource' is missing",
                              fault)
        if mode in ("arc", "cloudshell") and any(n in query for n in ("client_id", "object_id", "msi_res_id")):
            return self.error(400, "invalid_request", "User assigned identities are not supported", fault)
        ident, problem = self.select_identity(query)
        if problem:
            return self.error(400, problem[0], problem[1], fault)
        self.answer_token(resource, ident, fault, form=form)

    def arc_authorized(self, fault):
        """The Arc challenge: a request without the key file's contents gets
        a 401 naming a fresh key file; the retry must send its contents."""
        st = self.state()
        auth = self.headers.get("Authorization") or ""
        if auth.startswith("Basic ") and auth[len("Basic "):] in st.arc_keys:
            return True
        key = secrets.token_hex(32)
        path = os.path.join(st.args.arc_token_dir, secrets.token_hex(8) + ".key")
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(key)
        with st.lock:
            st.arc_keys.add(key)
        self.entry(401, fault=fault)
        self.send(401, {"error": "unauthorized", "error_description": "challenge"},
                  extra=[("WWW-Authenticate", "Basic realm=%s" % path)])
        return False

    def cloudshell_request(self):
        raw = self.read_body().decode("utf-8", "replace")
        return self.token_request("cloudshell", form=urllib.parse.parse_qs(raw, keep_blank_values=True))

    def workload_request(self):
        st = self.state()
        query = self.parse_query()
        raw = self.read_body().decode("utf-8", "replace")
        form = urllib.parse.parse_qs(raw, keep_blank_values=True)
        fault = st.next_fault()
        if fault and self.fault_response(fault):
            return
        want = {
            "grant_type": "client_credentials",
            "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
        }
        for name, value in want.items():
            if form.get(name, [""])[0] != value:
                self.entry(400, fault=fault, body=form)
                return self.send(400, {"error": "invalid_request", "error_description": "bad %s" % name})
        if not form.get("client_assertion", [""])[0] or not form.get("client_id", [""])[0] \
                or not form.get("scope", [""])[0].endswith("/.default"):
            self.entry(400, fault=fault, body=form)
            return self.send(400, {"error": "invalid_request",
                                   "error_description": "AADSTS900144: client_assertion, client_id and "
                                                        "scope (.../.default) are required"})
        self.answer_token(None, None, fault, numeric=True, form=form)

    def limited(self, answer, *args, **kwargs):
        """Answers a token request with answer(...), or with 429 and
        Retry-After when --limits is on and IMDS's limits are reached."""
        st = self.state()
        if not st.admit():
            if self.command == "POST":
                self.read_body()
            self.entry(429, throttled=True)
            return self.send(429, {"error": "too_many_requests",
                                   "error_description": "Too many requests: the identity endpoint allows %d "
                                                        "requests in flight and %d a second"
                                                        % (LIMIT_IN_FLIGHT, LIMIT_PER_SECOND)},
                             extra=[("Retry-After", str(THROTTLE_RETRY_AFTER))])
        try:
            return answer(*args, **kwargs)
        finally:
            st.done()

    # ---- dispatch -----------------------------------------------------------

    def do_GET(self):
        path = urllib.parse.urlsplit(self.path).path
        mode = self.state().args.mode
        if path == "/_emulator/log":
            return self.send(200, self.state().log_copy())
        if mode in ("imds", "arc") and path == TOKEN_PATH or mode == "appservice" and path == self.server.state.args.path:
            return self.limited(self.token_request, mode)
        self.entry(404)
        self.send(404, {"error": "not_found", "error_description": "no such path %s" % path})

    def do_POST(self):
        path = urllib.parse.urlsplit(self.path).path
        mode = self.state().args.mode
        if path == "/_emulator/faults":
            try:
                faults = json.loads(self.read_body() or b"[]")
                if not isinstance(faults, list) or not all(isinstance(f, str) for f in faults):
                    raise ValueError("faults must be a JSON list of strings")
                for f in faults:
                    if f == "hang-all":
                        raise ValueError("hang-all is a start-time fault")
                    check_fault(f)
            except ValueError as e:
                return self.send(400, {"error": str(e)})
            self.state().set_faults(faults)
            return self.send(200, {"faults": faults})
        if mode == "cloudshell" and path == self.server.state.args.path:
            return self.limited(self.cloudshell_request)
        if mode == "workload" and path.endswith("/oauth2/v2.0/token"):
            return self.limited(self.workload_request)
        self.read_body()
        self.entry(404)
        self.send(404, {"error": "not_found", "error_description": "no such path %s" % path})


def check_fault(fault):
    if fault.startswith("slow:") and 0 <= float(fault[len("slow:"):]) <= 30:
        return
    common.check_fault(fault, FAULTS, " (see tests/emulator/README.md)")


def main():
    p = argparse.ArgumentParser(description="Azure managed-identity endpoint emulator (tests only)")
    common.add_listen_arguments(p)
    p.add_argument("--log")
    p.add_argument("--identity", action="append")
    p.add_argument("--lifetime", type=int, default=3599)
    p.add_argument("--token-size", type=int, default=None,
                   help="length of each access token in bytes (default: about 1.3 KB)")
    p.add_argument("--limits", action="store_true",
                   help="enforce IMDS's limits: %d token requests in flight, %d a second; 429 beyond"
                   % (LIMIT_IN_FLIGHT, LIMIT_PER_SECOND))
    p.add_argument("--fault", action="append", default=[])
    p.add_argument("--mode", choices=["imds", "arc", "appservice", "cloudshell", "workload"], default="imds")
    p.add_argument("--arc-token-dir", default=ARC_TOKEN_DIR)
    p.add_argument("--secret", default="emulated-identity-header",
                   help="appservice: the X-IDENTITY-HEADER value expected")
    p.add_argument("--path", default=None, help="appservice/cloudshell: token path (default /msi/token)")
    p.add_argument("--cert", help="serve HTTPS with this certificate (and --key)")
    p.add_argument("--key")
    args = p.parse_args()
    if args.token_size is not None and args.token_size < MIN_TOKEN_SIZE:
        p.error("--token-size must be at least %d" % MIN_TOKEN_SIZE)
    if args.path is None:
        args.path = "/msi/token"
    try:
        for spec in args.identity or []:
            Identity(spec)
        for f in args.fault:
            check_fault(f)
    except ValueError as e:
        p.error(str(e))

    if args.cert:
        return common.serve(args, Handler, State, common.tls_server_class(args.cert, args.key))
    return common.serve(args, Handler, State)


if __name__ == "__main__":
    sys.exit(main())
