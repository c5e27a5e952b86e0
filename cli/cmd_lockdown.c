/* SPDX-License-Identifier: MIT
 * azid lockdown on|off|status: nftables rules (table inet azid) that let
 * only root, the broker's user and the lockdown_allow entries of
 * /etc/azid.conf reach the identity endpoint 169.254.169.254:80.
 *
 * The rules go through the nft command, not libnftables: `azid` is the
 * command every user runs for `azid token`, and linking libnftables
 * would load it (with libnftnl, libmnl and libxtables) into each of those
 * runs and make the package depend on it where nobody locks down.  nft -f
 * applies a whole file as one kernel transaction, exactly as the library
 * would; its errors are the ones an admin knows; and the rules azid writes
 * are the text `nft list table inet azid` shows and an admin can apply by
 * hand.  The price is one fork and exec per command, paid only by root. */
#include "config.h"

#include "azid.h"
#include "commands.h"
#include "lockdown.h"
#include "output.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* Where Debian and a source build put nft; PATH is not searched, so the
 * firewall is changed by the nft the system installed. */
static const char *const nft_paths[] = {"/usr/sbin/nft", "/sbin/nft", "/usr/local/sbin/nft"};
/* nft answers in milliseconds; this only bounds a wedged one. */
#define NFT_LIMIT_MS 30000
#define NFT_OUTPUT_MAX (4 * 1024 * 1024)

static const char help[] =
    "Closes the identity endpoint " LOCKDOWN_ADDR ":80 (IMDS) to every local\n"
    "process except root, the broker's user (" LOCKDOWN_BROKER_USER ", when it exists) and the\n"
    "users, @groups and IPv4 sources named by lockdown_allow in azid.conf; other\n"
    "callers get a TCP reset at once.  Forwarded traffic (containers) is refused\n"
    "unless its source address is allowed.  The rules are the nftables table\n"
    "inet azid and nothing else.\n"
    "\n"
    "  on      apply the rules from the config as it is now (again after a change:\n"
    "          the table is replaced in one transaction)\n"
    "  off     remove table inet azid\n"
    "  status  on or off, and who is let through\n"
    "\n"
    "  --config PATH  config file (default " AZID_CONFIG_PATH ")\n"
    "  --json         status: print one JSON object\n"
    "  -h, --help     show this help\n"
    "\n"
    "Root only.  Exit status: 0 done; 1 failed (the reason on stderr); 2 usage.\n";

static const char *find_nft(void)
{
    for (size_t i = 0; i < sizeof nft_paths / sizeof nft_paths[0]; i++)
        if (access(nft_paths[i], X_OK) == 0)
            return nft_paths[i];
    return NULL;
}

static long ms_since(const struct timespec *start)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (now.tv_sec - start->tv_sec) * 1000 + (now.tv_nsec - start->tv_nsec) / 1000000;
}

/* Appends what is ready on fd to *buf (capped); 0 at end of file. */
static int drain(int fd, char **buf, size_t *len)
{
    char chunk[4096];
    ssize_t n = read(fd, chunk, sizeof chunk);
    if (n <= 0)
        return n < 0 && errno == EINTR ? 1 : 0;
    if (*len + (size_t)n > NFT_OUTPUT_MAX)
        return 1;
    char *grown = realloc(*buf, *len + (size_t)n + 1);
    if (!grown)
        return 1;
    memcpy(grown + *len, chunk, (size_t)n);
    *len += (size_t)n;
    grown[*len] = '\0';
    *buf = grown;
    return 1;
}

/* Runs nft with args (after "nft"), input on its stdin.  0 when it
 * succeeded, with its stdout in *out (malloc'ed; may be NULL); otherwise
 * -1 with the reason (nft's own first error line) in why. */
