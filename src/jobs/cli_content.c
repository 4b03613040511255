/*
 * connect-jobs content: the content the daemon watches, and why. It asks Connect exactly
 * what the daemon's refresh asks (GET /v1/user, /v1/tags when a rule names a tag, and
 * GET /v1/content?include=tags,owner, streamed) and applies the same rules (content.c), so
 * what it prints is what the daemon polls after its next refresh.
 */

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <json-c/json.h>

#include "cli.h"
#include "client.h"
#include "config.h"
#include "connect.h"
#include "content.h"
#include "log.h"
#include "macro.h"
#include "output.h"
#include "util.h"

/* One watched item as printed. */
struct watched {
        struct content_item item; /* guid always set; the rest when Connect listed it */
        const char *config_name;  /* the name content: gives it, or NULL */
        bool configured;
        bool listed; /* Connect's listing had it */
        size_t rule; /* 1-based, 0: none */
};

struct listing {
        const struct config *config;
        struct content_rules *rules; /* NULL without discover: */
        struct watched *v;
        size_t n, cap;
        size_t n_listed;
};

static struct watched *watched_find(struct listing *l, const char *guid)
{
        for (size_t i = 0; i < l->n; i++)
                if (strcasecmp(l->v[i].item.guid, guid) == 0)
                        return &l->v[i];
        return NULL;
}

static struct watched *watched_add(struct listing *l)
{
        if (l->n == l->cap) {
                size_t n = l->cap ? l->cap * 2 : 16;
                struct watched *v = reallocarray(l->v, n, sizeof(*v));
                if (!v)
                        return NULL;
                l->v = v;
                l->cap = n;
        }
        l->v[l->n] = (struct watched){0};
        return &l->v[l->n++];
}

static int on_item(void *userdata, struct json_object *o)
{
        struct listing *l = userdata;
        struct content_item ci;
        int r = content_item_from_json(o, &ci);

        if (r == -EBADMSG)
                return 0;
        if (r < 0)
                return r;
        l->n_listed++;
        struct watched *w = watched_find(l, ci.guid);
        size_t rule = l->rules ? content_rules_match(l->rules, &ci) : 0;
        if (!w && rule > 0)
                w = watched_add(l);
        if (!w) {
                content_item_done(&ci);
                return w || rule == 0 ? 0 : -ENOMEM;
        }
        content_item_done(&w->item);
        w->item = ci;
        w->listed = true;
        w->rule = rule;
        return 0;
}

static int sink_begin(void *userdata)
{
        struct connect_stream *s = userdata;

        connect_stream_reset(s);
        return 0;
}

static int sink_write(void *userdata, const void *data, size_t len)
{
        return connect_stream_feed(userdata, data, len);
}

static const struct http_sink list_sink = {.begin = sink_begin, .write = sink_write};

/* A collected GET of the content API; 0 or an exit status (said on stderr). */
static int get_body(struct cli *c, int (*make_url)(const char *, char **), const char *what,
                    struct client_reply *reply)
{
        _cleanup_free_ char *url = NULL;
        int r = make_url(client_server(c->client), &url);

        if (r < 0)
                return cli_call_failed(r, what);
        r = client_get(c->client, url, NULL, NULL, reply);
        if (r < 0)
                return cli_call_failed(r, what);
        return cli_check_reply(c, reply, what);
}

/* The key's role and the tag tree, for the rules. */
static int load_rules(struct cli *c, struct tag_tree **ret_tags, struct content_rules **ret)
{
        const struct config *cfg = c->config;
        struct client_reply reply = {0};
        bool admin = false, tags = false;
        int r;

        r = get_body(c, content_user_url, "GET /v1/user", &reply);
        if (r == 0 && content_parse_user(reply.body, reply.body_len, &admin) < 0) {
                cli_say("GET /v1/user: Connect's answer is not a user");
                r = CLI_EXIT_FAILURE;
        } else if (r == CLI_EXIT_NOT_FOUND || (r == CLI_EXIT_FAILURE && reply.status == 404)) {
                r = 0; /* no such endpoint: a publisher's view, as the daemon takes it */
        }
        client_reply_done(&reply);
        if (r != 0)
                return r;
        for (size_t i = 0; i < cfg->n_rules; i++)
                tags |= cfg->rules[i].tag != NULL;
        if (tags) {
                reply = (struct client_reply){0};
                r = get_body(c, content_tags_url, "GET /v1/tags", &reply);
                if (r == 0 && tag_tree_parse(reply.body, reply.body_len, ret_tags) < 0) {
                        cli_say("GET /v1/tags: Connect's answer is not a list of tags");
                        r = CLI_EXIT_FAILURE;
                }
                client_reply_done(&reply);
                if (r != 0)
                        return r;
        }
        if (content_rules_new(cfg, *ret_tags, admin, ret) < 0) {
                cli_say("out of memory");
                return CLI_EXIT_FAILURE;
        }
        for (size_t i = 0; i < cfg->n_rules; i++)
                if (content_rules_unknown_tag(*ret, i))
                        cli_say("warning: rule %zu (%s:%zu): Connect has no tag \"%s\"; the rule "
                                "selects nothing",
                                i + 1, cfg->path, cfg->rules[i].line, cfg->rules[i].tag);
        return 0;
}

