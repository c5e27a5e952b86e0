#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Questions about the emulators' logs, for tests/e2e (standard library only).

    logs.py issued IMDS_LOG RESOURCE FILE   FILE holds a token IMDS issued for RESOURCE
    logs.py count IMDS_LOG [WHICH]          prints how many requests were logged; WHICH:
                                            a fault name (those that met it), "throttled"
                                            (answered 429 by --limits), "issued" (200
                                            with a token) or resource=URI (asked for URI)
    logs.py holders IMDS_LOG RESOURCE FILE...  prints how many FILEs hold a token IMDS
                                            issued for RESOURCE
    logs.py expires IMDS_LOG FILE           prints the expires_on of the token FILE holds
    logs.py pieces IMDS_LOG                 prints a 48-character piece of every issued
                                            token, one a line (for grep -F -f)
    logs.py imds-shaped IMDS_LOG            every request was an IMDS token request to
                                            169.254.169.254 with Metadata: true, api-version,
                                            and no X-Forwarded-For
    logs.py expiry IMDS_LOG LIST_JSON       every key of `azid list --json` expires no later
                                            than the tokens issued for its resource (a
                                            secret: for https://vault.azure.net), and at
                                            most 300 s before them
    logs.py vault-authorized KV_LOG         Key Vault saw requests, each with a bearer token
                                            IMDS issued for the vault audience, answered 200
    logs.py leaks IMDS_LOG FILE...          prints the files that contain an issued token or
                                            the value of $E2E_SECRET_VALUE
    logs.py show IMDS_LOG                   one line per request, for people

The checks exit 0 when true, 1 when false.
"""

import json
import os
import sys
import time

VAULT_AUDIENCE = "https://vault.azure.net"
EXPIRY_SKEW_LIMIT = 300


def entries(path):
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def issued_for(log, resource):
    return [e for e in log if e["status"] == 200 and e["query"].get("resource") == [resource]]


def cmd_issued(log_path, resource, path):
    with open(path, encoding="utf-8") as f:
        held = f.read()
    return bool(held) and any(e["access_token"] == held for e in issued_for(entries(log_path), resource))


def cmd_count(log_path, which=None):
    tests = {
        None: lambda e: True,
        "throttled": lambda e: e.get("throttled"),
        "issued": lambda e: e["status"] == 200 and e["access_token"],
    }
    if which and which.startswith("resource="):
        return cmd_count_resource(log_path, which[len("resource="):])
    test = tests.get(which, lambda e: e["fault"] == which)
    print(sum(1 for e in entries(log_path) if test(e)))
    return True


def cmd_count_resource(log_path, resource):
    print(sum(1 for e in entries(log_path) if e["query"].get("resource") == [resource]))
    return True


def cmd_holders(log_path, resource, *files):
    tokens = {e["access_token"] for e in issued_for(entries(log_path), resource)}
    held = 0
    for path in files:
        try:
            with open(path, encoding="utf-8") as f:
                held += f.read() in tokens
        except FileNotFoundError:
            pass
    print(held)
    return True


def cmd_expires(log_path, path):
    with open(path, encoding="utf-8") as f:
        held = f.read()
    found = [e["expires_on"] for e in entries(log_path) if held and e["access_token"] == held]
    if found:
        print(found[0])
    return bool(found)


def cmd_pieces(log_path):
    for e in entries(log_path):
        if e["access_token"]:
            signature = e["access_token"].rsplit(".", 1)[-1]
            print(signature[len(signature) // 2 - 24:len(signature) // 2 + 24])
    return True


def cmd_imds_shaped(log_path):
    log = entries(log_path)
    return bool(log) and all(
        e["path"] == "/metadata/identity/oauth2/token"
        and e["headers"].get("metadata") == "true"
        and e["headers"].get("host") in ("169.254.169.254", "169.254.169.254:80")
        and "x-forwarded-for" not in e["headers"]
        and e["query"].get("api-version")
        for e in log)


def cmd_expiry(log_path, listing):
    log = entries(log_path)
    with open(listing, encoding="utf-8") as f:
        keys = json.load(f)["keys"]
    if not keys:
        return False
    for key in keys:
        resource = key.get("resource") if key["kind"] == "token" else VAULT_AUDIENCE
        expiries = [e["expires_on"] for e in issued_for(log, resource)]
        if not expiries or key["expires_on"] is None:
            return False
        if not min(expiries) - EXPIRY_SKEW_LIMIT <= key["expires_on"] <= max(expiries):
            print("%s expires at %s; tokens for %s at %s" % (key["description"], key["expires_on"],
                                                            resource, expiries))
            return False
    return True


def cmd_vault_authorized(kv_log):
    requests = [e for e in entries(kv_log) if e.get("method")]
    return bool(requests) and all(e["auth"] == "ok" and e["status"] == 200 for e in requests)


def cmd_leaks(log_path, *files):
    values = [e["access_token"] for e in entries(log_path) if e["access_token"]]
    if os.environ.get("E2E_SECRET_VALUE"):
        values.append(os.environ["E2E_SECRET_VALUE"])
    for path in files:
        with open(path, encoding="utf-8", errors="replace") as f:
            text = f.read()
        if any(v in text for v in values):
            print(path)
    return True


def cmd_show(log_path):
    for e in entries(log_path):
        query = "&".join("%s=%s" % (k, v[0]) for k, v in e["query"].items())
        expiry = time.strftime("%H:%M:%S UTC", time.gmtime(e["expires_on"])) if e["expires_on"] else "-"
        print("%s %s?%s  Metadata: %s  -> %s, token expires %s"
              % (e["method"], e["path"], query, e["headers"].get("metadata"), e["fault"] or e["status"],
                 expiry))
    return True


COMMANDS = {
    "issued": cmd_issued,
    "count": cmd_count,
    "holders": cmd_holders,
    "expires": cmd_expires,
    "pieces": cmd_pieces,
    "imds-shaped": cmd_imds_shaped,
    "expiry": cmd_expiry,
    "vault-authorized": cmd_vault_authorized,
    "leaks": cmd_leaks,
    "show": cmd_show,
}

if __name__ == "__main__":
    if len(sys.argv) < 3 or sys.argv[1] not in COMMANDS:
        sys.exit(__doc__)
    sys.exit(0 if COMMANDS[sys.argv[1]](*sys.argv[2:]) else 1)
