/* SPDX-License-Identifier: MIT
 *
 * libazid: Azure managed-identity tokens and Key Vault secrets for Linux
 * logins.  See libazid(3).  Contract: azid.conf(5), pam_azid(8), azid(1).
 *
 * Every function that can fail returns an azid_status and, when given a
 * non-NULL azid_error, fills it with the same status and a one-line message
 * that names what failed and what to do.  No message ever contains a token
 * or a secret.  Objects are not shared between threads; distinct objects may
 * be used from distinct threads at once.
 */
#ifndef AZID_AZID_H
#define AZID_AZID_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

/* What `azid fetch` and `azid doctor` ask for when no resource is named.
 * The configuration never grants it, or anything, implicitly. */
#define AZID_DEFAULT_RESOURCE "https://management.azure.com/"
#define AZID_DEFAULT_TIMEOUT_MS 5000
/* The one ceiling of a time budget (timeout=, --timeout, the client). */
#define AZID_TIMEOUT_MAX_MS 300000
/* Keys expire this many seconds before the token does. */
#define AZID_EXPIRY_SKEW_S 60
/* The largest epoch second (9999-12-31T23:59:59Z), and duration, accepted
 * from a server or a caller; anything beyond, either way, is refused as out
 * of range before any arithmetic, so that no sum or difference with the
 * clock can overflow. */
#define AZID_EPOCH_MAX INT64_C(253402300799)

/* ---- status and errors ------------------------------------------------ */

typedef enum azid_status {
    AZID_OK = 0,
    AZID_ERR_ARGUMENT,    /* a bad argument, option or value */
    AZID_ERR_CONFIG,      /* config file unreadable, unsafe or malformed */
    AZID_ERR_NOMEM,       /* out of memory */
    AZID_ERR_NO_SOURCE,   /* no managed-identity source here (not on Azure) */
    AZID_ERR_UNREACHABLE, /* every attempt failed in transport (refused, reset, cut off) */
    AZID_ERR_TIMEOUT,     /* the total time budget ran out */
    AZID_ERR_HTTP,        /* the endpoint answered an error status (see http_status) */
    AZID_ERR_RESPONSE,    /* a success response that is not a valid token or secret */
    AZID_ERR_KEYRING,     /* kernel keyring unavailable or an operation on it failed */
    AZID_ERR_QUOTA,       /* the user's key quota is full (EDQUOT) */
    AZID_ERR_NOT_SESSION, /* the session keyring is not a per-login keyring of the user */
    AZID_ERR_NOT_FOUND,   /* no such key, or it has expired */
    AZID_ERR_SYSTEM,      /* another operating-system error (named in the message) */
    AZID_ERR_TLS,         /* the server's TLS certificate is not trusted (never retried) */
    AZID_ERR_CREDENTIALS  /* this thread's ids could not be restored after acting as the
                           * user: the caller must fail, not go on with them */
} azid_status;

typedef struct azid_error {
    azid_status status;
    long http_status;  /* last HTTP status received, 0 when none was */
    /* One line, no trailing newline: what failed, then, when the library
     * knows what to do about it, " \u2014 " (an em dash) and that advice. */
    char message[512];
} azid_error;

/* Short stable name of a status ("timeout", "http", ...). */
const char *azid_status_name(azid_status status);
/* Package version, e.g. "0.1.0". */
const char *azid_version(void);

/* For a program that makes no TLS connection at all, through libazid or
 * otherwise, and whose every libazid request goes to an http:// URL
 * (azid_client_endpoint shows it): OpenSSL is set up, for the whole
 * process and its life, without a configuration file, error strings or
 * exit handler, and a libazid https request fails (AZID_ERR_ARGUMENT)
 * before it is sent.  libazid(3), "Programs without TLS". */
#define AZID_GLOBAL_NO_TLS 0x1u
/* Optional process-wide settings (AZID_GLOBAL_*; 0, the default, for
 * none), each call replacing the last, before the process's first request
 * and not concurrently with a request.  AZID_ERR_ARGUMENT, changing
 * nothing, for an unknown flag or for a change once a request has loaded
 * libcurl. */
azid_status azid_global_init(unsigned flags, azid_error *err);

/* ---- tokens and secrets ----------------------------------------------- */

typedef struct azid_token azid_token;

const char *azid_token_value(const azid_token *token); /* NUL-terminated */
size_t azid_token_length(const azid_token *token);
int64_t azid_token_expires_on(const azid_token *token); /* epoch seconds */
const char *azid_token_resource(const azid_token *token);
const char *azid_token_type(const azid_token *token); /* "Bearer" */
/* Wipes the token's memory, then frees it.  NULL is a no-op. */
void azid_token_free(azid_token *token);

