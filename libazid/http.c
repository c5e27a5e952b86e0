/* SPDX-License-Identifier: MIT
 * One HTTP attempt through libcurl.  Everything that makes an attempt safe
 * inside someone else's process lives here: no signals (NOSIGNAL), no
 * environment proxies (NOPROXY "*"; IMDS rejects proxied requests), no
 * redirects, http/https only, a hard per-attempt timeout and a body cap. */
#include "config.h"

#include "http.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <dlfcn.h>
#include <limits.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/auxv.h>
#include <time.h>
#include <unistd.h>

/* libcurl is loaded at the first request, not linked: a login the broker
 * serves, a session granted nothing, `azid token` and azidd itself never
 * map it and the thirty libraries it brings (some 12 million instructions
 * of ld.so work at every sshd login; bench/README.md).  Once loaded it
 * stays (RTLD_NODELETE), whoever unloads the code that loaded it:
 * - an attempt cut off while resolving a host name leaves its resolver
 *   thread to finish inside libcurl (CURLOPT_QUICK_EXIT);
 * - a process that runs many sessions loads it once.
 * Each function used is named once below; its type is the header's. */
#define CURL_FUNCTIONS(X) \
    X(easy_init) X(easy_setopt) X(easy_perform) X(easy_getinfo) X(easy_cleanup) \
    X(easy_strerror) X(global_init) X(global_init_mem) X(slist_append) X(slist_free_all) \
    X(version_info)
/* OpenSSL's, found among libcurl's own libraries (so the OpenSSL that
 * libcurl uses, whatever else the host process loaded). */
#define OPENSSL_FUNCTIONS(X) \
    X(OPENSSL_INIT_new) X(OPENSSL_INIT_set_config_filename) X(OPENSSL_INIT_free) \
    X(OPENSSL_init_ssl) X(X509_get_default_cert_area) X(SSL_CTX_set_keylog_callback) \
    X(SSL_CTX_set_options)

static struct {
#define CURL_FIELD(f) __typeof__(curl_##f) *f;
    CURL_FUNCTIONS(CURL_FIELD)
#undef CURL_FIELD
#define OPENSSL_FIELD(f) __typeof__(f) *f;
    OPENSSL_FUNCTIONS(OPENSSL_FIELD)
#undef OPENSSL_FIELD
} lib;

/* Set once libcurl is loaded and initialised; until then every request
 * tries again (a load can fail for a while: no file descriptors or memory
 * left, the package being upgraded). */
static pthread_mutex_t curl_lock = PTHREAD_MUTEX_INITIALIZER;
static int curl_ready;
static int curl_openssl; /* libcurl's TLS backend is OpenSSL (lib's functions) */
/* azid_global_init's AZID_GLOBAL_NO_TLS, and whether a request got as far
 * as loading libcurl: then OpenSSL may have been set up by it, and OpenSSL
 * keeps its first setup (even if libcurl's initialisation then failed). */
static int no_tls;
static int no_tls_fixed;

azid_status azid_global_init(unsigned flags, azid_error *err)
{
    if (flags & ~AZID_GLOBAL_NO_TLS)
        return err_set(err, AZID_ERR_ARGUMENT, "azid_global_init: unknown flags 0x%x (libazid(3) "
                                               "lists the AZID_GLOBAL_ ones)",
                       flags & ~AZID_GLOBAL_NO_TLS);
    int want = (flags & AZID_GLOBAL_NO_TLS) != 0;
    pthread_mutex_lock(&curl_lock);
    int refused = no_tls_fixed && want != no_tls;
    if (!no_tls_fixed)
        no_tls = want;
    pthread_mutex_unlock(&curl_lock);
    if (refused)
        return err_set(err, AZID_ERR_ARGUMENT, "azid_global_init after this process's first "
                                               "request loaded libcurl; call it before that");
    return AZID_OK;
}

