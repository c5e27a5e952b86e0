/* SPDX-License-Identifier: MIT
 * One request to the broker and its reply (broker_client.h). */
#include "config.h"

#include "broker_client.h"

#include "token.h"

#include <errno.h>
#include <limits.h>
#include <stddef.h>
#include <fcntl.h>
#include <keyutils.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

azid_status broker_status_from_name(const char *name)
{
    for (int s = AZID_OK; s <= AZID_ERR_TLS; s++)
        if (name && strcmp(azid_status_name((azid_status)s), name) == 0)
            return (azid_status)s;
    return AZID_ERR_SYSTEM;
}

azid_status broker_link_key(int32_t serial, const char *description, azid_error *err)
{
    struct key_desc d;
    if (key_describe(serial, &d) < 0)
        return err_set(err, AZID_ERR_KEYRING, "the broker's key %d: %s", serial,
                       strerror(errno));
    bool ok = strcmp(d.type, "user") == 0 && d.uid == 0 && strcmp(d.description, description) == 0;
    key_desc_free(&d);
    if (!ok)
        return err_set(err, AZID_ERR_KEYRING, "the broker's key %d is not root's %s", serial,
                       description);
    if (keyctl_link(serial, KEY_SPEC_SESSION_KEYRING) < 0)
        return err_set(err, errno == EDQUOT ? AZID_ERR_QUOTA : AZID_ERR_KEYRING,
                       "linking the broker's key %d into the session keyring: %s", serial,
                       strerror(errno));
    return AZID_OK;
}

azid_status broker_unlink_key(int32_t serial, azid_error *err)
{
    if (keyctl_unlink(serial, KEY_SPEC_SESSION_KEYRING) < 0 && errno != ENOENT &&
        errno != ENOKEY && errno != EKEYREVOKED && errno != EKEYEXPIRED)
        return err_set(err, AZID_ERR_KEYRING, "unlinking key %d from the session keyring: %s",
                       serial, strerror(errno));
    return AZID_OK;
}

static void pause_ms(long ms)
{
    struct timespec ts = {0, ms * 1000000L};
    nanosleep(&ts, NULL);
}

/* A connected socket to path, or -1 with err filled (UNREACHABLE). */
static int connect_broker(const char *path, int64_t deadline_ms, azid_error *err)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    if (strlen(path) >= sizeof sa.sun_path) {
        err_set(err, AZID_ERR_ARGUMENT, "broker socket path %s is too long", path);
        return -1;
    }
    strcpy(sa.sun_path, path);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) {
        err_set(err, AZID_ERR_UNREACHABLE, "broker socket: %s", strerror(errno));
        return -1;
    }
    int64_t connect_by = now_ms() + BROKER_CONNECT_MS;
    if (connect_by > deadline_ms)
        connect_by = deadline_ms;
    /* A full backlog (a burst of logins) answers EAGAIN at once: wait for
     * room rather than falling back, which would send the burst to the
     * endpoint. */
    while (connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
        int e = errno;
        if (e == EINTR)
            continue;
        if (e != EAGAIN || now_ms() >= connect_by) {
            err_set(err, AZID_ERR_UNREACHABLE, "no broker at %s: %s", path,
                    e == EAGAIN ? "it did not accept the connection in time" : strerror(e));
            close(fd);
            return -1;
        }
        pause_ms(5);
    }
    struct ucred peer;
    socklen_t plen = sizeof peer;
    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &peer, &plen) < 0 || peer.uid != 0) {
        err_set(err, AZID_ERR_UNREACHABLE, "%s is not a broker run by root; not used", path);
        close(fd);
        return -1;
    }
    return fd;
}

/* Waits for events on fd until deadline; false when it passed. */
static bool wait_fd(int fd, short events, int64_t deadline_ms)
{
    for (;;) {
        int64_t left = deadline_ms - now_ms();
        if (left <= 0)
            return false;
        struct pollfd p = {.fd = fd, .events = events};
        int r = poll(&p, 1, (int)(left > 60000 ? 60000 : left));
        if (r > 0)
            return true;
        if (r < 0 && errno != EINTR)
            return true; /* the next read or write says what is wrong */
    }
}