static int run_nft(const char *const *args, const char *input, char **out, char *why,
                   size_t why_size)
{
    const char *nft = find_nft();
    *out = NULL;
    if (!nft) {
        snprintf(why, why_size, "nft is not installed (looked in /usr/sbin, /sbin, "
                                "/usr/local/sbin); install the nftables package");
        return -1;
    }
    const char *argv[8] = {"nft"};
    size_t argc = 1;
    for (; args[argc - 1] && argc < sizeof argv / sizeof argv[0] - 1; argc++)
        argv[argc] = args[argc - 1];
    argv[argc] = NULL;
    int in[2], o[2], e[2];
    if (pipe2(in, O_CLOEXEC) != 0) {
        snprintf(why, why_size, "pipe: %s", strerror(errno));
        return -1;
    }
    if (pipe2(o, O_CLOEXEC) != 0 || pipe2(e, O_CLOEXEC) != 0) {
        snprintf(why, why_size, "pipe: %s", strerror(errno));
        close(in[0]), close(in[1]);
        return -1;
    }
    pid_t pid = fork();
    if (pid == 0) {
        char *const env[] = {"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL=C", NULL};
        if (dup2(in[0], 0) < 0 || dup2(o[1], 1) < 0 || dup2(e[1], 2) < 0)
            _exit(127);
        execve(nft, (char *const *)argv, env);
        dprintf(2, "cannot run %s: %s\n", nft, strerror(errno));
        _exit(127);
    }
    close(in[0]), close(o[1]), close(e[1]);
    if (pid < 0) {
        snprintf(why, why_size, "cannot start %s: %s", nft, strerror(errno));
        close(in[1]), close(o[0]), close(e[0]);
        return -1;
    }
    /* The rules are a few hundred bytes: far below a pipe's buffer. */
    void (*old)(int) = signal(SIGPIPE, SIG_IGN);
    if (input && write(in[1], input, strlen(input)) < 0)
        snprintf(why, why_size, "writing to nft: %s", strerror(errno));
    close(in[1]);
    signal(SIGPIPE, old);

    char *errtext = NULL;
    size_t outlen = 0, errlen = 0;
    struct pollfd p[2] = {{.fd = o[0], .events = POLLIN}, {.fd = e[0], .events = POLLIN}};
    struct timespec start;
    clock_gettime(CLOCK_MONOTONIC, &start);
    int open_fds = 2, timed_out = 0;
    while (open_fds > 0) {
        long left = NFT_LIMIT_MS - ms_since(&start);
        if (left <= 0) {
            timed_out = 1;
            kill(pid, SIGKILL);
            break;
        }
        if (poll(p, 2, (int)left) < 0 && errno != EINTR)
            break;
        for (int i = 0; i < 2; i++)
            if (p[i].fd >= 0 && p[i].revents &&
                !drain(p[i].fd, i ? &errtext : out, i ? &errlen : &outlen)) {
                close(p[i].fd);
                p[i].fd = -1;
                open_fds--;
            }
    }
    for (int i = 0; i < 2; i++)
        if (p[i].fd >= 0)
            close(p[i].fd);
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    if (!timed_out && WIFEXITED(status) && WEXITSTATUS(status) == 0) {
        free(errtext);
        return 0;
    }
    if (timed_out)
        snprintf(why, why_size, "%s did not finish within %d s", nft, NFT_LIMIT_MS / 1000);
    else if (errtext && *errtext)
        snprintf(why, why_size, "nft: %.*s", (int)strcspn(errtext, "\n"), errtext);
    else
        snprintf(why, why_size, "%s failed (status %d)", nft,
                 WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status));
    free(errtext);
    free(*out);
    *out = NULL;
    return -1;
}

/* The whole table as one nft transaction: creating it first makes the
 * delete succeed when it is absent, so the table is replaced, never
 * merged, and nothing in between is ever open. */