/* Whether this process's environment may be someone else's: a set-id
 * program (su) has its caller's; a root process may too (telnetd runs
 * `login -p`, which keeps the user's).  Such a process never lets the
 * environment make libcurl or OpenSSL write files or change trust. */
static int environment_untrusted(void)
{
    return getauxval(AT_SECURE) || getuid() == 0 || geteuid() == 0;
}

/* OpenSSL reads OPENSSL_CONF (and, through the file, providers, engines
 * and the TLS defaults of every SSL_CTX, such as the signature algorithms)
 * with getenv when it first loads its configuration, which libcurl's
 * initialisation triggers.  Loading
 * the system file by its compiled-in path first makes that later load a
 * no-op.  A host process that had loaded a configuration before keeps it:
 * that one came from its own start, not from a caller. */
static void openssl_load_system_config(void)
{
    char path[PATH_MAX];
    OPENSSL_INIT_SETTINGS *settings = lib.OPENSSL_INIT_new();
    if (settings &&
        snprintf(path, sizeof path, "%s/openssl.cnf", lib.X509_get_default_cert_area()) <
            (int)sizeof path &&
        lib.OPENSSL_INIT_set_config_filename(settings, path))
        lib.OPENSSL_init_ssl(OPENSSL_INIT_LOAD_CONFIG, settings);
    lib.OPENSSL_INIT_free(settings);
}

/* Loads libcurl and resolves its functions, and OpenSSL's if libcurl
 * uses OpenSSL. */
static azid_status load_libcurl(azid_error *err)
{
    void *h = dlopen(LIBCURL_SONAME, RTLD_LAZY | RTLD_NODELETE);
    if (!h)
        return err_set(err, AZID_ERR_SYSTEM,
                       "cannot load libcurl (%s); install its package (libcurl4 on Debian)",
                       dlerror());
    /* Resolves lib.f by name; missing names the first that is not there. */
    const char *missing = NULL;
#define LOAD(f, name) \
    if (!missing && !(lib.f = (__typeof__(lib.f))dlsym(h, name))) \
        missing = name;
#define CURL_LOAD(f) LOAD(f, "curl_" #f)
    CURL_FUNCTIONS(CURL_LOAD)
#undef CURL_LOAD
    if (missing)
        return err_set(err, AZID_ERR_SYSTEM, "%s has no %s: libazid needs libcurl 7.84 or later",
                       LIBCURL_SONAME, missing);
    const curl_version_info_data *v = lib.version_info(CURLVERSION_NOW);
    curl_openssl = v && v->ssl_version && strncmp(v->ssl_version, "OpenSSL/", 8) == 0;
    if (!curl_openssl)
        return AZID_OK;
    /* Without them its connections would get neither the key log off nor
     * the cleansing, and a root process would leave OPENSSL_CONF to OpenSSL. */
#define OPENSSL_LOAD(f) LOAD(f, #f)
    OPENSSL_FUNCTIONS(OPENSSL_LOAD)
#undef OPENSSL_LOAD
#undef LOAD
    if (missing)
        return err_set(err, AZID_ERR_SYSTEM,
                       "%s uses OpenSSL, but OpenSSL's %s was not found among its libraries",
                       LIBCURL_SONAME, missing);
    return AZID_OK;
}

/* Never paired with curl_global_cleanup: the library may live in sshd or
 * login next to other curl users, and cleanup is not thread-safe.
 * libcurl's initialisation opens $SSLKEYLOGFILE for appending, read with
 * getenv: a caller would have root create a file of their choosing and
 * receive TLS session keys.  A root or set-id process whose environment
 * sets it gets no libcurl at all; one whose libcurl someone else initialised
 * has the key log turned off per connection (on_ssl_ctx). */
