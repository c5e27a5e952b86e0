/* SPDX-License-Identifier: MIT
 * Retry policy after Microsoft's IMDS guidance (retry 404, 410, 429, 5xx and
 * timeouts with exponential backoff; never a 400), squeezed into the
 * caller's total time budget.  No jitter: one process makes one request at
 * a time, and deterministic delays keep the tests exact. */
#include "config.h"

#include "retry.h"

int retry_status_retryable(long http_status)
{
    return http_status == 0 || http_status == 404 || http_status == 410 ||
           http_status == 429 || (http_status >= 500 && http_status <= 599);
}

long retry_backoff_ms(int attempts_done)
{
    long delay = RETRY_BASE_DELAY_MS;
    for (int i = 1; i < attempts_done && delay < RETRY_MAX_DELAY_MS; i++)
        delay *= 2;
    return delay < RETRY_MAX_DELAY_MS ? delay : RETRY_MAX_DELAY_MS;
}

long retry_attempt_timeout_ms(long budget_ms, long remaining_ms)
{
    long cap = budget_ms / 3 > RETRY_MIN_ATTEMPT_MS ? budget_ms / 3 : RETRY_MIN_ATTEMPT_MS;
    if (cap > budget_ms / 2)
        cap = budget_ms / 2 > 0 ? budget_ms / 2 : 1; /* 0 would mean no limit to libcurl */
    if (remaining_ms < 1)
        return 1;
    return cap < remaining_ms ? cap : remaining_ms;
}

struct retry_decision retry_decide(int attempts_done, int retryable, long retry_after_ms,
                                   long remaining_ms)
{
    struct retry_decision d = {RETRY_STOP_FINAL, 0};
    if (!retryable)
        return d;
    if (attempts_done >= RETRY_MAX_ATTEMPTS) {
        d.verdict = RETRY_STOP_ATTEMPTS;
        return d;
    }
    long delay = retry_backoff_ms(attempts_done);
    if (retry_after_ms > delay) {
        if (remaining_ms - retry_after_ms < RETRY_MIN_USEFUL_MS) {
            d.verdict = RETRY_STOP_RETRY_AFTER;
            return d;
        }
        delay = retry_after_ms;
    }
    if (remaining_ms - delay < RETRY_MIN_USEFUL_MS) {
        d.verdict = RETRY_STOP_BUDGET;
        return d;
    }
    d.verdict = RETRY_AGAIN;
    d.delay_ms = delay;
    return d;
}
