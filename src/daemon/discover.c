/*
 * Discovery: every discover.refresh_seconds the daemon asks Connect what content there is
 * and watches what the rules select (content.c applies them), beside the items of content:.
 *
 * One listing is three requests in a row: GET /v1/user (is the key an administrator's: only
 * then may it read the jobs of items it neither owns nor edits), GET /v1/tags when a rule
 * names a tag, and GET /v1/content?include=tags,owner, streamed element by element so that
 * a server with thousands of items costs one element's memory, not the whole body's. Only a
 * listing that arrived whole changes the set: a failed one keeps the last known set (said
 * once, until a listing succeeds again), so a transient error never drops an item.
 */

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <json-c/json.h>

#include "config.h"
#include "content.h"
#include "internal.h"
#include "log.h"
#include "util.h"

/* A failed listing is tried again this soon (or at the refresh, if sooner). */
#define DISCOVERY_RETRY_USEC (60 * USEC_PER_SEC)

static void found_free(struct found *f, size_t n)
{
        for (size_t i = 0; i < n; i++) {
                free(f[i].guid);
                free(f[i].label);
        }
        free(f);
}

static void next_clear(struct discovery *disc)
{
        for (size_t i = 0; i < disc->n_next; i++) {
                free(disc->next[i].guid);
                free(disc->next[i].label);
        }
        disc->n_next = 0;
}

uint64_t discovery_deadline(const struct daemon *d)
{
        if (!d->config->discover || d->discovery.refreshing)
                return UINT64_MAX;
        return d->discovery.next_refresh_usec;
}

void discovery_reset(struct daemon *d)
{
        d->discovery.next_refresh_usec = 0;
        free(d->discovery.unknown_tag_said);
        d->discovery.unknown_tag_said = NULL;
        d->discovery.n_unknown_tag_said = 0;
        if (!d->config->discover) {
                found_free(d->discovery.found, d->discovery.n_found);
                d->discovery.found = NULL;
                d->discovery.n_found = 0;
        }
}

void discovery_free(struct daemon *d)
{
        struct discovery *disc = &d->discovery;

        next_clear(disc);
        free(disc->next);
        found_free(disc->found, disc->n_found);
        tag_tree_free(disc->tags);
        content_rules_free(disc->rules);
        connect_stream_free(disc->stream);
        free(disc->unknown_tag_said);
        *disc = (struct discovery){0};
}

/* The listing failed: the set stays as it was. Said once until one succeeds. */
static void discovery_failed(struct daemon *d, const char *what, const char *why)
{
        struct discovery *disc = &d->discovery;
        uint64_t refresh = (uint64_t) d->config->discover_refresh_seconds * USEC_PER_SEC;

        disc->refreshing = false;
        disc->next_refresh_usec = now_usec(CLOCK_MONOTONIC) +
                                  (refresh < DISCOVERY_RETRY_USEC ? refresh : DISCOVERY_RETRY_USEC);
        d->stats.items_failed++;
        d->status_dirty = true;
        if (disc->failing && !d->once) {
                log_printf(LOG_DEBUG, "discovery: %s still failing: %s", what, why);
                return;
        }
        disc->failing = true;
        log_printf(LOG_WARNING,
                   "discovery: cannot list content (%s: %s); keeping the %zu items found "
                   "before, trying again",
                   what, why, disc->n_found);
}

/* The rules were resolved against a tag tree that lacks a rule's tag path: said once. */
static void warn_unknown_tags(struct daemon *d)
{
        struct discovery *disc = &d->discovery;
        const struct config *c = d->config;

        if (disc->n_unknown_tag_said != c->n_rules) {
                free(disc->unknown_tag_said);
                disc->unknown_tag_said = calloc(c->n_rules ? c->n_rules : 1, sizeof(bool));
                disc->n_unknown_tag_said = disc->unknown_tag_said ? c->n_rules : 0;
        }
        for (size_t i = 0; i < disc->n_unknown_tag_said; i++) {
                bool unknown = content_rules_unknown_tag(disc->rules, i);
                if (unknown && !disc->unknown_tag_said[i]) {
                        char esc[LOG_ESCAPE_MAX];
                        log_printf(LOG_WARNING,
                                   "discovery: rule %zu (%s:%zu): Connect has no tag \"%s\"; the "
                                   "rule selects nothing",
                                   i + 1, c->path, c->rules[i].line,
                                   log_escape(c->rules[i].tag, esc, sizeof(esc)));
                }
                disc->unknown_tag_said[i] = unknown;
        }
}