static azid_status curl_init(azid_error *err)
{
    int untrusted = environment_untrusted();
    if (untrusted && getenv("SSLKEYLOGFILE"))
        return err_set(err, AZID_ERR_SYSTEM,
                       getauxval(AT_SECURE)
                           ? "refusing to use libcurl in a set-user-id program whose caller set "
                             "SSLKEYLOGFILE; unset it"
                           : "refusing to use libcurl as root while SSLKEYLOGFILE is set (libcurl "
                             "would create that file and write TLS session keys into it); unset it");
    azid_status st = load_libcurl(err);
    if (st != AZID_OK)
        return st;
    no_tls_fixed = 1;
    /* OpenSSL keeps its first choice for each: libcurl's initialisation
     * then asks for the configuration in vain, and the first error state
     * loads no strings (bench/README.md measures what that saves).  Not
     * reading a configuration is also what keeps a root process's
     * OPENSSL_CONF out here; if the call fails, the system file goes
     * first as usual. */
    int lean = no_tls && curl_openssl &&
               lib.OPENSSL_init_ssl(OPENSSL_INIT_NO_LOAD_CONFIG |
                                        OPENSSL_INIT_NO_LOAD_CRYPTO_STRINGS | OPENSSL_INIT_NO_ATEXIT,
                                    NULL);
    if (!lean && untrusted && curl_openssl)
        openssl_load_system_config();
    /* Ignored by libcurl when it was initialised before, as the other
     * allocator functions then are. */
    CURLcode rc;
    if (wipe_alloc_pin()) {
        rc = lib.global_init_mem(CURL_GLOBAL_DEFAULT, malloc, wipe_alloc_free, wipe_alloc_realloc,
                                 strdup, calloc);
        wipe_alloc_install_jansson();
    } else {
        rc = lib.global_init(CURL_GLOBAL_DEFAULT);
    }
    if (rc != CURLE_OK)
        return err_set(err, AZID_ERR_SYSTEM, "libcurl initialisation failed: %s",
                       lib.easy_strerror(rc));
    curl_ready = 1;
    return AZID_OK;
}

/* Refuses an https request of a program without TLS before libcurl is
 * loaded for it. */
static azid_status curl_prepare(const char *url, azid_error *err)
{
    pthread_mutex_lock(&curl_lock);
    azid_status st;
    if (no_tls && strncasecmp(url, "https:", 6) == 0)
        st = err_set(err, AZID_ERR_ARGUMENT,
                     "no https request in this program: it set libazid up without TLS "
                     "(azid_global_init with AZID_GLOBAL_NO_TLS); leave that flag out to reach "
                     "https endpoints");
    else
        st = curl_ready ? AZID_OK : curl_init(err);
    pthread_mutex_unlock(&curl_lock);
    return st;
}

/* Called by libcurl with each new SSL_CTX, after its own settings: no key
 * log (libcurl sets one whenever its process-wide SSLKEYLOGFILE is open),
 * and OpenSSL wipes the plaintext of records (a token, a secret, a bearer
 * header) from its buffers once they are used. */
static CURLcode on_ssl_ctx(CURL *curl, void *ssl_ctx, void *userdata)
{
    (void)curl;
    (void)userdata;
    lib.SSL_CTX_set_keylog_callback(ssl_ctx, NULL);
    lib.SSL_CTX_set_options(ssl_ctx, SSL_OP_CLEANSE_PLAINTEXT);
    return CURLE_OK;
}

/* Whether the URL's host is an IPv4 or [IPv6] literal, which libcurl
 * converts without a resolver thread (IMDS, loopback endpoints). */
static int host_is_ip_literal(const char *url)
{
    const char *p = strstr(url, "://");
    char host[64];
    unsigned char addr[16];
    if (!p)
        return 0;
    p += 3;
    int v6 = *p == '[';
    size_t n = v6 ? strcspn(++p, "]") : strcspn(p, ":/?#");
    if (n >= sizeof host)
        return 0;
    memcpy(host, p, n);
    host[n] = '\0';
    return inet_pton(v6 ? AF_INET6 : AF_INET, host, addr) == 1;
}

