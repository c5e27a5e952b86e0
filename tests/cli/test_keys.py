#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""azid token, secret and list as a user would see them, against keys in the
real kernel keyring of a throwaway user's own session."""

import base64
import json
import os
import secrets
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import clitest  # noqa: E402
from clitest import add_key, run, run_argv, sleep  # noqa: E402

clitest.enter_namespace()
import harness  # noqa: E402

VAULT = "https://vault.azure.net"
ARM = "https://management.azure.com/"


def opaque_token():
    return "tok-" + secrets.token_urlsafe(48)


def jwt(claims):
    def part(raw):
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()
    return "%s.%s.%s" % (part(b'{"typ":"JWT","alg":"RS256"}'), part(json.dumps(claims).encode()),
                         part(secrets.token_bytes(64)))


box = None


def setUpModule():
    global box
    box = clitest.Sandbox()


def tearDownModule():
    box.close()


class Token(unittest.TestCase):
    def test_only_token_needs_no_argument(self):
        tok = opaque_token()
        r = box.session([add_key("azid:token:" + VAULT, tok), run("token"), run("token", VAULT)])
        for res in r:
            self.assertEqual((res.rc, res.stdout, res.stderr), (0, tok + "\n", ""))

    def test_trailing_slash_variant_both_ways(self):
        vault_tok, arm_tok = opaque_token(), opaque_token()
        r = box.session([add_key("azid:token:" + VAULT, vault_tok),
                         add_key("azid:token:" + ARM, arm_tok),
                         run("token", VAULT + "/"), run("token", ARM.rstrip("/"))])
        self.assertEqual((r[0].rc, r[0].stdout), (0, vault_tok + "\n"))
        self.assertEqual((r[1].rc, r[1].stdout), (0, arm_tok + "\n"))

    def test_several_tokens_need_a_resource(self):
        a, b = opaque_token(), opaque_token()
        r = box.session([add_key("azid:token:" + VAULT, a), add_key("azid:token:" + ARM, b),
                         run("token"), run("token", ARM)])
        self.assertEqual((r[0].rc, r[0].stdout), (1, ""))
        self.assertIn("2 tokens", r[0].stderr)
        self.assertIn(VAULT, r[0].stderr)
        self.assertIn(ARM, r[0].stderr)
        self.assertIn("azid token RESOURCE", r[0].stderr)
        self.assertEqual(r[0].stderr.count("\n"), 1, "one line")
        self.assertEqual((r[1].rc, r[1].stdout), (0, b + "\n"))

    def test_no_token(self):
        r = box.session([run("token"), run("token", VAULT)])
        self.assertEqual((r[0].rc, r[0].stdout), (1, ""))
        self.assertIn("no azid token in your keyring", r[0].stderr)
        self.assertEqual((r[1].rc, r[1].stdout), (1, ""))
        self.assertIn("no token for %s" % VAULT, r[1].stderr)

    def test_other_resource_names_what_is_stored(self):
        r = box.session([add_key("azid:token:" + VAULT, opaque_token()),
                         run("token", "https://storage.azure.com/")])
        self.assertEqual((r[0].rc, r[0].stdout), (1, ""))
        self.assertIn("https://storage.azure.com/", r[0].stderr)
        self.assertIn("stored: %s" % VAULT, r[0].stderr)

    def test_expired_keys_are_gone(self):
        # The only wait in this file: keys that expire after 1 s.
        live, old, old_secret = opaque_token(), opaque_token(), "old-secret-value"
        r = box.session([add_key("azid:token:" + VAULT, live),
                         add_key("azid:token:" + ARM, old, timeout=1),
                         add_key("azid:secret:v1.vault.azure.net/db", old_secret, timeout=1),
                         sleep(1.5),
                         run("token", ARM), run("token"), run("list"),
                         run("secret", "db"), run("list", "--json")])
        expired, only, listing, secret, listing_json = r
        self.assertEqual((expired.rc, expired.stdout), (1, ""))
        self.assertIn("expired or was never stored", expired.stderr)
        self.assertEqual((only.rc, only.stdout), (0, live + "\n"))
        self.assertEqual(listing.rc, 0)
        self.assertEqual([line.split()[:2] for line in listing.stdout.splitlines()],
                         [["token", VAULT]])
        self.assertEqual((secret.rc, secret.stdout), (1, ""))
        self.assertIn("no secret db", secret.stderr)
        self.assertEqual([k["description"] for k in json.loads(listing_json.stdout)["keys"]],
                         ["azid:token:" + VAULT])

    def test_json_from_jwt_exp_claim(self):
        exp = int(time.time()) + 3000
        tok = jwt({"aud": VAULT, "exp": exp})
        r = box.session([add_key("azid:token:" + VAULT, tok, timeout=exp - int(time.time()) - 60),
                         run("token", "--json", VAULT + "/")])
        self.assertEqual(r[0].rc, 0, r[0])
        self.assertTrue(r[0].stdout.endswith("}\n"))
        self.assertEqual(json.loads(r[0].stdout), {"access_token": tok, "expires_on": exp,
                                                   "resource": VAULT, "token_type": "Bearer"})

    def test_json_without_exp_claim_is_the_key_expiry(self):
        tok = opaque_token()
        before = int(time.time())
        r = box.session([add_key("azid:token:" + ARM, tok, timeout=3600), run("token", "--json"),
                         add_key("azid:token:" + VAULT, jwt({"aud": VAULT}), timeout=0),
                         run("token", VAULT, "--json")])
        after = int(time.time())
        doc = json.loads(r[0].stdout)
        self.assertEqual(doc["access_token"], tok)
        self.assertIsInstance(doc["expires_on"], int)
        # /proc/keys shows "59m": rounded down, never later than the key.
        self.assertLessEqual(doc["expires_on"], after + 3600)
        self.assertGreaterEqual(doc["expires_on"], before + 3600 - 120)
        # SPEC: expires_on is an integer: with no expiry at all, no JSON.
        self.assertEqual((r[1].rc, r[1].stdout), (1, ""), r[1])
        self.assertIn("azid token: the key for %s has no timeout and its token no JWT exp claim"
                      % VAULT, r[1].stderr)
        self.assertEqual(len(r[1].stderr.splitlines()), 1, r[1])

    def test_json_exp_claim_out_of_range_is_the_key_expiry(self):
        # Converting 1e300 to an integer is undefined behaviour (the
        # ASan+UBSan stage of scripts/check runs this test): such a claim,
        # and any outside 1 .. year 9999, is ignored for the key's expiry.
        claims = ["1e300", "-1e300", "-9223372036854775808", "9223372036854775807", "0",
                  "253402300800", "1e19"]
        steps = []
        for c in claims:
            tok = jwt({"aud": VAULT}).split(".")
            tok[1] = base64.urlsafe_b64encode(('{"aud":"x","exp":%s}' % c).encode()).rstrip(b"=").decode()
            steps += [add_key("azid:token:" + VAULT, ".".join(tok), timeout=3600), run("token", "--json")]
        before = int(time.time())
        r = box.session(steps)
        after = int(time.time())
        self.assertEqual(len(r), len(claims))
        for claim, res in zip(claims, r):
            self.assertEqual(res.rc, 0, (claim, res))
            doc = json.loads(res.stdout)
            self.assertIsInstance(doc["expires_on"], int, claim)
            self.assertLessEqual(doc["expires_on"], after + 3600, claim)
            self.assertGreaterEqual(doc["expires_on"], before + 3600 - 120, claim)

    def test_works_in_a_header(self):
        tok = opaque_token()
        r = box.session([add_key("azid:token:" + VAULT, tok),
                         run_argv("sh", "-c", 'echo "Authorization: Bearer $(azid token %s)"' % VAULT)])
        self.assertEqual(r[0].stdout, "Authorization: Bearer %s\n" % tok)

    def test_header_on_a_pipe_as_the_docs_show(self):
        # The lead example of README.md and azid(1), the token off argv.
        tok = opaque_token()
        r = box.session([add_key("azid:token:" + VAULT, tok),
                         run_argv("sh", "-c", "azid token %s | sed 's/^/Authorization: Bearer /'" % VAULT)])
        self.assertEqual((r[0].stdout, r[0].stderr), ("Authorization: Bearer %s\n" % tok, ""))

    def test_usage_errors(self):
        r = box.session([run("token", VAULT, ARM), run("token", "--jsn")])
        for res in r:
            self.assertEqual((res.rc, res.stdout), (2, ""))
            self.assertIn("usage: azid token", res.stderr)


