/* SPDX-License-Identifier: MIT
 * azid doctor: one screen answering an admin's first questions about this
 * machine's azid setup.  Never prints a token. */
#include "config.h"

#include "azid.h"
#include "commands.h"
#include "doctor.h"
#include "keys.h"
#include "output.h"

#include <errno.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define DOCTOR_TIMEOUT_MS 2000
#define PAM_DIR "/etc/pam.d"

static const char help[] =
    "Checks, one line each: whether this is an Azure machine, which identity\n"
    "source and endpoint azid uses, whether the endpoint answers, whether an\n"
    "identity is assigned (it asks for a token for " AZID_DEFAULT_RESOURCE " and\n"
    "prints none), whether the config file is valid and safe for you (run as\n"
    "root: who is granted what, outside Match and in each Match block), whether\n"
    "this session's keyring is usable and has quota left, and whether each PAM stack that lists\n"
    "pam_azid.so lists pam_keyinit.so before it, whether the broker (azidd)\n"
    "answers, whether 'azid lockdown' is on and\n"
    "whom it lets through, and which processes of other users talk to the\n"
    "identity endpoint (it cuts them off).  Each line reads\n"
    "  ok|warn|FAIL  WHAT: DETAIL; WHAT TO DO\n"
    "\n"
    "  --config PATH   config file (default " AZID_CONFIG_PATH ")\n"
    "  --endpoint URL  token endpoint base, scheme://host[:port], as endpoint=\n"
    "  --timeout S     budget for the endpoint check, seconds (default 2)\n"
    "  --pam-dir DIR   PAM configuration directory (default " PAM_DIR ")\n"
    "  -h, --help      show this help\n"
    "\n"
    "Exit status: 0 no FAIL (warnings allowed); 1 at least one FAIL; 2 usage.\n";

void finding(struct doctor *d, enum finding_level level, const char *what, const char *fmt, ...)
{
    static const char *const labels[] = {"ok", "warn", "FAIL"};
    va_list ap;
    printf("%-4s  %s: ", labels[level], what);
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    putchar('\n');
    d->failures += level == FINDING_FAIL;
    d->warnings += level == FINDING_WARN;
}

/* What the library's detection decided; client may be NULL (a config that
 * gives no client still has a machine to look at). */
static void check_machine(struct doctor *d, azid_client *client)
{
    azid_client *own = client ? NULL : azid_client_new();
    azid_detection found = {AZID_SOURCE_AUTO, "nothing looked at (out of memory)"};
    azid_client_detect(client ? client : own, &found, NULL);
    azid_client_free(own);
    if (found.source != AZID_SOURCE_AUTO) {
        finding(d, FINDING_OK, "Azure machine", "%s", found.reason);
        return;
    }
    /* Without a source the "identity source" line below says what to do. */
    if (!client || azid_client_resolve_source(client, NULL, NULL) != AZID_OK)
        finding(d, FINDING_WARN, "Azure machine", "%s", found.reason);
    else
        finding(d, FINDING_WARN, "Azure machine",
                "%s; managed identities exist only on Azure, so azid works here only with "
                "endpoint= in azid.conf", found.reason);
}

/* unreadable: the caller cannot read path (the config was not loaded). */
static void check_config(struct doctor *d, azid_status status, const azid_error *err,
                         const char *path, bool unreadable, const char *user,
                         const azid_config *config)
{
    struct stat st;
    if (unreadable) {
        finding(d, FINDING_WARN, "config",
                "%s is not readable by uid %u, so its grants are not checked and the checks "
                "below use the built-in defaults; pam_azid reads it as root: run 'sudo azid "
                "doctor' to check the file", path, (unsigned)getuid());
    } else if (status != AZID_OK) {
        finding(d, FINDING_FAIL, "config",
                "%s; fix it (see azid.conf(5)): pam_azid refuses it too and applies none of it",
                err->message);
    } else if (stat(path, &st) != 0 && errno == ENOENT) {
        finding(d, FINDING_OK, "config",
                "%s does not exist; built-in defaults and the PAM arguments apply", path);
    } else {
        const char *const *list;
        size_t resources = azid_config_resources(config, &list);
        size_t secrets = azid_config_secrets(config, &list);
        finding(d, FINDING_OK, "config",
                "%s is valid and safe; for user %s it grants %zu resource(s) and %zu "
                "secret(s)", path, user ? user : "(none)", resources, secrets);
    }
    if (status == AZID_OK && !unreadable && !azid_config_grants_anyone(config))
        finding(d, FINDING_WARN, "policy",
                "%s grants nothing to anyone, and nothing is granted implicitly, so pam_azid "
                "stores no token at any login (unless its line in /etc/pam.d names resource= "
                "or secret=); to grant one, write in %s 'resource = https://vault.azure.net' "
                "for everyone, or 'Match group GROUP' and then that line for one group",
                path, path);
}