typedef struct azid_secret azid_secret;

const char *azid_secret_value(const azid_secret *secret); /* NUL-terminated */
size_t azid_secret_length(const azid_secret *secret);
const char *azid_secret_vault_host(const azid_secret *secret); /* "v.vault.azure.net" */
const char *azid_secret_name(const azid_secret *secret);
/* When the stored copy must expire: the vault token's expiry, or the
 * secret's own "exp" attribute when that is earlier. */
int64_t azid_secret_expires_on(const azid_secret *secret);
void azid_secret_free(azid_secret *secret); /* wipes, then frees */

/* A Key Vault secret URL, https://<vault>.<Key Vault DNS suffix>/secrets/
 * <name>[/<version>], taken apart by the library's one strict parser (the
 * one the module, the CLI and the broker use).  AZID_ERR_ARGUMENT naming
 * the URL and what is wrong with it. */
typedef struct azid_secret_url {
    char vault_host[254]; /* lower-case, e.g. "myvault.vault.azure.net" */
    char name[128];       /* [0-9A-Za-z-]+ */
    char version[65];     /* [0-9A-Za-z]*, "" for the latest */
} azid_secret_url;
azid_status azid_secret_url_parse(const char *url, azid_secret_url *out, azid_error *err);

/* ---- the identity client ---------------------------------------------- */

typedef enum azid_source {
    AZID_SOURCE_AUTO = 0,
    AZID_SOURCE_IMDS,
    AZID_SOURCE_ARC,
    AZID_SOURCE_APPSERVICE,
    AZID_SOURCE_CLOUDSHELL,
    AZID_SOURCE_WORKLOAD
} azid_source;

/* "auto", "imds", "arc", "appservice", "cloudshell", "workload". */
const char *azid_source_name(azid_source source);
/* Parses those names; AZID_ERR_ARGUMENT otherwise. */
azid_status azid_source_parse(const char *name, azid_source *out, azid_error *err);
/* One line saying what the source is, for help texts; NULL past the last
 * source, so `for (s = 0; azid_source_describe(s); s++)` lists them all. */
const char *azid_source_describe(azid_source source);

typedef enum azid_identity_kind {
    AZID_IDENTITY_SYSTEM = 0, /* system-assigned */
    AZID_IDENTITY_CLIENT_ID,
    AZID_IDENTITY_OBJECT_ID,
    AZID_IDENTITY_MSI_RES_ID
} azid_identity_kind;

/* "client_id", "object_id", "msi_res_id"; NULL for AZID_IDENTITY_SYSTEM. */
const char *azid_identity_name(azid_identity_kind kind);

typedef struct azid_client azid_client;

/* NULL only when out of memory.  Defaults: source auto, system-assigned
 * identity, AZID_DEFAULT_TIMEOUT_MS. */
azid_client *azid_client_new(void);
void azid_client_free(azid_client *client);

azid_status azid_client_set_source(azid_client *client, azid_source source, azid_error *err);
/* Token endpoint base, scheme://host[:port] (http or https, no path). */
azid_status azid_client_set_endpoint(azid_client *client, const char *base_url, azid_error *err);
azid_status azid_client_set_identity(azid_client *client, azid_identity_kind kind,
                                     const char *value, azid_error *err);
/* Total wall-clock budget for all network work of this client, retries
 * included.  It starts with the client's first request and covers every
 * later request; it is never exceeded by more than 0.5 s. */
azid_status azid_client_set_timeout_ms(azid_client *client, long timeout_ms, azid_error *err);
/* Extra CA bundle for HTTPS (Key Vault). */
azid_status azid_client_set_ca_file(azid_client *client, const char *path, azid_error *err);

/* Which source the client uses: the configured one, or what auto-detection
 * finds (environment, Arc agent, DMI asset tag).  AZID_ERR_NO_SOURCE, fast,
 * when there is none and no endpoint was set. */
azid_status azid_client_resolve_source(azid_client *client, azid_source *source,
                                       azid_error *err);
/* Whether, under source auto, detection may read identity variables
 * (IDENTITY_ENDPOINT, IMDS_ENDPOINT, MSI_ENDPOINT, AZURE_FEDERATED_TOKEN_FILE
 * and their siblings) from the process's environment.  Default 1.  pam_azid
 * sets 0: its host process may carry the user's environment (login -p).
 * A source named with azid_client_set_source reads its own variables. */
azid_status azid_client_use_environment(azid_client *client, int use, azid_error *err);