class Persistent(unittest.TestCase):
    """keyring=persistent (cron, systemd --user): the keys are in the user's
    persistent keyring, which a later session does not possess."""

    def drop_it(self):
        # The kernel would keep it for 3 days after its last use.
        box.session([run_argv("sh", "-c", "keyctl invalidate $(keyctl get_persistent @s)")])

    def setUp(self):
        self.drop_it()
        self.addCleanup(self.drop_it)

    def test_token_secret_and_list_find_keys_in_the_persistent_keyring(self):
        tok, value = opaque_token(), "s3cr3t-" + secrets.token_hex(8)
        box.session([add_key("azid:token:" + VAULT, tok, persistent=True),
                     add_key("azid:secret:kv.vault.azure.net/db", value, persistent=True)])
        r = box.session([run("token", VAULT), run("token"), run("secret", "db"), run("list"),
                         run_argv("keyctl", "show", "@s")])
        self.assertEqual((r[0].rc, r[0].stdout, r[0].stderr), (0, tok + "\n", ""))
        self.assertEqual((r[1].rc, r[1].stdout), (0, tok + "\n"))
        self.assertEqual((r[2].rc, r[2].stdout), (0, value + "\n"))
        self.assertEqual(r[3].rc, 0, r[3])
        self.assertIn(VAULT, r[3].stdout)
        self.assertIn("kv.vault.azure.net/db", r[3].stdout)
        self.assertNotIn(tok, r[3].stdout)
        self.assertNotIn("_persistent", r[4].stdout, "the session keyring is left as it was")

    def test_a_user_without_one_gets_none_made(self):
        # Live ones only: the previous test's, invalidated, may still be
        # listed (flag i) until the kernel collects it.
        live = run_argv("sh", "-c", "awk '$9 ~ /^_persistent[.]/ && $2 !~ /[RDNi]/' /proc/keys | wc -l")
        r = box.session([live, run("token", VAULT), run("list"), live])
        self.assertEqual(r[0].stdout.strip(), "0", "setUp left none")
        self.assertEqual(r[1].rc, 1)
        self.assertIn("no token for %s in your keyring" % VAULT, r[1].stderr)
        self.assertEqual(r[2].rc, 0)
        self.assertEqual(r[3].stdout.strip(), "0", "no persistent keyring was made")