struct levels {
    struct doctor *d;
    const char *path;
};

/* One line per level of the policy, for root, who can read the whole
 * file: "grants Match group dba: at FILE:LINE, resources ...; secrets
 * ...; identity ...". */
static void report_level(const azid_grant_level *level, void *ctx)
{
    const struct levels *l = ctx;
    char what[160], targets[2][2048] = {"", ""};
    snprintf(what, sizeof what, "grants %s", level->match ? level->match : "outside Match");
    for (size_t i = 0; i < level->ngrants; i++) {
        char *list = targets[level->grants[i].kind == AZID_GRANT_SECRET];
        size_t used = strlen(list);
        snprintf(list + used, sizeof targets[0] - used, "%s%s", used ? ", " : "",
                 level->grants[i].target);
    }
    const azid_grant *first = level->ngrants ? &level->grants[0] : NULL;
    const char *kind = first ? azid_identity_name(first->identity) : NULL;
    char where[1100];
    if (level->match)
        snprintf(where, sizeof where, "at %s:%u", l->path, level->line);
    else
        snprintf(where, sizeof where, "in %s and the PAM arguments", l->path);
    if (!first)
        finding(l->d, FINDING_OK, what, "%s, nothing", where);
    else
        finding(l->d, FINDING_OK, what, "%s, resources %s; secrets %s; identity %s%s%s", where,
                targets[0][0] ? targets[0] : "none", targets[1][0] ? targets[1] : "none",
                kind ? kind : "system-assigned", kind ? "=" : "",
                kind ? first->identity_value : "");
}

static void check_levels(struct doctor *d, const azid_config *config, const char *path)
{
    struct levels l = {d, path};
    azid_error err = {0};
    if (azid_config_levels(config, report_level, &l, &err) != AZID_OK)
        finding(d, FINDING_FAIL, "grants", "%s", err.message);
}

/* Whether the endpoint checks can go on. */
static int check_source(struct doctor *d, azid_client *client)
{
    azid_source source;
    azid_error err = {0};
    if (azid_client_resolve_source(client, &source, &err) != AZID_OK) {
        finding(d, FINDING_FAIL, "identity source", "%s", err.message);
        return 0;
    }
    finding(d, FINDING_OK, "identity source", "%s, token endpoint %s", azid_source_name(source),
            azid_client_endpoint(client));
    return 1;
}

static void describe_identity(const azid_config *config, char *buf, size_t size)
{
    const char *value;
    azid_identity_kind kind = azid_config_identity(config, &value);
    if (kind == AZID_IDENTITY_SYSTEM)
        snprintf(buf, size, "the system-assigned identity");
    else
        snprintf(buf, size, "the user-assigned identity %s=%s", azid_identity_name(kind), value);
}

static long elapsed_ms(const struct timespec *start)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (now.tv_sec - start->tv_sec) * 1000 + (now.tv_nsec - start->tv_nsec) / 1000000;
}