/* What auto-detection finds on this machine, for azid doctor: the source
 * (AZID_SOURCE_AUTO when none), and how it was recognised or, for none,
 * what was looked at.  Independent of the endpoint and source set. */
typedef struct azid_detection {
    azid_source source;
    char reason[256];
} azid_detection;
azid_status azid_client_detect(const azid_client *client, azid_detection *out, azid_error *err);

/* The token endpoint URL the client would ask (no query); for messages and
 * `azid doctor`.  Valid until the client changes or is freed. */
const char *azid_client_endpoint(const azid_client *client);

/* A token for resource (the exact string: "https://vault.azure.net" and
 * "https://vault.azure.net/" are distinct), which the caller frees.  The
 * client keeps the tokens it obtained, one per resource, and answers a
 * later request for that resource from them, without network, while the
 * token is more than AZID_EXPIRY_SKEW_S from expiry; each call hands out a
 * copy.  Changing the source, endpoint or identity, and freeing the client,
 * wipe them. */
azid_status azid_client_get_token(azid_client *client, const char *resource,
                                  azid_token **out, azid_error *err);
/* Reads https://<vault>.vault.azure.net/secrets/<name>[/<version>] (or a
 * vault under another cloud's Key Vault suffix) with a token for the vault's
 * audience (https://vault.azure.net in the public cloud) from the same
 * client, inside the same time budget. */
azid_status azid_client_get_secret(azid_client *client, const char *secret_url,
                                   azid_secret **out, azid_error *err);

/* ---- kernel keyring ------------------------------------------------------ */

typedef enum azid_keyring {
    AZID_KEYRING_SESSION = 0,
    AZID_KEYRING_USER,
    AZID_KEYRING_PERSISTENT
} azid_keyring;

const char *azid_keyring_name(azid_keyring keyring); /* "session", "user", "persistent" */
azid_status azid_keyring_parse(const char *name, azid_keyring *out, azid_error *err);

/* The one rule for what a resource may be, applied by the module, the CLI
 * and the broker before any request: non-empty printable ASCII without
 * spaces or control characters, and short enough that its key description
 * "azid:token:<resource>" fits the kernel's 4095 bytes, so at most
 * AZID_RESOURCE_MAX characters.  AZID_ERR_ARGUMENT saying which rule. */
#define AZID_RESOURCE_MAX 4084
azid_status azid_resource_check(const char *resource, azid_error *err);

/* Key descriptions: "azid:token:<resource>" and "azid:secret:<host>/<name>".
 * Returned strings are malloc'ed; NULL when out of memory. */
char *azid_key_description_token(const char *resource);
char *azid_key_description_secret(const char *vault_host, const char *name);

typedef enum azid_key_kind {
    AZID_KEY_OTHER = 0, /* not an azid key description */
    AZID_KEY_TOKEN,
    AZID_KEY_SECRET
} azid_key_kind;

/* A key description taken apart.  The pointers point into the description
 * given to azid_key_parse. */
typedef struct azid_key_fields {
    azid_key_kind kind;
    const char *resource;     /* token: the resource */
    const char *vault_host;   /* secret: the vault's host, vault_host_length bytes, */
    size_t vault_host_length; /*   followed by "/<name>" (so it reads "<host>/<name>") */
    const char *name;         /* secret: the secret's name */
} azid_key_fields;

/* Parses what azid_key_description_* build; returns out->kind (and
 * AZID_KEY_OTHER, with the other fields NULL, for anything else). */
azid_key_kind azid_key_parse(const char *description, azid_key_fields *out);

/* AZID_OK when the calling process's session keyring is a per-login keyring
 * owned by uid (pam_keyinit ran); AZID_ERR_NOT_SESSION when it is the
 * user-session keyring, shared or owned by someone else; AZID_ERR_KEYRING
 * when the keyring facility is unavailable (seccomp, no CONFIG_KEYS). */
azid_status azid_keyring_check_session(uid_t uid, azid_error *err);

/* Stores payload as a "user" key in the calling process's target keyring
 * (for AZID_KEYRING_USER/PERSISTENT: those of uid), owned by uid/gid and
 * charged to uid's quota, possessor view/read/write/search/setattr, owner
 * view, expiring at expires_on - AZID_EXPIRY_SKEW_S.  An existing key of
 * that description is updated and its timeout set again. */
azid_status azid_keyring_store(azid_keyring target, uid_t uid, gid_t gid,
                               const char *description, const void *payload,
                               size_t length, int64_t expires_on,
                               int32_t *serial, azid_error *err);