static bool guid_is_configured(const struct config *c, const char *guid)
{
        for (size_t i = 0; i < c->n_content; i++)
                if (strcasecmp(c->content[i].guid, guid) == 0)
                        return true;
        return false;
}

/* One element of the content list: kept when a rule selects it, or content: lists it (for
 * its name). Elements that are not content items are skipped; the listing goes on. */
static int list_element(void *userdata, struct json_object *o)
{
        struct daemon *d = userdata;
        struct discovery *disc = &d->discovery;
        struct content_item ci = {0};
        size_t rule;
        int r;

        r = content_item_from_json(o, &ci);
        if (r == -EBADMSG) {
                log_printf(LOG_DEBUG, "discovery: an element of the content list is not a "
                                      "content item; skipped");
                return 0;
        }
        if (r < 0)
                return r;
        rule = content_rules_match(disc->rules, &ci);
        if (rule == 0 && !guid_is_configured(d->config, ci.guid)) {
                content_item_done(&ci);
                return 0;
        }
        if (disc->n_next == disc->cap_next) {
                size_t n = disc->cap_next ? disc->cap_next * 2 : 64;
                struct found *f = reallocarray(disc->next, n, sizeof(*f));
                if (!f) {
                        content_item_done(&ci);
                        return -ENOMEM;
                }
                disc->next = f;
                disc->cap_next = n;
        }
        const char *label = content_item_label(&ci);
        struct found *f = &disc->next[disc->n_next];
        *f = (struct found){.guid = ci.guid, .rule = rule};
        ci.guid = NULL; /* taken */
        if (label && !(f->label = strdup(label))) {
                free(f->guid);
                content_item_done(&ci);
                return -ENOMEM;
        }
        disc->n_next++;
        content_item_done(&ci);
        return 0;
}

static int list_sink_begin(void *userdata)
{
        struct daemon *d = userdata;

        connect_stream_reset(d->discovery.stream);
        next_clear(&d->discovery);
        return 0;
}

static int list_sink_write(void *userdata, const void *data, size_t len)
{
        struct daemon *d = userdata;

        return connect_stream_feed(d->discovery.stream, data, len);
}

static const struct http_sink list_sink = {
        .begin = list_sink_begin,
        .write = list_sink_write,
};

/* The listing is whole: the new set replaces the old one. */
static void discovery_apply(struct daemon *d, size_t n_listed)
{
        struct discovery *disc = &d->discovery;
        struct item **items = NULL;
        size_t n = 0, n_before = d->n_items, n_selected = 0, n_new = 0;
        uint64_t now = now_usec(CLOCK_MONOTONIC);

        if (items_build(d, d->config, disc->next, disc->n_next, &items, &n) < 0) {
                discovery_failed(d, "the item list", "out of memory");
                return;
        }
        found_free(disc->found, disc->n_found);
        disc->found = disc->next;
        disc->n_found = disc->n_next;
        disc->next = NULL;
        disc->n_next = disc->cap_next = 0;
        for (size_t i = 0; i < disc->n_found; i++)
                n_selected += disc->found[i].rule > 0;
        for (size_t i = 0; i < n; i++)
                n_new += !item_in(d->items, d->n_items, items[i]);
        /* New items' first polls spread over one interval, as at start. */
        for (size_t i = 0, k = 0; i < n; i++)
                if (!item_in(d->items, d->n_items, items[i]) && items[i]->polls == 0 && !d->once)
                        items[i]->next_poll_usec = schedule_first_poll(
                                now, (uint64_t) d->config->poll_interval_seconds * USEC_PER_SEC,
                                k++, n_new);
        size_t n_left = n_before + n_new - n;
        items_replace(d, items, n);
        if (disc->failing)
                log_printf(LOG_NOTICE, "discovery: listing content works again");
        disc->failing = false;
        disc->listed_once = true;
        disc->n_listed = n_listed;
        disc->refreshing = false;
        disc->next_refresh_usec =
                now + (uint64_t) d->config->discover_refresh_seconds * USEC_PER_SEC;
        log_printf(n_new || n_left ? LOG_NOTICE : LOG_DEBUG,
                   "discovery: %zu items listed, %zu selected by the rules; watching %zu (%zu "
                   "new, %zu no longer)",
                   n_listed, n_selected, d->n_items, n_new, n_left);
}