/* What to do about a 4xx or 5xx answer to the token request. */
static void explain_refusal(struct doctor *d, const azid_error *err, const char *identity,
                            const char *config_path)
{
    int n = fact_length(err->message);
    if (err->http_status == 400 && strcasestr(err->message, "Identity not found"))
        finding(d, FINDING_FAIL, "identity assigned",
                "%.*s; %s is not assigned here: az vm identity assign -g GROUP -n VM "
                "[--identities ID] (a new one can take a minute to show), or name an "
                "assigned one with client_id= in %s", n, err->message, identity, config_path);
    else if (err->http_status == 400 && strcasestr(err->message, "Multiple user assigned"))
        finding(d, FINDING_FAIL, "identity assigned",
                "%.*s; this machine has several user-assigned identities and no system-assigned "
                "one, so requests must name one: set client_id= (or object_id=, msi_res_id=) "
                "in %s", n, err->message, config_path);
    else
        finding(d, FINDING_FAIL, "identity assigned",
                "%.*s; asking for %s was refused: check the identity settings in %s (and, for "
                "a 5xx, retry later: the endpoint may be updating)", n, err->message, identity,
                config_path);
}

static void check_identity(struct doctor *d, azid_client *client, const azid_config *config,
                           const char *config_path)
{
    char identity[600];
    describe_identity(config, identity, sizeof identity);
    struct timespec start;
    clock_gettime(CLOCK_MONOTONIC, &start);
    azid_token *token = NULL;
    azid_error err = {0};
    azid_status status = azid_client_get_token(client, AZID_DEFAULT_RESOURCE, &token, &err);
    long ms = elapsed_ms(&start);

    if (status == AZID_ERR_UNREACHABLE || status == AZID_ERR_TIMEOUT) {
        finding(d, FINDING_FAIL, "endpoint reachable",
                "%s; check the route and firewall to it (Azure's IMDS answers only on the "
                "primary NIC), or fix endpoint= in %s", err.message, config_path);
        return;
    }
    if (status != AZID_OK && status != AZID_ERR_HTTP && status != AZID_ERR_RESPONSE) {
        finding(d, FINDING_FAIL, "identity assigned", "%s", err.message);
        return;
    }
    if (err.http_status)
        finding(d, FINDING_OK, "endpoint reachable", "%s answered HTTP %ld in %ld ms",
                azid_client_endpoint(client), err.http_status, ms);
    else
        finding(d, FINDING_OK, "endpoint reachable", "%s answered in %ld ms",
                azid_client_endpoint(client), ms);

    if (status == AZID_ERR_HTTP) {
        explain_refusal(d, &err, identity, config_path);
    } else if (status == AZID_ERR_RESPONSE) {
        finding(d, FINDING_FAIL, "identity assigned",
                "%s; the endpoint answered but not with a valid token: is it really a "
                "managed-identity endpoint?", err.message);
    } else {
        char left[32];
        format_time_left((long)(azid_token_expires_on(token) - time(NULL)), left, sizeof left);
        finding(d, FINDING_OK, "identity assigned",
                "%s got a token for %s, valid for %s", identity, AZID_DEFAULT_RESOURCE, left);
        azid_token_free(token);
    }
}

static void check_keyring(struct doctor *d)
{
    azid_error err = {0};
    uid_t uid = getuid();
    switch (azid_keyring_check_session(uid, &err)) {
    case AZID_OK: {
        struct key_snapshot snap;
        size_t count = 0;
        if (keys_snapshot(&snap, NULL) == AZID_OK) {
            count = snap.count;
            keys_snapshot_free(&snap);
        }
        finding(d, FINDING_OK, "keyring",
                "this session has its own keyring, owned by uid %u, where pam_azid stores "
                "keys; %zu azid key(s) in reach ('azid list')", (unsigned)uid, count);
        break;
    }
    case AZID_ERR_NOT_SESSION:
        finding(d, FINDING_WARN, "keyring",
                "%s; sudo, and su without '-', keep the invoking user's keyring: run azid "
                "doctor in a fresh login to see what pam_azid sees", err.message);
        break;
    default:
        finding(d, FINDING_FAIL, "keyring",
                "%s; azid cannot store tokens here: the kernel keyring is blocked (a "
                "container's seccomp profile must allow add_key and keyctl) or missing "
                "(CONFIG_KEYS)", err.message);
        break;
    }
}

