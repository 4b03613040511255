#include <errno.h>
#include <fcntl.h>
#include <pty.h>
#include <setjmp.h>
#include <stdbool.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "log.h"

/*
 * Each test points stderr at something else (a file, a pseudo-terminal), logs, and reads
 * back what arrived; setup keeps the real stderr and teardown puts it back.
 */
struct fixture {
        int saved_stderr;
        char path[64];
        int fd;
};

static int setup(void **state)
{
        struct fixture *f = calloc(1, sizeof(*f));

        assert_non_null(f);
        f->saved_stderr = dup(STDERR_FILENO);
        assert_true(f->saved_stderr >= 0);
        (void) snprintf(f->path, sizeof(f->path), "/tmp/cja-test-log-XXXXXX");
        f->fd = mkstemp(f->path);
        assert_true(f->fd >= 0);
        unsetenv("JOURNAL_STREAM");
        *state = f;
        return 0;
}

static int teardown(void **state)
{
        struct fixture *f = *state;

        (void) fflush(stderr);
        (void) dup2(f->saved_stderr, STDERR_FILENO);
        (void) close(f->saved_stderr);
        (void) close(f->fd);
        (void) unlink(f->path);
        unsetenv("JOURNAL_STREAM");
        log_open();
        free(f);
        return 0;
}

static void stderr_to_file(struct fixture *f)
{
        (void) fflush(stderr);
        assert_true(dup2(f->fd, STDERR_FILENO) >= 0);
}

static void read_file(struct fixture *f, char *buf, size_t size)
{
        ssize_t n;

        (void) fflush(stderr);
        n = pread(f->fd, buf, size - 1, 0);
        assert_true(n >= 0);
        buf[n] = '\0';
}

static void test_log_file_gets_priority_prefixes(void **state)
{
        struct fixture *f = *state;
        char buf[512];

        stderr_to_file(f);
        log_open();
        assert_int_equal(log_get_target(), LOG_TARGET_PREFIX);
        log_printf(LOG_WARNING, "disk is low; will retry in %d s", 8);
        log_context_printf(LOG_INFO, &(struct log_context){.content_guid = "g", .job_key = "k"},
                           "archived");
        log_printf(LOG_DEBUG, "not shown without -v");
        read_file(f, buf, sizeof(buf));
        assert_string_equal(buf, "<4>disk is low; will retry in 8 s\n<6>archived\n");
}

/* A $JOURNAL_STREAM that names another file (a service whose stderr was redirected) is not
 * the journal. */
static void test_log_journal_stream_must_match_stderr(void **state)
{
        struct fixture *f = *state;
        struct stat st;
        char env[64], buf[256];

        stderr_to_file(f);
        assert_int_equal(stat("/", &st), 0);
        (void) snprintf(env, sizeof(env), "%llu:%llu", (unsigned long long) st.st_dev,
                        (unsigned long long) st.st_ino);
        setenv("JOURNAL_STREAM", env, 1);
        log_open();
        assert_int_equal(log_get_target(), LOG_TARGET_PREFIX);
        setenv("JOURNAL_STREAM", "garbage", 1);
        log_open();
        assert_int_equal(log_get_target(), LOG_TARGET_PREFIX);
        log_printf(LOG_ERR, "x");
        read_file(f, buf, sizeof(buf));
        assert_string_equal(buf, "<3>x\n");
}

/*
 * stderr's own device and inode in $JOURNAL_STREAM: a line with fields is a journal entry,
 * nothing on stderr (the real-systemd test reads the fields back from the journal); a line
 * without takes the stream with its prefix. Where journald's socket is missing (a build
 * machine without systemd as PID 1), sd_journal_sendv() would drop entries silently, so
 * every line goes to stderr with its prefix.
 */
static void test_log_journal_when_stream_matches(void **state)
{
        struct fixture *f = *state;
        struct stat st;
        char env[64], buf[256];
        bool journald;

        stderr_to_file(f);
        assert_int_equal(fstat(STDERR_FILENO, &st), 0);
        (void) snprintf(env, sizeof(env), "%llu:%llu", (unsigned long long) st.st_dev,
                        (unsigned long long) st.st_ino);
        setenv("JOURNAL_STREAM", env, 1);
        log_open();
        journald = access("/run/systemd/journal/socket", W_OK) == 0;
        assert_int_equal(log_get_target(), journald ? LOG_TARGET_JOURNAL : LOG_TARGET_PREFIX);
        log_context_printf(LOG_NOTICE, &(struct log_context){.content_guid = "g"},
                           "cja unit test line %d", 1);
        log_printf(LOG_ERR, "config.yaml:7:5: bad");
        read_file(f, buf, sizeof(buf));
        assert_string_equal(buf, journald ? "<3>config.yaml:7:5: bad\n"
                                          : "<5>cja unit test line 1\n<3>config.yaml:7:5: bad\n");
}

static void test_log_terminal_gets_words(void **state)
{
        struct fixture *f = *state;
        int master, slave;
        char buf[512];
        size_t len = 0;
        const char *want = "error: cannot open: No such file or directory\r\n"
                           "warning: slow\r\n"
                           "started\r\n";

        (void) f;
        assert_int_equal(openpty(&master, &slave, NULL, NULL, NULL), 0);
        (void) fflush(stderr);
        assert_true(dup2(slave, STDERR_FILENO) >= 0);
        log_open();
        assert_int_equal(log_get_target(), LOG_TARGET_TERMINAL);
        assert_int_equal(log_errno(LOG_ERR, -ENOENT, "cannot open: %m"), -ENOENT);
        log_printf(LOG_WARNING, "slow");
        log_printf(LOG_NOTICE, "started");
        (void) fflush(stderr);
        while (len < strlen(want)) {
                ssize_t n = read(master, buf + len, sizeof(buf) - 1 - len);

                assert_true(n > 0);
                len += (size_t) n;
        }
        buf[len] = '\0';
        assert_string_equal(buf, want);
        (void) close(slave);
        (void) close(master);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup_teardown(test_log_file_gets_priority_prefixes, setup,
                                                teardown),
                cmocka_unit_test_setup_teardown(test_log_journal_stream_must_match_stderr, setup,
                                                teardown),
                cmocka_unit_test_setup_teardown(test_log_journal_when_stream_matches, setup,
                                                teardown),
                cmocka_unit_test_setup_teardown(test_log_terminal_gets_words, setup, teardown),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