static char *ruleset(const struct lockdown_allow *allow)
{
    char *text = NULL;
    size_t size = 0;
    FILE *f = open_memstream(&text, &size);
    if (!f)
        return NULL;
    fputs("table inet azid {}\n"
          "delete table inet azid\n"
          "table inet azid {\n"
          "\tcomment \"azid lockdown: only these reach the identity endpoint; see azid(1)\"\n"
          "\tset allowed_uids {\n\t\ttype uid\n\t\telements = {", f);
    for (size_t i = 0; i < allow->nuids; i++)
        fprintf(f, "%s %u", i ? "," : "", (unsigned)allow->uids[i]);
    fputs(" }\n\t}\n\tset allowed_sources {\n\t\ttype ipv4_addr\n\t\tflags interval\n", f);
    if (allow->nsources) {
        fputs("\t\telements = {", f);
        for (size_t i = 0; i < allow->nsources; i++)
            fprintf(f, "%s %s", i ? "," : "", allow->sources[i]);
        fputs(" }\n", f);
    }
    /* meta skuid is the owner of the sending socket; forwarded packets
     * have none and are told apart by their source address instead. */
    fputs("\t}\n"
          "\tchain output {\n"
          "\t\ttype filter hook output priority filter; policy accept;\n"
          "\t\tip daddr " LOCKDOWN_ADDR " tcp dport 80 meta skuid != @allowed_uids "
          "reject with tcp reset\n"
          "\t}\n"
          "\tchain forward {\n"
          "\t\ttype filter hook forward priority filter; policy accept;\n"
          "\t\tip daddr " LOCKDOWN_ADDR " tcp dport 80 ip saddr != @allowed_sources "
          "reject with tcp reset\n"
          "\t}\n"
          "}\n", f);
    if (fclose(f) != 0) {
        free(text);
        return NULL;
    }
    return text;
}

static void warn_stderr(const char *message, void *ctx)
{
    fprintf(stderr, "azid %s: warning: %s\n", (const char *)ctx, message);
}

/* The config file to read: --config, or the built-in path. */
static azid_config *load_config(const char *path, azid_error *err)
{
    azid_config *config = azid_config_new();
    char *arg = NULL;
    if (!config || (path && asprintf(&arg, "config=%s", path) < 0)) {
        azid_config_free(config);
        snprintf(err->message, sizeof err->message, "out of memory");
        return NULL;
    }
    if (arg && azid_config_apply_arg(config, arg, err) != AZID_OK) {
        azid_config_free(config);
        config = NULL;
    }
    free(arg);
    return config;
}

static void describe(const struct lockdown_allow *allow, FILE *out)
{
    char uids[4096];
    lockdown_format_uids(allow, uids, sizeof uids);
    fprintf(out, "allowed uids: %s\nforwarded traffic allowed from: ", uids);
    for (size_t i = 0; i < allow->nsources; i++)
        fprintf(out, "%s%s", i ? ", " : "", allow->sources[i]);
    fprintf(out, "%s\n", allow->nsources ? "" : "no source (all refused)");
}

static int lockdown_on(const char *config_path)
{
    azid_error err = {0};
    azid_config *config = load_config(config_path, &err);
    struct lockdown_allow allow;
    if (!config || lockdown_desired(config, &allow, warn_stderr, "lockdown", &err) != AZID_OK) {
        azid_config_free(config);
        report("lockdown", "%s; nothing changed", err.message);
        return EXIT_FAIL;
    }
    azid_config_free(config);
    char *rules = ruleset(&allow), *out = NULL, why[512];
    static const char *const apply[] = {"-f", "-", NULL};
    int rc = EXIT_FAIL;
    if (!rules)
        report("lockdown", "out of memory; nothing changed");
    else if (run_nft(apply, rules, &out, why, sizeof why) != 0)
        report("lockdown", "applying table inet azid failed: %s; nothing changed", why);
    else if (lockdown_state_write(&allow, &err) != AZID_OK)
        report("lockdown", "the rules are on, but %s: azid fetch cannot explain a refusal",
               err.message);
    else {
        printf("lockdown on: " LOCKDOWN_ADDR ":%d answers only these (table inet azid)\n",
               LOCKDOWN_PORT);
        describe(&allow, stdout);
        rc = finish_stdout("lockdown");
    }
    free(rules);
    free(out);
    lockdown_allow_free(&allow);
    return rc;
}