/* Headroom in the kernel's per-user key quota (keyring.md): a token is
 * about 2.5 KB, and a full quota fails the next login's add_key with
 * EDQUOT.  /proc/key-users: "uid: usage nkeys/nikeys qnkeys/maxkeys
 * qnbytes/maxbytes". */
#define QUOTA_MIN_BYTES 7500
#define QUOTA_MIN_KEYS 3

static void check_keyring_quota(struct doctor *d)
{
    FILE *f = fopen("/proc/key-users", "re");
    if (!f) {
        finding(d, FINDING_WARN, "keyring quota", "cannot read /proc/key-users: %s",
                strerror(errno));
        return;
    }
    unsigned uid = (unsigned)getuid(), u, usage, nkeys, nikeys;
    unsigned long keys = 0, maxkeys = 0, bytes = 0, maxbytes = 0;
    int found = 0;
    char line[256];
    while (!found && fgets(line, sizeof line, f))
        found = sscanf(line, " %u: %u %u/%u %lu/%lu %lu/%lu", &u, &usage, &nkeys, &nikeys,
                       &keys, &maxkeys, &bytes, &maxbytes) == 8 && u == uid;
    fclose(f);
    if (!found) {
        /* The kernel lists a uid once it owns a key; with none, all is free. */
        finding(d, FINDING_OK, "keyring quota", "uid %u owns no keys yet", uid);
        return;
    }
    unsigned long bytes_left = maxbytes > bytes ? maxbytes - bytes : 0;
    unsigned long keys_left = maxkeys > keys ? maxkeys - keys : 0;
    if (bytes_left < QUOTA_MIN_BYTES || keys_left < QUOTA_MIN_KEYS)
        finding(d, FINDING_WARN, "keyring quota",
                "uid %u uses %lu of %lu bytes and %lu of %lu keys; a token takes about 2,500 "
                "bytes, so the next logins may fail to store theirs: remove stale keys "
                "('azid list'), or raise sysctl %s", uid, bytes, maxbytes, keys, maxkeys,
                uid == 0 ? "kernel.keys.root_maxbytes / root_maxkeys"
                         : "kernel.keys.maxbytes / kernel.keys.maxkeys");
    else
        finding(d, FINDING_OK, "keyring quota", "uid %u uses %lu of %lu bytes and %lu of %lu keys",
                uid, bytes, maxbytes, keys, maxkeys);
}

/* Whether azidd answers where broker= says; without it logins still work,
 * each asking the endpoint itself. */
static void check_broker(struct doctor *d, const azid_config *config)
{
    const char *path = NULL;
    if (azid_config_broker(config, &path) == AZID_BROKER_OFF) {
        finding(d, FINDING_OK, "broker", "off (broker=off): each login asks the endpoint itself");
        return;
    }
    azid_broker_counters c;
    azid_error err = {0};
    azid_status st = azid_broker_status(path, DOCTOR_TIMEOUT_MS, NULL, NULL, &c, &err);
    if (st == AZID_OK)
        finding(d, FINDING_OK, "broker",
                "azidd answers at %s: %llu request(s) sent to the endpoint, %llu throttled, "
                "%llu token(s) served ('azid status')",
                path, (unsigned long long)c.requests, (unsigned long long)c.throttled,
                (unsigned long long)c.served);
    else
        finding(d, FINDING_WARN, "broker",
                "%s; logins work without it, each asking the endpoint itself (a burst can be "
                "throttled, a dead endpoint costs every login its timeout): systemctl enable "
                "--now azidd.socket",
                err.message);
}

struct doctor_args {
    const char *config_path, *endpoint, *pam_dir;
    long timeout_ms;
    int config_given;
};