class Secret(unittest.TestCase):
    def test_by_url_host_name_and_bare_name(self):
        value = "pa55-" + secrets.token_hex(8)
        r = box.session([add_key("azid:secret:kv1.vault.azure.net/db-password", value),
                         run("secret", "https://kv1.vault.azure.net/secrets/db-password"),
                         run("secret", "https://KV1.vault.azure.net/secrets/db-password/0123abcd"),
                         run("secret", "https://kv1.vault.azure.net/secrets/db-password/"),
                         run("secret", "kv1.vault.azure.net/db-password"),
                         run("secret", "db-password"),
                         run("secret", "DB-Password")])
        for res in r:
            self.assertEqual((res.rc, res.stdout, res.stderr), (0, value + "\n", ""))

    def test_multiline_value_is_kept(self):
        value = "-----BEGIN KEY-----\nabc\n-----END KEY-----"
        r = box.session([add_key("azid:secret:kv1.vault.azure.net/pem", value),
                         run("secret", "pem")])
        self.assertEqual(r[0].stdout, value + "\n")

    def test_ambiguous_name_lists_vaults(self):
        r = box.session([add_key("azid:secret:kv1.vault.azure.net/db", "one"),
                         add_key("azid:secret:kv2.vault.azure.net/db", "two"),
                         run("secret", "db"), run("secret", "kv2.vault.azure.net/db")])
        self.assertEqual((r[0].rc, r[0].stdout), (1, ""))
        self.assertIn("kv1.vault.azure.net, kv2.vault.azure.net", r[0].stderr)
        self.assertEqual((r[1].rc, r[1].stdout), (0, "two\n"))

    def test_absent(self):
        r = box.session([add_key("azid:secret:kv1.vault.azure.net/db", "one"),
                         run("secret", "other"),
                         run("secret", "https://kv2.vault.azure.net/secrets/db")])
        for res in r:
            self.assertEqual((res.rc, res.stdout), (1, ""))
            self.assertIn("stored: kv1.vault.azure.net/db", res.stderr)

    def test_usage_errors(self):
        r = box.session([run("secret"), run("secret", "a", "b"),
                         run("secret", "http://kv1.vault.azure.net/secrets/db"),
                         run("secret", "https://kv1.vault.azure.net/keys/db"),
                         run("secret", "https://kv1.vault.azure.net/secrets/db/v1/extra"),
                         run("secret", "kv1/a/b")])
        for res in r:
            self.assertEqual((res.rc, res.stdout), (2, ""), res)
            self.assertIn("usage: azid secret", res.stderr)


    def test_one_strict_secret_url_rule(self):
        # The library's parser, as for secret= in azid.conf: a host outside
        # the Key Vault suffixes, a query or a bad name is a usage error.
        r = box.session([run("secret", "https://kv1.vault.azure.net/secrets/db?x=1"),
                         run("secret", "https://kv1.vault.azure.net:444/secrets/db"),
                         run("secret", "evil.example.com/db"),
                         run("secret", "kv1.vault.azure.net/_db")])
        for res in r:
            self.assertEqual((res.rc, res.stdout), (2, ""), res)
            self.assertIn("is not a Key Vault secret URL: ", res.stderr)
        self.assertIn("the host must be <vault>.<suffix>", r[2].stderr)
        self.assertIn("the secret name must be 1 to 127 letters, digits or hyphens", r[3].stderr)