static int lockdown_off(void)
{
    static const char *const apply[] = {"-f", "-", NULL};
    char *out = NULL, why[512];
    azid_error err = {0};
    if (run_nft(apply, "table inet azid {}\ndelete table inet azid\n", &out, why,
                sizeof why) != 0) {
        report("lockdown", "removing table inet azid failed: %s", why);
        return EXIT_FAIL;
    }
    free(out);
    if (lockdown_state_remove(&err) != AZID_OK) {
        report("lockdown", "the rules are off, but %s", err.message);
        return EXIT_FAIL;
    }
    printf("lockdown off: table inet azid removed; every local process can reach "
           LOCKDOWN_ADDR ":%d\n", LOCKDOWN_PORT);
    return finish_stdout("lockdown");
}

/* The set elements of table inet azid as nft lists them (JSON). */
static int parse_applied(const char *json, struct lockdown_allow *allow)
{
    json_error_t jerr;
    json_t *root = json_loads(json, 0, &jerr), *item;
    size_t i;
    int rc = root ? 0 : -1;
    json_array_foreach(json_object_get(root, "nftables"), i, item) {
        json_t *set = json_object_get(item, "set"), *elem;
        const char *name = json_string_value(json_object_get(set, "name"));
        if (!name)
            continue;
        size_t j;
        json_array_foreach(json_object_get(set, "elem"), j, elem) {
            char text[20];
            json_t *prefix = json_object_get(elem, "prefix");
            if (json_is_integer(elem) && strcmp(name, "allowed_uids") == 0)
                rc |= lockdown_allow_uid(allow, (uid_t)json_integer_value(elem));
            else if (json_is_string(elem) || prefix) {
                if (prefix)
                    snprintf(text, sizeof text, "%s/%d",
                             json_string_value(json_object_get(prefix, "addr")),
                             (int)json_integer_value(json_object_get(prefix, "len")));
                else
                    snprintf(text, sizeof text, "%s", json_string_value(elem));
                rc |= lockdown_allow_source(allow, text);
            }
        }
    }
    json_decref(root);
    return rc;
}

/* 1 on, 0 off, -1 could not tell (why filled). */
static int read_applied(struct lockdown_allow *allow, char *why, size_t why_size)
{
    static const char *const tables[] = {"-j", "list", "tables", "inet", NULL};
    static const char *const table[] = {"-j", "list", "table", "inet", "azid", NULL};
    char *out = NULL;
    *allow = (struct lockdown_allow){0};
    if (run_nft(tables, NULL, &out, why, why_size) != 0)
        return -1;
    json_t *root = json_loads(out ? out : "", 0, NULL), *item;
    size_t i;
    int on = 0;
    json_array_foreach(json_object_get(root, "nftables"), i, item) {
        const char *name = json_string_value(json_object_get(json_object_get(item, "table"), "name"));
        on |= name && strcmp(name, "azid") == 0;
    }
    json_decref(root);
    free(out);
    if (!on)
        return 0;
    if (run_nft(table, NULL, &out, why, why_size) != 0)
        return -1;
    int rc = parse_applied(out ? out : "", allow);
    free(out);
    if (rc != 0) {
        snprintf(why, why_size, "cannot read nft's listing of table inet azid");
        lockdown_allow_free(allow);
        return -1;
    }
    return 1;
}

static int same_allow(const struct lockdown_allow *a, const struct lockdown_allow *b)
{
    if (a->nuids != b->nuids || a->nsources != b->nsources)
        return 0;
    for (size_t i = 0; i < a->nuids; i++)
        if (a->uids[i] != b->uids[i])
            return 0;
    for (size_t i = 0; i < a->nsources; i++) {
        size_t j = 0;
        while (j < b->nsources && strcmp(a->sources[i], b->sources[j]) != 0)
            j++;
        if (j == b->nsources)
            return 0;
    }
    return 1;
}