static void on_list_done(void *userdata, const struct http_result *res)
{
        struct daemon *d = userdata;
        struct discovery *disc = &d->discovery;
        char why[512];
        int r = 0;

        if (d->stop) {
                disc->refreshing = false;
                return;
        }
        if (res->outcome == HTTP_OK)
                r = connect_stream_finish(disc->stream);
        else if (res->sink_error < 0 && res->status >= 200 && res->status < 300)
                r = res->sink_error;
        size_t n_listed = connect_stream_count(disc->stream);
        connect_stream_free(disc->stream);
        disc->stream = NULL;
        if (res->outcome != HTTP_OK && r == 0) {
                discovery_failed(d, "GET /v1/content", result_reason(res, NULL, why, sizeof(why)));
                return;
        }
        if (r < 0) {
                discovery_failed(d, "GET /v1/content",
                                 r == -EBADMSG ? "the body is not a JSON array"
                                 : r == -EFBIG ? "an item is too large"
                                               : strerror(-r));
                return;
        }
        discovery_apply(d, n_listed);
}

static void request_list(struct daemon *d)
{
        struct discovery *disc = &d->discovery;
        _cleanup_free_ char *url = NULL;
        int r;

        content_rules_free(disc->rules);
        disc->rules = NULL;
        r = content_rules_new(d->config, disc->tags, disc->admin, &disc->rules);
        if (r >= 0) {
                warn_unknown_tags(d);
                r = connect_stream_new_objects(list_element, d, &disc->stream);
        }
        if (r >= 0)
                r = content_list_url(d->config->server_url, &url);
        if (r >= 0)
                r = http_get(d->http, url, &list_sink, on_list_done, d);
        if (r < 0)
                discovery_failed(d, "GET /v1/content", strerror(-r));
}

static void on_tags_done(void *userdata, const struct http_result *res)
{
        struct daemon *d = userdata;
        struct discovery *disc = &d->discovery;
        struct tag_tree *t;
        char why[512];
        int r;

        if (d->stop) {
                disc->refreshing = false;
                return;
        }
        if (res->outcome != HTTP_OK) {
                discovery_failed(d, "GET /v1/tags", result_reason(res, NULL, why, sizeof(why)));
                return;
        }
        r = tag_tree_parse(res->body, res->body_len, &t);
        if (r < 0) {
                discovery_failed(d, "GET /v1/tags",
                                 r == -EBADMSG ? "not an array of tags" : strerror(-r));
                return;
        }
        tag_tree_free(disc->tags);
        disc->tags = t;
        request_list(d);
}

static bool rules_name_tags(const struct config *c)
{
        for (size_t i = 0; i < c->n_rules; i++)
                if (c->rules[i].tag)
                        return true;
        return false;
}

static void on_user_done(void *userdata, const struct http_result *res)
{
        struct daemon *d = userdata;
        struct discovery *disc = &d->discovery;
        _cleanup_free_ char *url = NULL;
        char why[512];
        bool admin = false;
        int r;

        if (d->stop) {
                disc->refreshing = false;
                return;
        }
        /* A server without the endpoint: the key counts as a publisher's (it reads what it
         * owns or edits), which is never more than it may. */
        if (res->outcome != HTTP_OK && res->outcome != HTTP_GONE) {
                discovery_failed(d, "GET /v1/user", result_reason(res, NULL, why, sizeof(why)));
                return;
        }
        if (res->outcome == HTTP_OK && content_parse_user(res->body, res->body_len, &admin) < 0) {
                discovery_failed(d, "GET /v1/user", "not a user object");
                return;
        }
        if (admin != disc->admin || !disc->listed_once)
                log_printf(LOG_INFO, "discovery: the API key is %s",
                           admin ? "an administrator's: every item's jobs can be read"
                                 : "not an administrator's: only items it owns or edits are "
                                   "watched");
        disc->admin = admin;
        if (!rules_name_tags(d->config)) {
                request_list(d);
                return;
        }
        r = content_tags_url(d->config->server_url, &url);
        if (r >= 0)
                r = http_get(d->http, url, NULL, on_tags_done, d);
        if (r < 0)
                discovery_failed(d, "GET /v1/tags", strerror(-r));
}

void discovery_tick(struct daemon *d, uint64_t now)
{
        struct discovery *disc = &d->discovery;
        _cleanup_free_ char *url = NULL;
        int r;

        if (!d->config->discover || disc->refreshing || now < disc->next_refresh_usec || d->stop)
                return;
        disc->refreshing = true;
        r = content_user_url(d->config->server_url, &url);
        if (r >= 0)
                r = http_get(d->http, url, NULL, on_user_done, d);
        if (r < 0)
                discovery_failed(d, "GET /v1/user", strerror(-r));
}