class List(unittest.TestCase):
    def test_kinds_names_and_time_left_never_values(self):
        tok, value = opaque_token(), "s3cret-" + secrets.token_hex(8)
        r = box.session([add_key("azid:token:" + VAULT, tok, timeout=3000),
                         add_key("azid:secret:kv1.vault.azure.net/db", value, timeout=90),
                         add_key("azid:token:" + ARM, opaque_token(), timeout=0),
                         run("list"), run("list", "--json")])
        text, js = r
        self.assertEqual((text.rc, text.stderr), (0, ""))
        # SPEC's columns: kind, resource or host/name, expiry (time left,
        # rounded down by the kernel), the names aligned.
        self.assertRegex(text.stdout, r"\A"
                         r"secret +kv1\.vault\.azure\.net/db +(1m|8\ds)\n"
                         r"token +https://management\.azure\.com/ +no expiry\n"
                         r"token +https://vault\.azure\.net +(49|50)m\n\Z")
        expiry_columns = {len(line) - len(line.split(None, 2)[2]) for line in text.stdout.splitlines()}
        self.assertEqual(expiry_columns, {len("secret  ") + len(ARM) + 2}, "names padded alike")
        self.assertEqual((js.rc, js.stderr), (0, ""))
        # SPEC: --json prints a JSON object.
        doc = json.loads(js.stdout)
        self.assertIsInstance(doc, dict)
        self.assertEqual(list(doc), ["keys"])
        keys = doc["keys"]
        self.assertEqual(sorted(k["kind"] for k in keys), ["secret", "token", "token"])
        for k in keys:
            self.assertIsInstance(k["serial"], int)
            if k["kind"] == "secret":
                self.assertEqual((k["vault_host"], k["name"]), ("kv1.vault.azure.net", "db"))
                self.assertIsInstance(k["seconds_left"], int)
                self.assertIsInstance(k["expires_on"], int)
            elif k["resource"] == ARM:
                self.assertIsNone(k["seconds_left"])
                self.assertIsNone(k["expires_on"])
        for res in r:
            self.assertNotIn(tok, res.stdout + res.stderr)
            self.assertNotIn(value, res.stdout + res.stderr)

    def test_empty(self):
        r = box.session([run("list"), run("list", "--json")])
        self.assertEqual((r[0].rc, r[0].stdout), (0, ""))
        self.assertIn("no azid keys", r[0].stderr)
        self.assertEqual((r[1].rc, json.loads(r[1].stdout), r[1].stderr), (0, {"keys": []}, ""))

    def test_usage_error(self):
        r = box.session([run("list", "extra"), run("list", "--all")])
        for res in r:
            self.assertEqual((res.rc, res.stdout), (2, ""))


if __name__ == "__main__":
    harness.main()