/* Invalidates a key stored earlier; a key already gone is not an error, and
 * a serial that no longer names an azid key is left alone. */
azid_status azid_keyring_remove(int32_t serial, azid_error *err);

/* Reads a key the caller possesses (session keyring, then user keyrings),
 * else one in the caller's persistent keyring when it has one (which is
 * then linked into the calling thread's keyring: keyring=persistent).
 * *payload is malloc'ed and NUL-terminated; wipe and free it after use. */
azid_status azid_keyring_read(const char *description, char **payload, size_t *length,
                              azid_error *err);

typedef struct azid_key_info {
    int32_t serial;
    const char *description; /* "azid:token:..." */
    long seconds_left;       /* -1 when the key has no timeout */
} azid_key_info;

/* Calls visit for each azid key the caller can see, its persistent
 * keyring's too (as azid_keyring_read); never reads values. */
azid_status azid_keyring_list(void (*visit)(const azid_key_info *key, void *ctx), void *ctx,
                              azid_error *err);

/* ---- configuration (module arguments + /etc/azid.conf) ------------------ */

typedef struct azid_config azid_config;

azid_config *azid_config_new(void); /* NULL only when out of memory */
void azid_config_free(azid_config *config);

/* One module argument: "key=value" or a bare flag ("debug").  Arguments win
 * over the file.  An unknown or malformed argument is AZID_ERR_ARGUMENT
 * naming it; the configuration is otherwise unchanged. */
azid_status azid_config_apply_arg(azid_config *config, const char *arg, azid_error *err);

/* Reads the config file (config= or the built-in path): lines outside Match
 * blocks, and the Match blocks that match user (by name, primary and
 * supplementary groups).  user NULL applies no Match block.  A missing file
 * is fine; an unsafe or malformed one is AZID_ERR_CONFIG naming file and
 * line, and nothing of it applies. */
azid_status azid_config_load(azid_config *config, const char *user, azid_error *err);

/* Effective settings, typed; a NULL configuration answers the defaults. */
long azid_config_timeout_ms(const azid_config *config);
azid_keyring azid_config_keyring(const azid_config *config);
int azid_config_fail_closed(const azid_config *config);
int azid_config_debug(const azid_config *config);
azid_source azid_config_source(const azid_config *config);
const char *azid_config_endpoint(const azid_config *config); /* NULL: the source's */
const char *azid_config_ca_file(const azid_config *config);  /* NULL: system trust */
const char *azid_config_path(const azid_config *config);     /* the file config= names */
/* The identity outside Match blocks (an argument's, else the file's): what
 * grants without a Match block of their own use.  *value (when non-NULL)
 * is its ID, NULL for the system-assigned identity. */
azid_identity_kind azid_config_identity(const azid_config *config, const char **value);

/* One thing the user is granted and the identity to fetch it with. */
typedef enum azid_grant_kind { AZID_GRANT_TOKEN = 0, AZID_GRANT_SECRET } azid_grant_kind;
typedef struct azid_grant {
    azid_grant_kind kind;
    const char *target; /* the resource, or the Key Vault secret URL */
    azid_identity_kind identity;
    const char *identity_value; /* NULL for the system-assigned identity */
} azid_grant;

/* What the user the file was loaded for gets: the arguments' grants, then
 * the file's in file order, each target once.  An identity selector in a
 * Match block binds that block's grants; the one outside binds the rest.
 * Valid until the configuration changes or is freed. */
size_t azid_config_grants(const azid_config *config, const azid_grant **grants);
/* Resources and secret URLs granted to the user; none when nothing grants
 * any (nothing is granted implicitly). */
size_t azid_config_resources(const azid_config *config, const char *const **list);
size_t azid_config_secrets(const azid_config *config, const char *const **list);
/* Whether the arguments or any line of the file, in whichever Match block,
 * grant a resource or secret to anyone; 0 means every login gets nothing. */
int azid_config_grants_anyone(const azid_config *config);

/* Who is granted what, whoever the file was loaded for: visit is called
 * for the arguments and the lines outside Match blocks (match NULL, line
 * 0), then for each Match block of the file in order, with the grants that
 * level itself makes and the identity each is fetched with.  The level and
 * its grants are valid during the call.  AZID_ERR_CONFIG when a level
 * grants a target twice with two identities. */
typedef struct azid_grant_level {
    const char *match; /* "Match group dba", NULL outside Match blocks */
    unsigned line;     /* of the Match line in azid_config_path(); 0 outside */
    const azid_grant *grants;
    size_t ngrants;
} azid_grant_level;
azid_status azid_config_levels(const azid_config *config,
                               void (*visit)(const azid_grant_level *level, void *ctx),
                               void *ctx, azid_error *err);

