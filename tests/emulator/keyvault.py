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
import re
import secrets
import sys
import time
import urllib.parse

import common

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


class State(common.State):
    def __init__(self, args):
        super().__init__(args)
        self.secrets = [Secret(s) for s in args.secret]

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


class Handler(common.Handler):
    server_version = "keyvault-emulator/1"
    content_type = "application/json; charset=utf-8"
    hidden_headers = ("authorization",)  # the log names the token by its hash only

    def send_error_body(self, status, code, message, extra=()):
        self.send(status, {"error": {"code": code, "message": message}}, extra=extra)

    def entry(self, status, auth=None, fault=None):
        scheme, _, token = (self.headers.get("Authorization") or "").partition(" ")
        self.state().record(dict(
            self.request_fields(),
            auth_scheme=scheme or None,
            token_sha256=hashlib.sha256(token.encode()).hexdigest() if token else None,
            auth=auth,
            status=status,
            fault=fault,
        ))

    def answer_status_fault(self, code, fault, extra):
        if code in REDIRECTS:
            self.send(code, b"", extra=[("Location", "https://evil.example.com" + self.path)])
        else:
            self.send_error_body(code, ERROR_CODES.get(code, "Error%d" % code),
                                 ERROR_MESSAGES.get(code, "emulated fault %s" % fault), extra=extra)

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
        return common.shape_body(body, fault)

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


def main():
    p = argparse.ArgumentParser(description="Azure Key Vault secret-read emulator (tests only)")
    common.add_listen_arguments(p)
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
            common.check_fault(f, common.FAULTS)
    except ValueError as e:
        p.error(str(e))

    return common.serve(args, Handler, State, common.tls_server_class(args.cert, args.key))


if __name__ == "__main__":
    sys.exit(main())