static azid_status send_all(int fd, const char *data, size_t length, int64_t deadline_ms,
                            azid_error *err)
{
    size_t sent = 0;
    while (sent < length) {
        ssize_t n = send(fd, data + sent, length - sent, MSG_NOSIGNAL);
        if (n > 0) {
            sent += (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == EAGAIN && wait_fd(fd, POLLOUT, deadline_ms))
            continue;
        if (n < 0 && errno == EAGAIN)
            return err_set(err, AZID_ERR_TIMEOUT, "the broker did not take the request in time");
        return err_set(err, AZID_ERR_UNREACHABLE, "sending to the broker: %s", strerror(errno));
    }
    return AZID_OK;
}

azid_status broker_call(const char *path, const char *request, size_t length,
                        int64_t deadline_ms, struct broker_reply *reply, azid_error *err)
{
    reply->lines = NULL;
    reply->n = 0;
    int fd = connect_broker(path, deadline_ms, err);
    if (fd < 0)
        return err->status;
    azid_status st = send_all(fd, request, length, deadline_ms, err);
    struct broker_buf in;
    broker_buf_init(&in, BROKER_MAX_REPLY);
    char chunk[4096];
    int64_t ack_by = now_ms() + BROKER_ACK_MS;
    if (ack_by > deadline_ms)
        ack_by = deadline_ms;
    while (st == AZID_OK) {
        ssize_t n = recv(fd, chunk, sizeof chunk, 0);
        if (n > 0) {
            broker_buf_raw(&in, chunk, (size_t)n);
            explicit_bzero(chunk, (size_t)n);
            if (in.failed) {
                st = err_set(err, AZID_ERR_RESPONSE, "the broker's reply is larger than %d "
                                                     "bytes (or no memory for it)",
                             BROKER_MAX_REPLY);
                break;
            }
            continue;
        }
        if (n == 0) {
            st = broker_proto_parse_reply(in.data ? in.data : "", in.length, reply, err);
            break;
        }
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN) {
            if (in.length == 0 && !wait_fd(fd, POLLIN, ack_by))
                st = err_set(err, ack_by < deadline_ms ? AZID_ERR_UNREACHABLE : AZID_ERR_TIMEOUT,
                             "the broker at %s took the request but said nothing within %.1f s",
                             path, (double)BROKER_ACK_MS / 1000);
            else if (in.length && !wait_fd(fd, POLLIN, deadline_ms))
                st = err_set(err, AZID_ERR_TIMEOUT, "the broker did not answer in time");
            continue;
        }
        st = err_set(err, AZID_ERR_RESPONSE, "reading the broker's reply: %s", strerror(errno));
    }
    close(fd);
    broker_buf_free(&in);
    if (st != AZID_OK)
        broker_reply_free(reply);
    return st;
}

/* ---- the public calls (azid.h) ---------------------------------------------- */

/* One request and its reply; an "error" reply becomes the broker's status
 * and message.  *answered (when non-NULL) is set to 1 once the whole reply
 * is read: an "error" reply may carry the endpoint's own "unreachable",
 * which must not pass for a missing broker. */
static azid_status ask(const char *socket_path, const char *request, long timeout_ms,
                       struct broker_reply *reply, int *answered, azid_error *err)
{
    if (timeout_ms <= 0)
        return err_set(err, AZID_ERR_ARGUMENT, "timeout %ld ms is not positive", timeout_ms);
    azid_status st = broker_call(socket_path ? socket_path : AZID_BROKER_SOCKET, request,
                                 strlen(request), now_ms() + timeout_ms, reply, err);
    if (st != AZID_OK)
        return st;
    if (answered)
        *answered = 1;
    if (reply->n == 1 && strcmp(reply->lines[0].word, "error") == 0) {
        const char *message = broker_line_get(&reply->lines[0], "message");
        st = err_set(err, broker_status_from_name(broker_line_get(&reply->lines[0], "status")),
                     "%s", message ? message : "the broker refused without a reason");
        broker_reply_free(reply);
    }
    return st;
}

azid_status azid_broker_get_token(const char *socket_path, const char *resource,
                                  long timeout_ms, azid_token **out, azid_error *err)
{
    return azid_broker_request_token(socket_path, resource, timeout_ms, out, NULL, err);
}

