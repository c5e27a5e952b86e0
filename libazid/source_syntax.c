/* SPDX-License-Identifier: MIT
 * What sources are called and what an endpoint URL may look like: pure
 * text checks shared by the option table (config.c) and the client, in a
 * file of their own so that programs that only parse configuration do not
 * link libcurl. */
#include "config.h"

#include "source.h"

#include <stdlib.h>
#include <string.h>

const char *const source_names[] = {
    [AZID_SOURCE_AUTO] = "auto",
    [AZID_SOURCE_IMDS] = "imds",
    [AZID_SOURCE_ARC] = "arc",
    [AZID_SOURCE_APPSERVICE] = "appservice",
    [AZID_SOURCE_CLOUDSHELL] = "cloudshell",
    [AZID_SOURCE_WORKLOAD] = "workload",
    [AZID_SOURCE_WORKLOAD + 1] = NULL,
};

const char *azid_source_name(azid_source source)
{
    return (unsigned)source <= AZID_SOURCE_WORKLOAD ? source_names[source] : "unknown";
}

azid_status azid_source_parse(const char *name, azid_source *out, azid_error *err)
{
    for (int i = 0; name && out && source_names[i]; i++)
        if (strcmp(name, source_names[i]) == 0) {
            *out = (azid_source)i;
            return AZID_OK;
        }
    return err_set(err, AZID_ERR_ARGUMENT,
                   "unknown source '%s': use auto, imds, arc, appservice, cloudshell or workload",
                   name ? name : "");
}

#define HOST_CHARS "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._"
#define IPV6_CHARS "0123456789abcdefABCDEF:."

/* A path of printable ASCII without spaces, query or fragment. */
static int plain_path(const char *p)
{
    return text_is_word(p) && !strpbrk(p, "?#");
}

azid_status source_check_url(const char *what, const char *url, int path_ok, azid_error *err)
{
    const char *p;
    if (!url)
        return err_set(err, AZID_ERR_ARGUMENT, "%s is missing", what);
    if (strncmp(url, "http://", 7) == 0)
        p = url + 7;
    else if (strncmp(url, "https://", 8) == 0)
        p = url + 8;
    else
        return err_set(err, AZID_ERR_ARGUMENT,
                       "%s '%s' must start with http:// or https://", what, url);
    if (strchr(url, '@'))
        return err_set(err, AZID_ERR_ARGUMENT, "%s '%s' must not contain user information",
                       what, url);
    const char *host = p;
    if (*p == '[') {
        p += 1 + strspn(p + 1, IPV6_CHARS);
        if (*p != ']' || p == host + 1)
            return err_set(err, AZID_ERR_ARGUMENT,
                           "%s '%s' has an unterminated or invalid [IPv6] host", what, url);
        p++;
    } else {
        p += strspn(p, HOST_CHARS);
        if (p == host && (*p == '\0' || strchr(":/?#", *p)))
            return err_set(err, AZID_ERR_ARGUMENT, "%s '%s' has no host", what, url);
    }
    if (*p && !strchr(":/?#", *p))
        return err_set(err, AZID_ERR_ARGUMENT,
                       "%s '%s' has a space, control or other character not allowed in a host "
                       "name", what, url);
    if (*p == ':') {
        size_t digits = strspn(p + 1, "0123456789");
        long port = digits && digits <= 5 ? strtol(p + 1, NULL, 10) : 0;
        p += 1 + digits;
        if (port < 1 || port > 65535 || (*p && !strchr("/?#", *p)))
            return err_set(err, AZID_ERR_ARGUMENT, "%s '%s' has an invalid port (1-65535)",
                           what, url);
    }
    if (*p == '\0' || (*p == '/' && (p[1] == '\0' || (path_ok && plain_path(p)))))
        return AZID_OK;
    return err_set(err, AZID_ERR_ARGUMENT,
                   "%s '%s' must be scheme://host[:port] with nothing after it (no path, query "
                   "or fragment)", what, url);
}

azid_status source_check_base_url(const char *url, azid_error *err)
{
    return source_check_url("endpoint", url, 0, err);
}
