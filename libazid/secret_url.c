/* SPDX-License-Identifier: MIT
 * The Key Vault URL grammar.  The DNS suffixes are written here only. */
#include "config.h"

#include "secret_url.h"

#include "internal.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

/* The public cloud and the sovereign clouds' vaults and managed HSMs. */
#define KEYVAULT_SUFFIXES(X)                                                                  \
    X("vault.azure.net") X("vault.azure.cn") X("vault.usgovcloudapi.net")                     \
    X("vault.microsoftazure.de") X("managedhsm.azure.net")
#define AS_ITEM(s) s,
#define AS_TEXT(s) s ", "
static const char *const keyvault_suffixes[] = {KEYVAULT_SUFFIXES(AS_ITEM) NULL};
static const char bad_host[] = "the host must be <vault>.<suffix>, <suffix> one of "
                               KEYVAULT_SUFFIXES(AS_TEXT) "with no port";

static int is_alnum(int c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

int keyvault_host_valid(const char *host, size_t len)
{
    if (!len || len >= sizeof ((secret_url *)0)->vault_host)
        return 0;
    for (size_t i = 0; i < len; i++)
        if (!is_alnum(host[i]) && host[i] != '-' && host[i] != '.')
            return 0;
    const char *dot = memchr(host, '.', len);
    if (!dot || dot == host)
        return 0;
    size_t suffix_len = len - (size_t)(dot + 1 - host);
    for (int i = 0; keyvault_suffixes[i]; i++)
        if (strlen(keyvault_suffixes[i]) == suffix_len &&
            !strncasecmp(dot + 1, keyvault_suffixes[i], suffix_len))
            return 1;
    return 0;
}

const char *secret_url_problem(const char *url, secret_url *out)
{
    memset(out, 0, sizeof *out);
    if (strncasecmp(url, "https://", 8))
        return "it must start with https://";

    const char *host = url + 8;
    size_t host_len = strcspn(host, "/");
    if (!keyvault_host_valid(host, host_len))
        return bad_host;

    const char *p = host + host_len;
    if (strncmp(p, "/secrets/", 9))
        return "the path must be /secrets/<name>[/<version>]";
    p += 9;
    size_t n = 0;
    while (is_alnum(p[n]) || p[n] == '-')
        n++;
    if (!n || n >= sizeof out->name)
        return "the secret name must be 1 to 127 letters, digits or hyphens";
    memcpy(out->name, p, n);
    p += n;
    if (*p == '/') {
        p++;
        for (n = 0; is_alnum(p[n]); n++)
            ;
        if (!n || n >= sizeof out->version)
            return "the version must be 1 to 64 letters and digits";
        memcpy(out->version, p, n);
        p += n;
    }
    if (*p)
        return "nothing may follow /secrets/<name>[/<version>] (no query, no trailing slash)";

    for (size_t i = 0; i < host_len; i++) {
        char c = host[i];
        out->vault_host[i] = (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
    }
    return NULL;
}

azid_status azid_secret_url_parse(const char *url, azid_secret_url *out, azid_error *err)
{
    const char *why = secret_url_problem(url ? url : "", out);
    if (!why)
        return AZID_OK;
    memset(out, 0, sizeof *out);
    return err_set(err, AZID_ERR_ARGUMENT,
                   "'%.200s' is not a Key Vault secret URL: %s; expected " SECRET_URL_FORM,
                   url ? url : "", why);
}