struct transfer {
    struct http_response *resp;
    size_t cap;       /* allocated size of resp->body */
    size_t max_body;
    int too_large;
    int nomem;
};

/* Grows the body buffer by copying, so no stale copy of a token is left
 * behind by realloc. */
static int body_reserve(struct transfer *t, size_t need)
{
    return array_grow(&t->resp->body, &t->cap, need, 1, 1);
}

static size_t on_body(char *data, size_t size, size_t nmemb, void *userdata)
{
    struct transfer *t = userdata;
    size_t n = size * nmemb;
    if (t->resp->length + n > t->max_body) {
        t->too_large = 1;
        return 0; /* aborts the transfer */
    }
    if (body_reserve(t, t->resp->length + n + 1) != 0) {
        t->nomem = 1;
        return 0;
    }
    memcpy(t->resp->body + t->resp->length, data, n);
    /* data is libcurl's receive buffer: the token's first copy. */
    explicit_bzero(data, n);
    t->resp->length += n;
    t->resp->body[t->resp->length] = '\0';
    return n;
}

/* Copies the value of header `name` out of a raw header line, trimmed. */
static char *header_value(const char *line, size_t len, const char *name)
{
    size_t nlen = strlen(name);
    if (len <= nlen || strncasecmp(line, name, nlen) != 0 || line[nlen] != ':')
        return NULL;
    const char *v = line + nlen + 1, *end = line + len;
    while (v < end && (*v == ' ' || *v == '\t'))
        v++;
    while (end > v && (end[-1] == '\r' || end[-1] == '\n' || end[-1] == ' ' || end[-1] == '\t'))
        end--;
    return strndup(v, (size_t)(end - v));
}

static size_t on_header(char *line, size_t size, size_t nmemb, void *userdata)
{
    struct transfer *t = userdata;
    struct http_response *r = t->resp;
    size_t n = size * nmemb;
    char *v;
    if (n >= 5 && strncmp(line, "HTTP/", 5) == 0) {
        /* A new response (after 100 Continue): forget the previous headers. */
        r->retry_after_ms = -1;
        free(r->www_authenticate);
        r->www_authenticate = NULL;
    } else if ((v = header_value(line, n, "Retry-After"))) {
        r->retry_after_ms = http_parse_retry_after(v, (long long)time(NULL));
        free(v);
    } else if (!r->www_authenticate && (v = header_value(line, n, "WWW-Authenticate"))) {
        r->www_authenticate = v;
    }
    return n;
}

long http_parse_retry_after(const char *value, long long now_epoch)
{
    if (!value)
        return -1;
    char *end;
    if (*value >= '0' && *value <= '9') {
        unsigned long long s = strtoull(value, &end, 10);
        if (*end != '\0')
            return -1;
        /* Clamp far-future values; the budget clips them anyway. */
        return s > 86400 ? 86400L * 1000 : (long)s * 1000;
    }
    struct tm tm;
    memset(&tm, 0, sizeof tm);
    end = strptime(value, "%a, %d %b %Y %H:%M:%S GMT", &tm);
    if (!end || *end != '\0')
        return -1;
    long long at = (long long)timegm(&tm);
    if (now_epoch < 0 || now_epoch > AZID_EPOCH_MAX)
        return -1;
    if (at <= now_epoch)
        return 0;
    return at - now_epoch > 86400 ? 86400L * 1000 : (long)(at - now_epoch) * 1000;
}

char *http_escape(const char *s)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t n = strlen(s);
    char *out = malloc(3 * n + 1), *o = out;
    if (!out)
        return NULL;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if ((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') ||
            *p == '-' || *p == '.' || *p == '_' || *p == '~') {
            *o++ = (char)*p;
        } else {
            *o++ = '%';
            *o++ = hex[*p >> 4];
            *o++ = hex[*p & 15];
        }
    }
    *o = '\0';
    return out;
}

