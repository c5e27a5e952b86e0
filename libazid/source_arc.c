/* SPDX-License-Identifier: MIT
 * Azure Arc-enabled servers: the agent (himds) serves tokens on
 * 127.0.0.1:40342 and answers a first request with a 401 naming a key file
 * that only root and the himds group can read; the request is repeated
 * with that key.  The port is unprivileged, so the key goes only to a
 * listener owned by root or himds, and only from a file they wrote for
 * this request. */
#include "config.h"

#include "source.h"

#include <arpa/inet.h>
#include <errno.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#define ARC_USER "himds"
/* Bounds reading /proc/net/tcp{,6}: a busy host has many sockets, none
 * worth waiting for at a login. */
#define ARC_MAX_SOCKET_LINES 100000
#define TCP_LISTEN 0x0A

static enum source_match arc_detect(const struct source_view *v, char *how, size_t size)
{
    /* App Service sets IDENTITY_HEADER beside IDENTITY_ENDPOINT; Arc does not. */
    if (source_env(v, "IDENTITY_ENDPOINT") && source_env(v, "IMDS_ENDPOINT") &&
        !source_env(v, "IDENTITY_HEADER")) {
        snprintf(how, size, "Azure Arc-enabled server ($IDENTITY_ENDPOINT and $IMDS_ENDPOINT)");
        return SOURCE_BY_ENVIRONMENT;
    }
    if (v->path_exists(v->ctx, SOURCE_ARC_AGENT)) {
        snprintf(how, size, "Azure Arc-enabled server (agent %s)", SOURCE_ARC_AGENT);
        return SOURCE_BY_AGENT;
    }
    snprintf(how, size, "no Arc agent (%s)", SOURCE_ARC_AGENT);
    return SOURCE_NO_MATCH;
}

static azid_status arc_configure(const struct source_view *v, const char *base,
                                 struct source_config *out, azid_error *err)
{
    const char *url = base ? NULL : source_env(v, "IDENTITY_ENDPOINT");
    if (!url) {
        out->token_url = source_join(base ? base : SOURCE_ARC_BASE, SOURCE_TOKEN_PATH);
        return AZID_OK;
    }
    if (source_check_url("IDENTITY_ENDPOINT", url, 1, err) != AZID_OK)
        return AZID_ERR_ARGUMENT;
    out->token_url = strdup(url);
    return AZID_OK;
}

static azid_status arc_build(const struct source_config *cfg, const char *resource,
                             azid_identity_kind kind, const char *id, struct source_request *req,
                             azid_error *err)
{
    (void)cfg;
    return source_build_get(req, "2019-11-01", resource, NULL, kind, id, err);
}

/* The himds user's uid, or (uid_t)-1 when there is none. */
static uid_t himds_uid(void)
{
    struct passwd pw, *found = NULL;
    char buf[1024];
    if (getpwnam_r(ARC_USER, &pw, buf, sizeof buf, &found) != 0 || !found)
        return (uid_t)-1;
    return found->pw_uid;
}

static int trusted_uid(uid_t uid, uid_t himds)
{
    return uid == 0 || (himds != (uid_t)-1 && uid == himds);
}

/* Whether a socket bound to the address /proc/net/tcp{,6} prints as hex
 * receives connections to 127.0.0.1: bound to it, or to any address. */
static int reaches_loopback(const char *hex, int v6)
{
    if (!v6) {
        unsigned long a = strtoul(hex, NULL, 16);
        return strlen(hex) == 8 && (a == 0 || (uint32_t)a == htonl(INADDR_LOOPBACK));
    }
    struct in6_addr a, mapped;
    if (strlen(hex) != 32 || inet_pton(AF_INET6, "::ffff:127.0.0.1", &mapped) != 1)
        return 0;
    for (int i = 0; i < 4; i++) {
        char word[9];
        memcpy(word, hex + 8 * i, 8);
        word[8] = '\0';
        uint32_t w = (uint32_t)strtoul(word, NULL, 16);
        memcpy(&a.s6_addr[4 * i], &w, 4); /* printed in the kernel's byte order */
    }
    return IN6_IS_ADDR_UNSPECIFIED(&a) || IN6_ARE_ADDR_EQUAL(&a, &mapped);
}

/* Checks who listens on 127.0.0.1:port in this network namespace: every
 * listening socket that a connection there could reach must belong to
 * root or himds. */
static azid_status check_listener(long port, azid_error *err)
{
    static const char *const tables[] = {"/proc/net/tcp", "/proc/net/tcp6"};
    uid_t himds = himds_uid();
    int found = 0;
    unsigned stranger = 0;
    for (size_t t = 0; t < 2; t++) {
        FILE *f = fopen(tables[t], "re");
        if (!f)
            continue; /* no IPv6 */
        char *line = NULL;
        size_t size = 0;
        for (int n = 0; n < ARC_MAX_SOCKET_LINES && getline(&line, &size, f) >= 0; n++) {
            char local[40];
            unsigned lport, state, uid;
            if (sscanf(line, " %*u: %39[0-9A-Fa-f]:%x %*s %x %*s %*s %*s %u", local, &lport,
                       &state, &uid) != 4 ||
                state != TCP_LISTEN || (long)lport != port || !reaches_loopback(local, t == 1))
                continue;
            found++;
            if (!trusted_uid(uid, himds))
                stranger = uid;
        }
        free(line);
        fclose(f);
    }
    if (!found)
        return err_set(err, AZID_ERR_RESPONSE,
                       "no listener on 127.0.0.1:%ld found in /proc/net/tcp to check; not "
                       "answering the Arc challenge", port);
    if (stranger)
        return err_set(err, AZID_ERR_RESPONSE,
                       "the listener on 127.0.0.1:%ld belongs to uid %u, not root or " ARC_USER
                       ": it is not the Arc agent; not answering its challenge with the key",
                       port, stranger);
    return AZID_OK;
}