/* broker=: AUTO asks AZID_BROKER_SOCKET when it answers and otherwise
 * works in-process; OFF never asks a broker; PATH asks the broker at that
 * socket.  *socket_path (when non-NULL) is the socket to try, NULL for OFF. */
#define AZID_BROKER_SOCKET "/run/azid/azidd.sock"
typedef enum azid_broker_mode {
    AZID_BROKER_AUTO = 0,
    AZID_BROKER_OFF,
    AZID_BROKER_PATH
} azid_broker_mode;
azid_broker_mode azid_config_broker(const azid_config *config, const char **socket_path);
/* negative_cache= in milliseconds (0: off); the file's lines outside Match. */
long azid_config_negative_cache_ms(const azid_config *config);
/* lockdown_allow=: the user names and "@group" names, each once, in file
 * order; NULL-terminated list. */
size_t azid_config_lockdown_allow(const azid_config *config, const char *const **list);

/* ---- the broker (azidd(8)) ------------------------------------------------ */

/* A token that the policy grants the calling process's uid (the broker
 * reads it from the socket's peer credentials), from the broker's cache or
 * the endpoint; the caller frees it.  socket_path NULL: AZID_BROKER_SOCKET.
 * The reply must come within timeout_ms.  AZID_ERR_UNREACHABLE when no
 * broker answers there; otherwise the broker's refusal or failure, with
 * its message ("... is not granted to user ...", the endpoint's error).
 * The endpoint's failure keeps its status, so AZID_ERR_UNREACHABLE can
 * also be the broker's answer that the endpoint is unreachable:
 * azid_broker_request_token tells the two apart. */
azid_status azid_broker_get_token(const char *socket_path, const char *resource,
                                  long timeout_ms, azid_token **out, azid_error *err);
/* azid_broker_get_token, and *answered (when non-NULL) is 1 when the
 * broker's whole reply was read (the token, or the failure is its answer),
 * 0 when none was (no broker there, or no whole reply in time). */
azid_status azid_broker_request_token(const char *socket_path, const char *resource,
                                      long timeout_ms, azid_token **out, int *answered,
                                      azid_error *err);

typedef struct azid_broker_entry {
    int negative;           /* 0: a cached value; 1: a failure in the negative cache */
    int secret;             /* resource is a Key Vault secret URL (a secret, not a token) */
    const char *source;     /* "auto", "imds", ... as asked */
    const char *endpoint;   /* NULL: the source's own */
    const char *identity;   /* "system", "client_id=...", ... */
    const char *resource;
    int64_t expires_on;     /* token: its expiry (epoch seconds) */
    int64_t refresh_at;     /* token: its next refresh (epoch seconds) */
    long keys;              /* token: users' shared keys that hold it */
    int64_t until;          /* negative: answered from the cache until then */
    const char *status;     /* negative: the failure's azid_status_name */
    const char *message;    /* negative: the failure */
} azid_broker_entry;

typedef struct azid_broker_counters {
    uint64_t requests;      /* requests sent to the endpoint */
    uint64_t throttled;     /* of those, answered 429 */
    uint64_t served;        /* tokens issued to callers */
    uint64_t negative_hits; /* callers answered from the negative cache */
    uint64_t refreshes;
    long in_flight, queued;
} azid_broker_counters;

/* The broker's state: visit is called for each cached token or secret and
 * each negative entry (never a value), then counters is filled.  Same socket_path,
 * timeout and AZID_ERR_UNREACHABLE as azid_broker_get_token. */
azid_status azid_broker_status(const char *socket_path, long timeout_ms,
                               void (*visit)(const azid_broker_entry *entry, void *ctx),
                               void *ctx, azid_broker_counters *counters, azid_error *err);

/* Decimal seconds ("5", "2.5") in milliseconds, more than 0 and at most
 * AZID_TIMEOUT_MAX_MS: the parser of timeout= and --timeout. */
azid_status azid_timeout_parse(const char *seconds, long *ms, azid_error *err);

/* A client set up from the configuration (source, endpoint, the identity
 * outside Match blocks, timeout, CA file). */
azid_status azid_config_new_client(const azid_config *config, azid_client **out,
                                   azid_error *err);

/* Calls emit once per line describing the effective settings and which
 * Match lines applied; never a secret value. */
void azid_config_dump(const azid_config *config, void (*emit)(const char *line, void *ctx),
                      void *ctx);

#ifdef __cplusplus
}
#endif

#endif /* AZID_AZID_H */
