/* content.c: content items from real Connect lists, the tag tree, and the discover rules. */

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <json-c/json.h>

#include "config.h"
#include "connect.h"
#include "content.h"
#include "testutil.h"

#define ITEM_AL     "39c8d85a-37ae-4b8b-8655-30a06adff2f1" /* shiny, owner al, no tags */
#define ITEM_ROBERT "f2f37341-e21d-3d80-c698-a935ad614066" /* quarto, tags 7 (Prod), 34 */
#define ITEM_CARLOS "93a3cd6d-5a1b-236c-9808-6045f2a73fb5" /* python-streamlit, carlos12 */

struct items {
        struct content_item v[8];
        size_t n;
        size_t skipped;
};

static int collect(void *userdata, struct json_object *o)
{
        struct items *items = userdata;
        int r;

        assert_true(items->n < ELEMENTSOF(items->v));
        r = content_item_from_json(o, &items->v[items->n]);
        if (r == -EBADMSG) {
                items->skipped++;
                return 0;
        }
        assert_int_equal(r, 0);
        items->n++;
        return 0;
}

/* Streams body through connect_stream_new_objects() a few bytes at a time. */
static void stream_items(const char *body, size_t len, struct items *items)
{
        struct connect_stream *s;

        assert_int_equal(connect_stream_new_objects(collect, items, &s), 0);
        for (size_t off = 0; off < len; off += 7)
                assert_int_equal(connect_stream_feed(s, body + off, len - off < 7 ? len - off : 7),
                                 0);
        assert_int_equal(connect_stream_finish(s), 0);
        connect_stream_free(s);
}

static void items_done(struct items *items)
{
        for (size_t i = 0; i < items->n; i++)
                content_item_done(&items->v[i]);
}

static struct tag_tree *fixture_tags(void)
{
        size_t len;
        char *body = read_fixture("tags.posit-sdk-py.json", &len);
        struct tag_tree *t;

        assert_int_equal(tag_tree_parse(body, len, &t), 0);
        free(body);
        return t;
}

static void test_content_items_from_a_real_list(void **state)
{
        size_t len;
        char *body = read_fixture("content-list.connectapi-2024.08.0.json", &len);
        struct items items = {0};

        (void) state;
        stream_items(body, len, &items);
        free(body);
        assert_int_equal(items.n, 3);
        assert_string_equal(items.v[0].guid, ITEM_AL);
        assert_string_equal(items.v[0].name, "team-admin-dashboard");
        assert_string_equal(items.v[0].title, "Team admin dashboard");
        assert_string_equal(content_item_label(&items.v[0]), "Team admin dashboard");
        assert_string_equal(items.v[0].owner, "al");
        assert_string_equal(items.v[0].app_mode, "shiny");
        assert_string_equal(items.v[0].app_role, "viewer");
        assert_int_equal(items.v[0].n_tags, 0);
        assert_int_equal(items.v[1].n_tags, 2);
        assert_string_equal(items.v[1].tags[0], "7");
        assert_string_equal(items.v[1].tags[1], "34");
        /* A viewer cannot read jobs; an administrator can. */
        assert_false(content_item_readable(&items.v[0], false));
        assert_true(content_item_readable(&items.v[0], true));
        items_done(&items);
}

static void test_content_item_shapes(void **state)
{
        static const char body[] =
                "[{\"guid\": \"" ITEM_AL "\", \"name\": \"n\", \"title\": null, "
                "\"app_role\": \"editor\"},"
                " {\"guid\": \"not-a-guid\"}, 17, null, {\"name\": \"no guid\"},"
                " {\"guid\": \"" ITEM_CARLOS "\", \"title\": \"\", \"name\": \"\","
                " \"tags\": [{\"id\": \"5\"}, 3, {\"name\": \"no id\"}], \"owner\": null}]";
        struct items items = {0};

        (void) state;
        stream_items(body, sizeof(body) - 1, &items);
        assert_int_equal(items.n, 2);
        assert_int_equal(items.skipped, 4);
        assert_string_equal(content_item_label(&items.v[0]), "n");
        assert_true(content_item_readable(&items.v[0], false));
        assert_null(content_item_label(&items.v[1]));
        assert_null(items.v[1].owner);
        assert_int_equal(items.v[1].n_tags, 1);
        assert_false(content_item_readable(&items.v[1], false)); /* no app_role */
        items_done(&items);
}

static void test_content_tag_tree(void **state)
{
        struct tag_tree *t = fixture_tags(), *bad;

        (void) state;
        assert_string_equal(tag_tree_find(t, "Internal Solutions"), "3");
        assert_string_equal(tag_tree_find(t, "Internal Solutions/sol-eng/dashboard/calendar"),
                            "26");
        assert_string_equal(tag_tree_find(t, "Life Cycle/Prod"), "7");
        /* From the top only, names exact. */
        assert_null(tag_tree_find(t, "sol-eng"));
        assert_null(tag_tree_find(t, "Life Cycle/prod"));
        assert_null(tag_tree_find(t, "Life Cycle/Prod/x"));
        assert_null(tag_tree_find(NULL, "Life Cycle"));
        tag_tree_free(t);
        assert_int_equal(tag_tree_parse("{}", 2, &bad), -EBADMSG);
        assert_int_equal(tag_tree_parse("[1]", 3, &bad), -EBADMSG);
        assert_int_equal(tag_tree_parse("[{\"id\": \"1\"}]", 14, &bad), -EBADMSG);
        assert_int_equal(tag_tree_parse("[", 1, &bad), -EBADMSG);
}