azid_status azid_broker_request_token(const char *socket_path, const char *resource,
                                      long timeout_ms, azid_token **out, int *answered,
                                      azid_error *err)
{
    err_clear(err);
    *out = NULL;
    if (answered)
        *answered = 0;
    if (!resource || azid_resource_check(resource, err) != AZID_OK)
        return resource ? AZID_ERR_ARGUMENT
                        : err_set(err, AZID_ERR_ARGUMENT, "no resource given (NULL)");
    struct broker_buf req;
    broker_buf_init(&req, BROKER_MAX_REQUEST);
    broker_buf_raw(&req, BROKER_PROTO_VERSION " ", sizeof BROKER_PROTO_VERSION);
    broker_buf_word(&req, "token");
    broker_buf_field(&req, "resource", resource);
    broker_buf_end_line(&req);
    if (req.failed) {
        broker_buf_free(&req);
        return err_set(err, AZID_ERR_ARGUMENT, "the resource does not fit a broker request");
    }
    struct broker_reply reply;
    azid_status st = ask(socket_path, req.data, timeout_ms, &reply, answered, err);
    broker_buf_free(&req);
    if (st != AZID_OK)
        return st;
    const struct broker_line *l = reply.n == 1 ? &reply.lines[0] : NULL;
    const char *value = l && strcmp(l->word, "token") == 0 ? broker_line_get(l, "value") : NULL;
    const char *type = l ? broker_line_get(l, "type") : NULL;
    int64_t expires_on = 0;
    if (!value || !l || !broker_line_get_int(l, "expires_on", 1, INT64_MAX / 2, &expires_on)) {
        st = err_set(err, AZID_ERR_RESPONSE, "the broker's answer has no token");
    } else {
        *out = token_new(value, strlen(value), expires_on, resource, type ? type : "Bearer");
        if (!*out)
            st = err_set(err, AZID_ERR_NOMEM, "out of memory");
    }
    broker_reply_free(&reply);
    return st;
}

azid_status azid_broker_status(const char *socket_path, long timeout_ms,
                               void (*visit)(const azid_broker_entry *entry, void *ctx),
                               void *ctx, azid_broker_counters *counters, azid_error *err)
{
    err_clear(err);
    struct broker_reply reply;
    azid_status st = ask(socket_path, BROKER_PROTO_VERSION " status\n", timeout_ms, &reply, NULL,
                         err);
    if (st != AZID_OK)
        return st;
    if (counters)
        memset(counters, 0, sizeof *counters);
    for (size_t i = 0; i < reply.n; i++) {
        const struct broker_line *l = &reply.lines[i];
        int64_t n = 0;
        if (strcmp(l->word, "counters") == 0 && counters) {
            static const struct {
                const char *key;
                size_t offset;
            } fields[] = {
                {"requests", offsetof(azid_broker_counters, requests)},
                {"throttled", offsetof(azid_broker_counters, throttled)},
                {"served", offsetof(azid_broker_counters, served)},
                {"negative_hits", offsetof(azid_broker_counters, negative_hits)},
                {"refreshes", offsetof(azid_broker_counters, refreshes)},
            };
            for (size_t k = 0; k < sizeof fields / sizeof fields[0]; k++)
                if (broker_line_get_int(l, fields[k].key, 0, INT64_MAX, &n))
                    *(uint64_t *)((char *)counters + fields[k].offset) = (uint64_t)n;
            if (broker_line_get_int(l, "in_flight", 0, LONG_MAX, &n))
                counters->in_flight = (long)n;
            if (broker_line_get_int(l, "queued", 0, LONG_MAX, &n))
                counters->queued = (long)n;
            continue;
        }
        bool negative = strcmp(l->word, "negative") == 0;
        if ((!negative && strcmp(l->word, "token") != 0 && strcmp(l->word, "secret") != 0) ||
            !visit)
            continue;
        const char *secret = broker_line_get(l, "secret");
        azid_broker_entry e = {
            .negative = negative,
            .secret = secret != NULL,
            .source = broker_line_get(l, "source"),
            .endpoint = broker_line_get(l, "endpoint"),
            .identity = broker_line_get(l, "identity"),
            .resource = secret ? secret : broker_line_get(l, "resource"),
            .status = broker_line_get(l, "status"),
            .message = broker_line_get(l, "message"),
        };
        if (!e.source || !e.identity || !e.resource)
            continue;
        if (broker_line_get_int(l, "expires_on", 0, INT64_MAX, &n))
            e.expires_on = n;
        if (broker_line_get_int(l, "refresh_at", 0, INT64_MAX, &n))
            e.refresh_at = n;
        if (broker_line_get_int(l, "keys", 0, LONG_MAX, &n))
            e.keys = (long)n;
        if (broker_line_get_int(l, "until", 0, INT64_MAX, &n))
            e.until = n;
        visit(&e, ctx);
    }
    broker_reply_free(&reply);
    return AZID_OK;
}