static void print_field(FILE *f, const char *s, int width)
{
        size_t len = s ? strlen(s) : 1;

        output_sanitized(f, s ? s : "-", len);
        for (int i = (int) len; i < width; i++)
                fputc(' ', f);
}

static const char *watched_name(const struct watched *w)
{
        return w->config_name ? w->config_name : content_item_label(&w->item);
}

static void print_text(const struct listing *l)
{
        int wn = 4, wo = 5, wt = 4;

        for (size_t i = 0; i < l->n; i++) {
                const struct watched *w = &l->v[i];
                const char *name = watched_name(w);
                if (name && (int) strlen(name) > wn)
                        wn = (int) strlen(name);
                if (w->item.owner && (int) strlen(w->item.owner) > wo)
                        wo = (int) strlen(w->item.owner);
                if (w->item.app_mode && (int) strlen(w->item.app_mode) > wt)
                        wt = (int) strlen(w->item.app_mode);
        }
        printf("%-36s  %-*s  %-*s  %-*s  %s\n", "GUID", wn, "NAME", wo, "OWNER", wt, "TYPE", "WHY");
        for (size_t i = 0; i < l->n; i++) {
                const struct watched *w = &l->v[i];
                printf("%-36s  ", w->item.guid);
                print_field(stdout, watched_name(w), wn);
                fputs("  ", stdout);
                print_field(stdout, w->item.owner, wo);
                fputs("  ", stdout);
                print_field(stdout, w->item.app_mode, wt);
                fputs("  ", stdout);
                if (w->configured)
                        fputs(w->rule ? "config, " : "config", stdout);
                if (w->rule)
                        printf("rule %zu", w->rule);
                if (w->configured && !w->listed && l->n_listed > 0)
                        fputs(" (not in Connect's listing: deleted, or not visible to the key)",
                              stdout);
                fputc('\n', stdout);
        }
}

static void put_string(struct json_object *o, const char *k, const char *v)
{
        (void) json_object_object_add(o, k, v ? json_object_new_string(v) : NULL);
}

static void print_json(const struct listing *l)
{
        for (size_t i = 0; i < l->n; i++) {
                const struct watched *w = &l->v[i];
                struct json_object *o = json_object_new_object(), *why = json_object_new_array();
                if (!o || !why) {
                        json_object_put(o);
                        json_object_put(why);
                        return;
                }
                put_string(o, "guid", w->item.guid);
                put_string(o, "name", watched_name(w));
                put_string(o, "title", w->item.title);
                put_string(o, "owner", w->item.owner);
                put_string(o, "type", w->item.app_mode);
                put_string(o, "app_role", w->item.app_role);
                if (w->configured)
                        (void) json_object_array_add(why, json_object_new_string("config"));
                if (w->rule) {
                        char rule[32];
                        (void) snprintf(rule, sizeof(rule), "rule %zu", w->rule);
                        (void) json_object_array_add(why, json_object_new_string(rule));
                }
                (void) json_object_object_add(o, "why", why);
                (void) json_object_object_add(o, "listed", json_object_new_boolean(w->listed));
                puts(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN));
                json_object_put(o);
        }
}

int cli_content(struct cli *c)
{
        const struct config *cfg = c->config;
        struct listing l = {.config = cfg};
        struct tag_tree *tags = NULL;
        struct connect_stream *stream = NULL;
        struct client_reply reply = {0};
        _cleanup_free_ char *url = NULL;
        int r = 0;

        for (size_t i = 0; i < cfg->n_content; i++) {
                struct watched *w = watched_add(&l);
                if (!w || !(w->item.guid = strdup(cfg->content[i].guid))) {
                        cli_say("out of memory");
                        r = CLI_EXIT_FAILURE;
                        goto out;
                }
                w->config_name = cfg->content[i].name;
                w->configured = true;
        }
        if (cfg->discover) {
                r = load_rules(c, &tags, &l.rules);
                if (r != 0)
                        goto out;
        }
        /* One listing names the configured items too (Connect's name when content: has none). */
        if (connect_stream_new_objects(on_item, &l, &stream) < 0 ||
            content_list_url(client_server(c->client), &url) < 0) {
                cli_say("out of memory");
                r = CLI_EXIT_FAILURE;
                goto out;
        }
        r = client_get(c->client, url, &list_sink, stream, &reply);
        if (r < 0) {
                r = cli_call_failed(r, "GET /v1/content");
                goto out;
        }
        if (reply.outcome == HTTP_OK && connect_stream_finish(stream) < 0) {
                cli_say("GET /v1/content: Connect's answer is not a JSON array of content");
                r = CLI_EXIT_FAILURE;
                goto out;
        }
        r = cli_check_reply(c, &reply, "GET /v1/content");
        if (r != 0)
                goto out;
        if (c->json)
                print_json(&l);
        else if (l.n == 0)
                printf("no content watched (%zu items listed, none selected)\n", l.n_listed);
        else
                print_text(&l);
        r = cli_finish_stdout();
out:
        client_reply_done(&reply);
        connect_stream_free(stream);
        content_rules_free(l.rules);
        tag_tree_free(tags);
        for (size_t i = 0; i < l.n; i++)
                content_item_done(&l.v[i].item);
        free(l.v);
        return r;
}