static void test_content_user(void **state)
{
        bool admin = false;
#define USER(s) content_parse_user(s, strlen(s), &admin)

        (void) state;
        assert_int_equal(USER("{\"user_role\": \"administrator\"}"), 0);
        assert_true(admin);
        assert_int_equal(USER("{\"user_role\": \"publisher\"}"), 0);
        assert_false(admin);
        assert_int_equal(USER("[]"), -EBADMSG);
        assert_int_equal(USER("nope"), -EBADMSG);
#undef USER
}

/* Which rule selects each of the three fixture items, as an administrator's key. */
static void assert_matches(const char *discover, bool admin, size_t want_al, size_t want_robert,
                           size_t want_carlos)
{
        char *yaml = NULL;
        size_t len;
        char *body = read_fixture("content-list.connectapi-2024.08.0.json", &len);
        struct items items = {0};
        struct tag_tree *t = fixture_tags();
        struct content_rules *r;
        struct config *c;

        assert_true(asprintf(&yaml,
                             "server:\n  url: https://c.example\narchive:\n  directory: /a\n"
                             "discover:\n%s",
                             discover) > 0);
        c = parse_ok(yaml);
        stream_items(body, len, &items);
        assert_int_equal(content_rules_new(c, t, admin, &r), 0);
        assert_int_equal(content_rules_match(r, &items.v[0]), want_al);
        assert_int_equal(content_rules_match(r, &items.v[1]), want_robert);
        assert_int_equal(content_rules_match(r, &items.v[2]), want_carlos);
        content_rules_free(r);
        items_done(&items);
        tag_tree_free(t);
        config_free(c);
        free(body);
        free(yaml);
}

static void test_content_rules_each_kind(void **state)
{
        (void) state;
        assert_matches("  rules:\n    - all: true\n", true, 1, 1, 1);
        /* Owner by username, without regard to case. */
        assert_matches("  rules:\n    - owner: AL\n", true, 1, 0, 0);
        assert_matches("  rules:\n    - type: python-streamlit\n", true, 0, 0, 1);
        /* A tag holds for the tag and every tag below it. */
        assert_matches("  rules:\n    - tag: Life Cycle/Prod\n", true, 0, 1, 0);
        assert_matches("  rules:\n    - tag: Life Cycle\n", true, 0, 1, 0);
        assert_matches("  rules:\n    - tag: Internal Solutions\n", true, 0, 1, 0);
        assert_matches("  rules:\n    - tag: Life Cycle/Dev\n", true, 0, 0, 0);
        assert_matches("  rules:\n    - tag: No Such Tag\n", true, 0, 0, 0);
}

static void test_content_rules_combined(void **state)
{
        (void) state;
        /* Keys of a rule AND. */
        assert_matches("  rules:\n    - owner: robert\n      type: shiny\n", true, 0, 0, 0);
        assert_matches("  rules:\n    - owner: robert\n      tag: Life Cycle\n", true, 0, 1, 0);
        assert_matches("  rules:\n    - all: true\n      type: shiny\n", true, 1, 0, 0);
        /* Rules OR; the first that holds is the one named. */
        assert_matches("  rules:\n    - type: shiny\n    - owner: carlos12\n    - all: true\n",
                       true, 1, 3, 2);
        /* Exclude wins over every rule. */
        assert_matches("  exclude:\n    - " ITEM_ROBERT "\n  rules:\n    - all: true\n", true, 1, 0,
                       1);
        /* A publisher's key only reads what it owns or edits: these are all "viewer". */
        assert_matches("  rules:\n    - all: true\n", false, 0, 0, 0);
}

static void test_content_rules_unknown_tag(void **state)
{
        struct config *c = parse_ok("server:\n  url: https://c.example\narchive:\n  directory: "
                                    "/a\ndiscover:\n  rules:\n    - tag: Nope\n    - tag: Life "
                                    "Cycle\n    - all: true\n");
        struct tag_tree *t = fixture_tags();
        struct content_rules *r;

        (void) state;
        assert_int_equal(content_rules_new(c, t, true, &r), 0);
        assert_true(content_rules_unknown_tag(r, 0));
        assert_false(content_rules_unknown_tag(r, 1));
        assert_false(content_rules_unknown_tag(r, 2));
        assert_false(content_rules_unknown_tag(r, 3));
        content_rules_free(r);
        /* No tree at all (the tag list failed): every tag rule selects nothing. */
        assert_int_equal(content_rules_new(c, NULL, true, &r), 0);
        assert_true(content_rules_unknown_tag(r, 1));
        content_rules_free(r);
        tag_tree_free(t);
        config_free(c);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_content_items_from_a_real_list),
                cmocka_unit_test(test_content_item_shapes),
                cmocka_unit_test(test_content_tag_tree),
                cmocka_unit_test(test_content_user),
                cmocka_unit_test(test_content_rules_each_kind),
                cmocka_unit_test(test_content_rules_combined),
                cmocka_unit_test(test_content_rules_unknown_tag),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
