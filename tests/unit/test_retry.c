/* SPDX-License-Identifier: MIT
 * The retry policy (libazid/retry.c) and Retry-After parsing: pure
 * decisions, no sockets, no clock. */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "http.h"
#include "retry.h"

static void test_retryable_statuses(void **state)
{
    (void)state;
    static const long retried[] = {0, 404, 410, 429, 500, 502, 503, 504, 599};
    static const long final[] = {200, 201, 301, 400, 401, 403, 405, 408, 409, 499, 600};
    for (size_t i = 0; i < sizeof retried / sizeof retried[0]; i++)
        assert_true(retry_status_retryable(retried[i]));
    for (size_t i = 0; i < sizeof final / sizeof final[0]; i++)
        assert_false(retry_status_retryable(final[i]));
}

static void test_backoff_doubles_then_caps(void **state)
{
    (void)state;
    assert_int_equal(retry_backoff_ms(1), 250);
    assert_int_equal(retry_backoff_ms(2), 500);
    assert_int_equal(retry_backoff_ms(3), 1000);
    assert_int_equal(retry_backoff_ms(4), 2000);
    assert_int_equal(retry_backoff_ms(5), 4000);
    assert_int_equal(retry_backoff_ms(6), 4000);
    assert_int_equal(retry_backoff_ms(1000), 4000);
}

static void test_attempt_timeout(void **state)
{
    (void)state;
    /* A third of the budget, at least a second, but at most half of it;
     * never beyond what remains. */
    assert_int_equal(retry_attempt_timeout_ms(5000, 5000), 1666);
    assert_int_equal(retry_attempt_timeout_ms(30000, 30000), 10000);
    assert_int_equal(retry_attempt_timeout_ms(2000, 2000), 1000);
    assert_int_equal(retry_attempt_timeout_ms(2000, 750), 750);
    assert_int_equal(retry_attempt_timeout_ms(1000, 1000), 500);
    assert_int_equal(retry_attempt_timeout_ms(1500, 1500), 750);
    assert_int_equal(retry_attempt_timeout_ms(500, 500), 250);
    assert_int_equal(retry_attempt_timeout_ms(5000, 0), 1);
    /* never the whole budget, however small */
    static const long budgets[] = {2, 100, 999, 1000, 1001, 1500, 2999, 5000};
    for (size_t i = 0; i < sizeof budgets / sizeof budgets[0]; i++)
        assert_true(retry_attempt_timeout_ms(budgets[i], budgets[i]) < budgets[i]);
}

static void test_final_outcomes_not_retried(void **state)
{
    (void)state;
    struct retry_decision d = retry_decide(1, 0, -1, 5000);
    assert_int_equal(d.verdict, RETRY_STOP_FINAL);
    d = retry_decide(1, retry_status_retryable(400), 5000, 5000);
    assert_int_equal(d.verdict, RETRY_STOP_FINAL);
}

static void test_retry_with_backoff(void **state)
{
    (void)state;
    struct retry_decision d = retry_decide(1, 1, -1, 5000);
    assert_int_equal(d.verdict, RETRY_AGAIN);
    assert_int_equal(d.delay_ms, 250);
    d = retry_decide(3, 1, -1, 5000);
    assert_int_equal(d.verdict, RETRY_AGAIN);
    assert_int_equal(d.delay_ms, 1000);
}

static void test_attempts_bounded(void **state)
{
    (void)state;
    struct retry_decision d = retry_decide(RETRY_MAX_ATTEMPTS, 1, -1, 3600000);
    assert_int_equal(d.verdict, RETRY_STOP_ATTEMPTS);
    d = retry_decide(RETRY_MAX_ATTEMPTS - 1, 1, -1, 3600000);
    assert_int_equal(d.verdict, RETRY_AGAIN);
}

static void test_stop_when_no_attempt_fits(void **state)
{
    (void)state;
    /* 1 s backoff with 1.05 s left leaves less than the minimum attempt. */
    struct retry_decision d = retry_decide(3, 1, -1, 1050);
    assert_int_equal(d.verdict, RETRY_STOP_BUDGET);
    d = retry_decide(3, 1, -1, 1000 + RETRY_MIN_USEFUL_MS);
    assert_int_equal(d.verdict, RETRY_AGAIN);
    d = retry_decide(1, 1, -1, 0);
    assert_int_equal(d.verdict, RETRY_STOP_BUDGET);
    d = retry_decide(1, 1, -1, -20);
    assert_int_equal(d.verdict, RETRY_STOP_BUDGET);
}