static azid_status arc_on_401(const struct http_response *resp, int64_t attempt_epoch,
                              char **header, azid_error *err)
{
    *header = NULL;
    if (strcmp(resp->peer_ip, "127.0.0.1") != 0)
        return err_set(err, AZID_ERR_RESPONSE,
                       "the Arc challenge came from %s, not 127.0.0.1; not answering it",
                       resp->peer_ip[0] ? resp->peer_ip : "an unknown address");
    azid_status st = check_listener(resp->peer_port, err);
    char *key = NULL;
    if (st == AZID_OK)
        st = source_arc_read_key(resp->www_authenticate, SOURCE_ARC_TOKEN_DIR, attempt_epoch,
                                 &key, err);
    if (st != AZID_OK)
        return st;
    size_t n = strlen(key) + sizeof "Authorization: Basic ";
    if ((*header = malloc(n)))
        snprintf(*header, n, "Authorization: Basic %s", key);
    wipe_free_str(key);
    return *header ? AZID_OK : err_nomem(err, NULL);
}

azid_status source_arc_read_key(const char *www_authenticate, const char *key_dir,
                                int64_t not_before, char **key, azid_error *err)
{
    *key = NULL;
    static const char prefix[] = "Basic realm=";
    if (!www_authenticate || strncasecmp(www_authenticate, prefix, sizeof prefix - 1) != 0)
        return err_set(err, AZID_ERR_RESPONSE,
                       "HTTP 401 without a 'WWW-Authenticate: Basic realm=<key file>' challenge");
    const char *path = www_authenticate + sizeof prefix - 1;
    size_t dlen = strlen(key_dir), plen = strlen(path);
    if (plen && text_bad_char(path, plen) >= 0)
        return err_set(err, AZID_ERR_RESPONSE,
                       "the Arc challenge names a key file with spaces or control characters; "
                       "refusing to read it");
    const char *base = path + dlen + 1;
    if (strchr(path, '=') || plen <= dlen + 1 + 4 || strncmp(path, key_dir, dlen) != 0 ||
        path[dlen] != '/' || strchr(base, '/') || strcmp(path + plen - 4, ".key") != 0 ||
        base[0] == '.')
        return err_set(err, AZID_ERR_RESPONSE,
                       "the Arc challenge names key file '%.200s', which is not a .key file "
                       "directly in %s; refusing to read it", path, key_dir);
    char *buf;
    size_t n;
    struct stat sb;
    azid_status st = file_read_small(path, "the Arc key file", SOURCE_ARC_KEY_MAX, 0, &buf, &n,
                                     &sb, err);
    if (st == AZID_ERR_SYSTEM && errno == EACCES)
        return err_set(err, st, "cannot open the Arc key file %s: %s (only root and the himds "
                       "group may read it)", path, strerror(EACCES));
    if (st == AZID_ERR_ARGUMENT && err)
        err->status = AZID_ERR_RESPONSE; /* the server named it */
    if (st != AZID_OK)
        return st == AZID_ERR_ARGUMENT ? AZID_ERR_RESPONSE : st;
    if (!trusted_uid(sb.st_uid, himds_uid()))
        st = err_set(err, AZID_ERR_RESPONSE,
                     "the Arc key file %s belongs to uid %u, not root or " ARC_USER
                     "; refusing to send it", path, (unsigned)sb.st_uid);
    /* File times are coarse (a clock tick behind): a second's slack. */
    else if ((int64_t)sb.st_mtime < not_before - 1 || (int64_t)sb.st_ctime < not_before - 1)
        st = err_set(err, AZID_ERR_RESPONSE,
                     "the Arc key file %s is older than the request it should answer (the "
                     "agent writes a new one for each challenge); refusing to send it", path);
    else if (text_bad_char(buf, n) >= 0)
        st = err_set(err, AZID_ERR_RESPONSE,
                     "the Arc key file %s holds characters that cannot go in an HTTP header",
                     path);
    if (st != AZID_OK) {
        wipe_free(buf, SOURCE_ARC_KEY_MAX + 1);
        return st;
    }
    *key = buf;
    return AZID_OK;
}

const struct source source_arc = {
    .name = "arc",
    .label = "Arc",
    .help = "the Arc agent of an Arc-enabled server (" SOURCE_ARC_BASE ")",
    .identities = 0,
    .offers = "only the machine's own identity",
    .detect = arc_detect,
    .configure = arc_configure,
    .build = arc_build,
    .on_401 = arc_on_401,
};