void http_response_clear(struct http_response *resp)
{
    if (!resp)
        return;
    if (resp->body)
        wipe_free(resp->body, resp->length);
    free(resp->www_authenticate);
    resp->body = NULL;
    resp->length = 0;
    resp->www_authenticate = NULL;
    resp->status = 0;
    resp->peer_ip[0] = '\0';
    resp->peer_port = 0;
    resp->retry_after_ms = -1;
}

static azid_status setup(CURL *curl, const struct http_request *req, struct transfer *t,
                         struct curl_slist **headers, char *errbuf)
{
    CURLcode rc = CURLE_OK;
#define SET(opt, val) \
    do { \
        if (rc == CURLE_OK) \
            rc = lib.easy_setopt(curl, opt, val); \
    } while (0)
    SET(CURLOPT_URL, req->url);
    SET(CURLOPT_ERRORBUFFER, errbuf);
    SET(CURLOPT_NOSIGNAL, 1L);
    SET(CURLOPT_NOPROXY, "*");
    SET(CURLOPT_FOLLOWLOCATION, 0L);
#if LIBCURL_VERSION_NUM >= 0x075700
    /* Without it, cleaning up a handle cut off while resolving waits for
     * getaddrinfo (resolv.conf's timeouts: 10 s and more) far past the
     * budget; with it the resolver thread is left to finish on its own. */
    if (!host_is_ip_literal(req->url))
        SET(CURLOPT_QUICK_EXIT, 1L);
#endif
#if LIBCURL_VERSION_NUM >= 0x075500
    SET(CURLOPT_PROTOCOLS_STR, "http,https");
#else
    SET(CURLOPT_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
#endif
    SET(CURLOPT_CONNECTTIMEOUT_MS, req->connect_timeout_ms);
    SET(CURLOPT_TIMEOUT_MS, req->timeout_ms);
    SET(CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)req->max_body);
    SET(CURLOPT_USERAGENT, "azid/" PACKAGE_VERSION);
    SET(CURLOPT_WRITEFUNCTION, on_body);
    SET(CURLOPT_WRITEDATA, t);
    SET(CURLOPT_HEADERFUNCTION, on_header);
    SET(CURLOPT_HEADERDATA, t);
    if (curl_openssl && strncmp(req->url, "https:", 6) == 0) {
        SET(CURLOPT_SSL_CTX_FUNCTION, on_ssl_ctx);
        /* Trust is named here, never left to a default that an environment
         * variable (SSL_CERT_FILE, SSL_CERT_DIR) could move: the system
         * bundle and directory libcurl was built with, or ca_file=. */
        char *ca_info = NULL, *ca_path = NULL;
        lib.easy_getinfo(curl, CURLINFO_CAINFO, &ca_info);
        lib.easy_getinfo(curl, CURLINFO_CAPATH, &ca_path);
        SET(CURLOPT_CAINFO, req->ca_file ? req->ca_file : ca_info);
        SET(CURLOPT_CAPATH, ca_path);
    } else if (req->ca_file) {
        SET(CURLOPT_CAINFO, req->ca_file);
    }
    if (req->method == HTTP_POST) {
        SET(CURLOPT_POSTFIELDS, req->body ? req->body : "");
        /* The "Expect:" header (added below) avoids a 100-continue wait. */
    }
#undef SET
    if (rc != CURLE_OK)
        return AZID_ERR_SYSTEM;
    struct curl_slist *list = NULL;
    const char *fixed[] = {"Accept: application/json", "Expect:"};
    for (size_t i = 0; i < sizeof fixed / sizeof fixed[0]; i++) {
        struct curl_slist *next = lib.slist_append(list, fixed[i]);
        if (!next)
            goto nomem;
        list = next;
    }
    for (const char *const *h = req->headers; h && *h; h++) {
        struct curl_slist *next = lib.slist_append(list, *h);
        if (!next)
            goto nomem;
        list = next;
    }
    *headers = list;
    return lib.easy_setopt(curl, CURLOPT_HTTPHEADER, list) == CURLE_OK ? AZID_OK : AZID_ERR_SYSTEM;
nomem:
    lib.slist_free_all(list);
    return AZID_ERR_NOMEM;
}