static void test_retry_after_honoured_and_clipped(void **state)
{
    (void)state;
    struct retry_decision d = retry_decide(1, 1, 2000, 5000);
    assert_int_equal(d.verdict, RETRY_AGAIN);
    assert_int_equal(d.delay_ms, 2000);
    /* a shorter Retry-After than the backoff does not shorten it */
    d = retry_decide(3, 1, 0, 5000);
    assert_int_equal(d.delay_ms, 1000);
    /* one that ends past the deadline stops at once */
    d = retry_decide(1, 1, 30000, 5000);
    assert_int_equal(d.verdict, RETRY_STOP_RETRY_AFTER);
    d = retry_decide(1, 1, 4950, 5000);
    assert_int_equal(d.verdict, RETRY_STOP_RETRY_AFTER);
}

static void test_retry_after_parsing(void **state)
{
    (void)state;
    long long now = 1700000000; /* Tue, 14 Nov 2023 22:13:20 GMT */
    assert_int_equal(http_parse_retry_after("0", now), 0);
    assert_int_equal(http_parse_retry_after("2", now), 2000);
    assert_int_equal(http_parse_retry_after("120", now), 120000);
    assert_int_equal(http_parse_retry_after("99999999999999999999", now), 86400000L);
    assert_int_equal(http_parse_retry_after("Tue, 14 Nov 2023 22:13:25 GMT", now), 5000);
    assert_int_equal(http_parse_retry_after("Tue, 14 Nov 2023 22:13:00 GMT", now), 0);
    assert_int_equal(http_parse_retry_after("", now), -1);
    assert_int_equal(http_parse_retry_after("-1", now), -1);
    assert_int_equal(http_parse_retry_after("2s", now), -1);
    assert_int_equal(http_parse_retry_after("soon", now), -1);
    assert_int_equal(http_parse_retry_after("Tue, 14 Nov 2023 22:13:25", now), -1);
    assert_int_equal(http_parse_retry_after(NULL, now), -1);
    /* beyond unsigned long long, and the furthest and earliest dates: clamped
     * or past, never overflowing (the ASan+UBSan stage runs this) */
    assert_int_equal(http_parse_retry_after("18446744073709551616", now), 86400000L);
    assert_int_equal(http_parse_retry_after("Fri, 31 Dec 9999 23:59:59 GMT", now), 86400000L);
    assert_int_equal(http_parse_retry_after("Mon, 01 Jan 0001 00:00:00 GMT", now), 0);
    /* a clock out of range makes a date meaningless */
    assert_int_equal(http_parse_retry_after("Fri, 31 Dec 9999 23:59:59 GMT", INT64_MIN), -1);
    assert_int_equal(http_parse_retry_after("Mon, 01 Jan 0001 00:00:00 GMT", INT64_MAX), -1);
}

/* The whole schedule a hanging endpoint gets under a 5 s budget: attempts
 * cut off at 1.666 s, backoff between them, nothing past the deadline. */
static void test_schedule_never_exceeds_budget(void **state)
{
    (void)state;
    static const long budgets[] = {100, 500, 1000, 2000, 5000, 12345, 60000};
    for (size_t b = 0; b < sizeof budgets / sizeof budgets[0]; b++) {
        long budget = budgets[b], elapsed = 0;
        int attempts = 0;
        for (;;) {
            long attempt = retry_attempt_timeout_ms(budget, budget - elapsed);
            elapsed += attempt; /* the attempt hangs until cut off */
            attempts++;
            assert_true(elapsed <= budget);
            struct retry_decision d = retry_decide(attempts, 1, -1, budget - elapsed);
            if (d.verdict != RETRY_AGAIN)
                break;
            elapsed += d.delay_ms;
            assert_true(elapsed < budget);
        }
        assert_true(attempts <= RETRY_MAX_ATTEMPTS);
        if (budget >= 1000)
            assert_true(attempts >= 2); /* a hang is cut off and retried */
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_retryable_statuses),
        cmocka_unit_test(test_backoff_doubles_then_caps),
        cmocka_unit_test(test_attempt_timeout),
        cmocka_unit_test(test_final_outcomes_not_retried),
        cmocka_unit_test(test_retry_with_backoff),
        cmocka_unit_test(test_attempts_bounded),
        cmocka_unit_test(test_stop_when_no_attempt_fits),
        cmocka_unit_test(test_retry_after_honoured_and_clipped),
        cmocka_unit_test(test_retry_after_parsing),
        cmocka_unit_test(test_schedule_never_exceeds_budget),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