/* -1 when parsed; otherwise the exit code (help shown or usage error). */
static int parse_doctor_args(int argc, char **argv, struct doctor_args *a)
{
    enum { OPT_CONFIG = 256, OPT_ENDPOINT, OPT_TIMEOUT, OPT_PAM_DIR }; /* long only */
    static const struct option options[] = {
        {"config", required_argument, NULL, OPT_CONFIG},
        {"endpoint", required_argument, NULL, OPT_ENDPOINT},
        {"timeout", required_argument, NULL, OPT_TIMEOUT},
        {"pam-dir", required_argument, NULL, OPT_PAM_DIR},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int c;
    while ((c = next_option(argc, argv, options)) != -1) {
        switch (c) {
        case OPT_CONFIG:
            a->config_path = optarg;
            a->config_given = 1;
            break;
        case OPT_ENDPOINT:
            a->endpoint = optarg;
            break;
        case OPT_TIMEOUT:
            if ((a->timeout_ms = parse_seconds_ms(optarg)) < 0)
                return usage_error("doctor", "--timeout wants seconds (0 < S <= 300), not '%s'",
                                   optarg);
            break;
        case OPT_PAM_DIR:
            a->pam_dir = optarg;
            break;
        case 'h':
            return print_help("doctor", help);
        default:
            return EXIT_USAGE;
        }
    }
    if (optind < argc)
        return usage_error("doctor", "unexpected argument '%s'", argv[optind]);
    return -1;
}

int cmd_doctor(int argc, char **argv)
{
    struct doctor_args a = {AZID_CONFIG_PATH, NULL, PAM_DIR, DOCTOR_TIMEOUT_MS, 0};
    int rc = parse_doctor_args(argc, argv, &a);
    if (rc >= 0)
        return rc;
    const char *config_path = a.config_path, *endpoint = a.endpoint, *pam_dir = a.pam_dir;
    long timeout_ms = a.timeout_ms;
    int config_given = a.config_given;

    azid_config *config = azid_config_new();
    azid_error config_err = {0}, err = {0};
    char *config_arg = NULL;
    if (!config || (config_given && asprintf(&config_arg, "config=%s", config_path) < 0)) {
        azid_config_free(config);
        report("doctor", "out of memory");
        return EXIT_FAIL;
    }
    if (config_arg && azid_config_apply_arg(config, config_arg, &err) != AZID_OK) {
        free(config_arg);
        azid_config_free(config);
        return usage_error("doctor", "%s", err.message);
    }
    free(config_arg);
    const struct passwd *pw = getpwuid(getuid());
    const char *user = pw ? pw->pw_name : NULL;
    bool unreadable = config_unreadable_by_caller(config_path);
    azid_status config_status = unreadable ? AZID_OK : azid_config_load(config, user, &config_err);

    /* A config that does not load leaves the defaults, which still say
     * whether the endpoint answers. */
    azid_client *client = NULL;
    azid_status client_status = azid_config_new_client(config, &client, &err);
    if (client_status == AZID_OK && endpoint &&
        azid_client_set_endpoint(client, endpoint, &err) != AZID_OK) {
        azid_client_free(client);
        azid_config_free(config);
        return usage_error("doctor", "%s", err.message);
    }
    if (client_status == AZID_OK)
        client_status = azid_client_set_timeout_ms(client, timeout_ms, &err);

    struct doctor d = {0, 0};
    check_machine(&d, client_status == AZID_OK ? client : NULL);
    check_config(&d, config_status, &config_err, config_path, unreadable, user, config);
    if (getuid() == 0 && config_status == AZID_OK)
        check_levels(&d, config, config_path);
    if (client_status != AZID_OK)
        finding(&d, FINDING_FAIL, "identity source", "%s; fix the source, endpoint and identity "
                "settings in %s", err.message, config_path);
    else if (check_source(&d, client))
        check_identity(&d, client, config, config_path);
    check_keyring(&d);
    check_keyring_quota(&d);
    check_broker(&d, config);
    doctor_check_pam(&d, pam_dir);
    doctor_check_lockdown(&d, config_path);

    azid_client_free(client);
    azid_config_free(config);
    rc = finish_stdout("doctor");
    return rc != EXIT_OK ? rc : d.failures ? EXIT_FAIL : EXIT_OK;
}