/* curl_slist copies header strings; the Authorization value (Arc key,
 * Bearer token) must not linger in freed memory. */
static void headers_wipe_free(struct curl_slist *list)
{
    for (struct curl_slist *h = list; h; h = h->next)
        explicit_bzero(h->data, strlen(h->data));
    lib.slist_free_all(list);
}

azid_status http_perform(const struct http_request *req, struct http_response *resp,
                         azid_error *err)
{
    memset(resp, 0, sizeof *resp);
    resp->retry_after_ms = -1;
    azid_status prepared = curl_prepare(req->url, err);
    if (prepared != AZID_OK)
        return prepared;
    CURL *curl = lib.easy_init();
    if (!curl)
        return err_nomem(err, "creating an HTTP handle");

    char errbuf[CURL_ERROR_SIZE] = "";
    struct transfer t = {.resp = resp, .max_body = req->max_body};
    struct curl_slist *headers = NULL;
    azid_status st = setup(curl, req, &t, &headers, errbuf);
    if (st != AZID_OK) {
        lib.easy_cleanup(curl);
        return err_set(err, st, "cannot set up the HTTP request (libcurl option refused)");
    }

    CURLcode rc = lib.easy_perform(curl);
    curl_off_t connect_us = 0;
    lib.easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &resp->status);
    lib.easy_getinfo(curl, CURLINFO_CONNECT_TIME_T, &connect_us);
    char *peer_ip = NULL;
    if (lib.easy_getinfo(curl, CURLINFO_PRIMARY_IP, &peer_ip) == CURLE_OK && peer_ip)
        snprintf(resp->peer_ip, sizeof resp->peer_ip, "%s", peer_ip);
    lib.easy_getinfo(curl, CURLINFO_PRIMARY_PORT, &resp->peer_port);
    lib.easy_cleanup(curl);
    headers_wipe_free(headers);

    const char *why = errbuf[0] ? errbuf : lib.easy_strerror(rc);
    if (t.too_large || rc == CURLE_FILESIZE_EXCEEDED) {
        st = err_set(err, AZID_ERR_RESPONSE, "response larger than %zu bytes", req->max_body);
    } else if (t.nomem) {
        st = err_nomem(err, "reading the response");
    } else if (rc == CURLE_PEER_FAILED_VERIFICATION || rc == CURLE_SSL_CACERT_BADFILE) {
        /* Not transient: retrying cannot make the certificate trusted. */
        if (req->ca_file)
            st = err_set(err, AZID_ERR_TLS, "%s (trusted: the system CA store and %s)", why,
                         req->ca_file);
        else
            st = err_set(err, AZID_ERR_TLS, "%s (trusted: the system CA store; add the "
                         "issuer's CA with ca_file=)", why);
    } else if (rc == CURLE_OPERATION_TIMEDOUT && connect_us == 0) {
        st = err_set(err, AZID_ERR_TIMEOUT, "could not connect within %.1f s",
                     (double)req->connect_timeout_ms / 1000);
    } else if (rc == CURLE_OPERATION_TIMEDOUT) {
        st = err_set(err, AZID_ERR_TIMEOUT, "attempt cut off after %.1f s%s",
                     (double)req->timeout_ms / 1000,
                     resp->status ? " in the middle of the response" : " waiting for an answer");
    } else if (rc != CURLE_OK) {
        st = err_set(err, AZID_ERR_UNREACHABLE, "%s", why);
    } else {
        st = AZID_OK;
        if (!resp->body && body_reserve(&t, 1) != 0)
            return err_nomem(err, "reading the response");
        resp->body[resp->length] = '\0';
    }
    return st;
}
