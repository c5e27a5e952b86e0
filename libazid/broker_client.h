/* SPDX-License-Identifier: MIT
 * The client side of the broker's socket (broker_proto.h), for pam_azid
 * and the azid command: one request, one reply, within deadlines, from a
 * broker running as root. */
#ifndef AZID_BROKER_CLIENT_H
#define AZID_BROKER_CLIENT_H

#include "broker_proto.h"

#include <stdint.h>

/* A broker that takes longer than this to accept a connection is treated
 * as absent: the caller still has its budget for the work in-process. */
#define BROKER_CONNECT_MS 250L
/* The broker answers or acknowledges ("wait") a request at once; one that
 * says nothing for this long is hung, and treated as absent too. */
#define BROKER_ACK_MS 1000L

/* Sends request (one line, '\n' included) to the broker listening at
 * path and reads its whole reply.  Connecting must succeed within
 * BROKER_CONNECT_MS, the first byte of the reply come within BROKER_ACK_MS
 * (both clipped to the deadline), and the reply be complete by deadline_ms
 * (the now_ms() clock).
 *   AZID_ERR_UNREACHABLE: no broker there (no socket, refused, not
 *     accepted or acknowledged in time, or the listener is not root's):
 *     work without it;
 *   AZID_ERR_TIMEOUT: it took the request but did not answer in time;
 *   AZID_ERR_RESPONSE: the reply is malformed or cut short.
 * No signal is raised (MSG_NOSIGNAL); nothing is logged. */
azid_status broker_call(const char *path, const char *request, size_t length,
                        int64_t deadline_ms, struct broker_reply *reply, azid_error *err);

/* Links the broker's shared key serial into the calling process's session
 * keyring, after checking that it is what the broker said: a root-owned
 * "user" key described as description.  The caller must run as root
 * (the key's owner may link it; nobody else may).  AZID_ERR_KEYRING. */
azid_status broker_link_key(int32_t serial, const char *description, azid_error *err);
/* Unlinks it from the session keyring at close (never invalidates it:
 * the user's other sessions hold the same key).  A keyring or key already
 * gone is not an error. */
azid_status broker_unlink_key(int32_t serial, azid_error *err);

/* "error" reply lines carry status=NAME: the azid_status back. */
azid_status broker_status_from_name(const char *name);

#endif