static void print_status_json(int on, const struct lockdown_allow *applied, int current)
{
    printf("{\"lockdown\":\"%s\",\"allowed_uids\":[", on ? "on" : "off");
    for (size_t i = 0; i < applied->nuids; i++)
        printf("%s%u", i ? "," : "", (unsigned)applied->uids[i]);
    fputs("],\"allowed_sources\":[", stdout);
    for (size_t i = 0; i < applied->nsources; i++) {
        fputs(i ? "," : "", stdout);
        json_print_string(stdout, applied->sources[i]);
    }
    printf("],\"config_applied\":%s}\n", current > 0 ? "true" : "false");
}

static int lockdown_status(const char *config_path, int json)
{
    struct lockdown_allow applied, desired;
    char why[512];
    int on = read_applied(&applied, why, sizeof why);
    if (on < 0) {
        report("lockdown", "cannot read the ruleset: %s", why);
        return EXIT_FAIL;
    }
    /* Whether the rules still say what the config says now. */
    azid_error err = {0};
    azid_config *config = load_config(config_path, &err);
    int current = -1;
    if (config && lockdown_desired(config, &desired, NULL, NULL, &err) == AZID_OK) {
        current = on && same_allow(&applied, &desired);
        lockdown_allow_free(&desired);
    }
    azid_config_free(config);

    if (json) {
        print_status_json(on, &applied, current);
    } else if (!on) {
        printf("lockdown: off (no table inet azid); every local process can reach "
               LOCKDOWN_ADDR ":%d\n", LOCKDOWN_PORT);
    } else {
        printf("lockdown: on (table inet azid)\n");
        describe(&applied, stdout);
        if (current == 0)
            printf("config: %s now allows others; run 'azid lockdown on' to apply it\n",
                   config_path ? config_path : AZID_CONFIG_PATH);
        else if (current < 0)
            printf("config: %s; the rules above stay as they are\n", err.message);
    }
    lockdown_allow_free(&applied);
    return finish_stdout("lockdown");
}

int cmd_lockdown(int argc, char **argv)
{
    enum { OPT_CONFIG = 256, OPT_JSON }; /* long only */
    static const struct option options[] = {
        {"config", required_argument, NULL, OPT_CONFIG},
        {"json", no_argument, NULL, OPT_JSON},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *config_path = NULL;
    int c, json = 0;
    while ((c = next_option(argc, argv, options)) != -1) {
        switch (c) {
        case OPT_CONFIG:
            config_path = optarg;
            break;
        case OPT_JSON:
            json = 1;
            break;
        case 'h':
            return print_help("lockdown", help);
        default:
            return EXIT_USAGE;
        }
    }
    if (optind >= argc)
        return usage_error("lockdown", "say on, off or status");
    const char *verb = argv[optind];
    if (optind + 1 < argc)
        return usage_error("lockdown", "unexpected argument '%s'", argv[optind + 1]);
    int is_on = strcmp(verb, "on") == 0, is_off = strcmp(verb, "off") == 0;
    if (!is_on && !is_off && strcmp(verb, "status") != 0)
        return usage_error("lockdown", "unknown action '%s'; say on, off or status", verb);
    if (json && !(!is_on && !is_off))
        return usage_error("lockdown", "--json goes with status only");
    if (geteuid() != 0) {
        report("lockdown", "only root can %s lockdown (it changes and reads the firewall); "
               "run 'sudo azid lockdown %s'", is_on ? "turn on" : is_off ? "turn off" : "read",
               verb);
        return EXIT_FAIL;
    }
    return is_on ? lockdown_on(config_path) : is_off ? lockdown_off()
                                                     : lockdown_status(config_path, json);
}
