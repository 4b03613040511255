#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "internal.h"
#include "util.h"

#define SEC USEC_PER_SEC

static void test_first_poll_spread(void **state)
{
        (void) state;
        /* One item goes at once; four share a minute evenly. */
        assert_int_equal(schedule_first_poll(1000, 60 * SEC, 0, 1), 1000);
        for (size_t i = 0; i < 4; i++)
                assert_int_equal(schedule_first_poll(1000, 60 * SEC, i, 4), 1000 + 15 * SEC * i);
}

static void test_first_poll_spread_many(void **state)
{
        const uint64_t start = 5 * SEC, interval = 300 * SEC;
        uint64_t prev = 0;

        (void) state;
        /* A thousand items: the first at once, all within one interval, never going back,
         * and never more than one interval/n apart. */
        for (size_t i = 0; i < 1000; i++) {
                uint64_t t = schedule_first_poll(start, interval, i, 1000);
                assert_true(t >= start && t < start + interval);
                if (i == 0)
                        assert_int_equal(t, start);
                else
                        assert_true(t >= prev && t - prev <= interval / 1000 + 1);
                prev = t;
        }
}

static void test_first_poll_spread_long_interval(void **state)
{
        (void) state;
        /* A day's interval times many items does not overflow. */
        assert_int_equal(schedule_first_poll(0, 86400 * SEC, 9999, 10000),
                         86400 * SEC / 10000 * 9999);
}

/* n idle items with the given next polls (0 marks an item still polling). */
static struct item **items_new(const uint64_t *next, size_t n)
{
        struct item **items = test_calloc(n, sizeof(*items));

        for (size_t i = 0; i < n; i++) {
                items[i] = test_calloc(1, sizeof(**items));
                items[i]->polled = next[i] != 0;
                items[i]->next_poll_usec = next[i];
        }
        return items;
}

static void items_done(struct item **items, size_t n)
{
        for (size_t i = 0; i < n; i++)
                test_free(items[i]);
        test_free(items);
}

static void test_due_scan(void **state)
{
        /* At now = 100: items 1 and 3 are due, 2 is still polling (its old time long past),
         * 0 and 4 come later. */
        const uint64_t next[] = {150, 100, 0, 20, 120};
        const size_t n = ELEMENTSOF(next);
        struct item **items = items_new(next, n);
        uint64_t deadline = 1000;
        size_t i;

        (void) state;
        items[2]->next_poll_usec = 10;
        i = schedule_next_due(items, n, 0, 100, &deadline);
        assert_int_equal(i, 1); /* due at exactly now */
        assert_int_equal(deadline, 150);
        i = schedule_next_due(items, n, i + 1, 100, &deadline);
        assert_int_equal(i, 3); /* item 2 is polling: skipped, its time ignored */
        assert_int_equal(deadline, 150);
        i = schedule_next_due(items, n, i + 1, 100, &deadline);
        assert_int_equal(i, n);
        assert_int_equal(deadline, 120); /* the nearest poll not due yet */
        items_done(items, n);
}

static void test_due_scan_none_due(void **state)
{
        const uint64_t next[] = {500, 300, 400};
        struct item **items = items_new(next, 3);
        uint64_t deadline = 1000;

        (void) state;
        assert_int_equal(schedule_next_due(items, 3, 0, 299, &deadline), 3);
        assert_int_equal(deadline, 300);
        /* A deadline nearer than every poll stays. */
        deadline = 250;
        assert_int_equal(schedule_next_due(items, 3, 0, 299, &deadline), 3);
        assert_int_equal(deadline, 250);
        /* Time moves on: the same items are due without anything else changing. */
        assert_int_equal(schedule_next_due(items, 3, 0, 450, &deadline), 1);
        assert_int_equal(schedule_next_due(items, 3, 2, 450, &deadline), 2);
        items_done(items, 3);
}

static void test_due_scan_empty(void **state)
{
        uint64_t deadline = 7;

        (void) state;
        assert_int_equal(schedule_next_due(NULL, 0, 0, 100, &deadline), 0);
        assert_int_equal(deadline, 7);
}

/* Quiet items: the interval doubles with each quiet poll and stops at the ceiling. */
static void test_backoff_doubles_to_the_ceiling(void **state)
{
        (void) state;
        assert_int_equal(schedule_interval(60 * SEC, 600 * SEC, 0), 60 * SEC);
        assert_int_equal(schedule_interval(60 * SEC, 600 * SEC, 1), 120 * SEC);
        assert_int_equal(schedule_interval(60 * SEC, 600 * SEC, 2), 240 * SEC);
        assert_int_equal(schedule_interval(60 * SEC, 600 * SEC, 3), 480 * SEC);
        assert_int_equal(schedule_interval(60 * SEC, 600 * SEC, 4), 600 * SEC);
        assert_int_equal(schedule_interval(60 * SEC, 600 * SEC, 32), 600 * SEC);
        assert_int_equal(schedule_interval(60 * SEC, 600 * SEC, UINT32_MAX), 600 * SEC);
        /* No back-off when the ceiling is the interval. */
        assert_int_equal(schedule_interval(60 * SEC, 60 * SEC, 5), 60 * SEC);
        /* Never above the ceiling, even at the largest settings. */
        assert_int_equal(schedule_interval(86399 * SEC, 86400 * SEC, 3), 86400 * SEC);
        for (unsigned q = 0; q < 70; q++)
                assert_true(schedule_interval(1 * SEC, 86400 * SEC, q) <= 86400 * SEC);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_first_poll_spread),
                cmocka_unit_test(test_first_poll_spread_many),
                cmocka_unit_test(test_first_poll_spread_long_interval),
                cmocka_unit_test(test_due_scan),
                cmocka_unit_test(test_due_scan_none_due),
                cmocka_unit_test(test_due_scan_empty),
                cmocka_unit_test(test_backoff_doubles_to_the_ceiling),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
