/* Connect's content API and the discover rules: see content.h. */

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <json-c/json.h>

#include "config.h"
#include "connect.h"
#include "content.h"
#include "log.h"
#include "macro.h"
#include "util.h"

/* A string member as a new copy in *ret (NULL when absent or not a string). */
static int dup_member(struct json_object *o, const char *name, char **ret)
{
        struct json_object *v;

        *ret = NULL;
        if (!json_object_object_get_ex(o, name, &v) || !json_object_is_type(v, json_type_string))
                return 0;
        *ret = strdup(json_object_get_string(v));
        return *ret ? 0 : -ENOMEM;
}

void content_item_done(struct content_item *c)
{
        free(c->guid);
        free(c->name);
        free(c->title);
        free(c->owner);
        free(c->app_mode);
        free(c->app_role);
        for (size_t i = 0; i < c->n_tags; i++)
                free(c->tags[i]);
        free(c->tags);
        *c = (struct content_item){0};
}

int content_item_from_json(struct json_object *o, struct content_item *ret)
{
        struct content_item c = {0};
        struct json_object *owner, *tags;
        int r;

        if (!json_object_is_type(o, json_type_object))
                return -EBADMSG;
        r = dup_member(o, "guid", &c.guid);
        if (r < 0)
                return r;
        if (!c.guid || !guid_is_valid(c.guid)) {
                free(c.guid);
                return -EBADMSG;
        }
        if ((r = dup_member(o, "name", &c.name)) < 0 ||
            (r = dup_member(o, "title", &c.title)) < 0 ||
            (r = dup_member(o, "app_mode", &c.app_mode)) < 0 ||
            (r = dup_member(o, "app_role", &c.app_role)) < 0)
                goto fail;
        if (json_object_object_get_ex(o, "owner", &owner) &&
            json_object_is_type(owner, json_type_object) &&
            (r = dup_member(owner, "username", &c.owner)) < 0)
                goto fail;
        /* Connect leaves "tags" out when an item has none. */
        if (json_object_object_get_ex(o, "tags", &tags) &&
            json_object_is_type(tags, json_type_array)) {
                size_t n = json_object_array_length(tags);
                c.tags = calloc(n ? n : 1, sizeof(*c.tags));
                if (!c.tags) {
                        r = -ENOMEM;
                        goto fail;
                }
                for (size_t i = 0; i < n; i++) {
                        struct json_object *t = json_object_array_get_idx(tags, i);
                        if (!json_object_is_type(t, json_type_object))
                                continue;
                        r = dup_member(t, "id", &c.tags[c.n_tags]);
                        if (r < 0)
                                goto fail;
                        if (c.tags[c.n_tags])
                                c.n_tags++;
                }
        }
        *ret = c;
        return 0;
fail:
        content_item_done(&c);
        return r;
}

const char *content_item_label(const struct content_item *c)
{
        if (c->title && *c->title)
                return c->title;
        if (c->name && *c->name)
                return c->name;
        return NULL;
}

bool content_item_readable(const struct content_item *c, bool admin)
{
        return admin || (c->app_role &&
                         (strcmp(c->app_role, "owner") == 0 || strcmp(c->app_role, "editor") == 0));
}

/* ---- tags ---- */

struct tag {
        char *id, *name, *parent_id; /* parent_id NULL for a top-level tag (a category) */
};

struct tag_tree {
        struct tag *tags;
        size_t n_tags;
};

void tag_tree_free(struct tag_tree *t)
{
        if (!t)
                return;
        for (size_t i = 0; i < t->n_tags; i++) {
                free(t->tags[i].id);
                free(t->tags[i].name);
                free(t->tags[i].parent_id);
        }
        free(t->tags);
        free(t);
}

int tag_tree_parse(const char *body, size_t len, struct tag_tree **ret)
{
        struct json_object *arr = NULL;
        struct tag_tree *t;
        int r;

        r = connect_parse_json(body, len, &arr);
        if (r < 0)
                return r;
        if (!json_object_is_type(arr, json_type_array)) {
                json_object_put(arr);
                return -EBADMSG;
        }
        size_t n = json_object_array_length(arr);
        t = calloc(1, sizeof(*t));
        if (!t || !(t->tags = calloc(n ? n : 1, sizeof(*t->tags)))) {
                free(t);
                json_object_put(arr);
                return -ENOMEM;
        }
        for (size_t i = 0; i < n; i++) {
                struct json_object *o = json_object_array_get_idx(arr, i);
                struct tag *tag = &t->tags[t->n_tags];
                if (!json_object_is_type(o, json_type_object)) {
                        r = -EBADMSG;
                        goto out;
                }
                if ((r = dup_member(o, "id", &tag->id)) < 0 ||
                    (r = dup_member(o, "name", &tag->name)) < 0 ||
                    (r = dup_member(o, "parent_id", &tag->parent_id)) < 0)
                        goto out;
                if (!tag->id || !tag->name) {
                        free(tag->id);
                        free(tag->name);
                        free(tag->parent_id);
                        *tag = (struct tag){0};
                        r = -EBADMSG;
                        goto out;
                }
                t->n_tags++;
        }
        r = 0;
out:
        json_object_put(arr);
        if (r < 0) {
                tag_tree_free(t);
                return r;
        }
        *ret = t;
        return 0;
}

static const struct tag *tag_by_id(const struct tag_tree *t, const char *id)
{
        for (size_t i = 0; i < t->n_tags; i++)
                if (strcmp(t->tags[i].id, id) == 0)
                        return &t->tags[i];
        return NULL;
}

const char *tag_tree_find(const struct tag_tree *t, const char *path)
{
        const char *parent = NULL, *p = path;

        if (!t)
                return NULL;
        while (*p) {
                size_t n = strcspn(p, "/");
                const char *found = NULL;
                for (size_t i = 0; i < t->n_tags && !found; i++) {
                        const struct tag *tag = &t->tags[i];
                        if ((!parent) != (!tag->parent_id) ||
                            (parent && strcmp(parent, tag->parent_id) != 0))
                                continue;
                        if (strlen(tag->name) == n && memcmp(tag->name, p, n) == 0)
                                found = tag->id;
                }
                if (!found)
                        return NULL;
                parent = found;
                p += n;
                if (*p == '/')
                        p++;
        }
        return parent;
}

/* Whether tag id is ancestor or lies below it (a cycle in a broken tree ends the walk). */
static bool tag_is_within(const struct tag_tree *t, const char *id, const char *ancestor)
{
        for (size_t steps = 0; id && steps <= t->n_tags; steps++) {
                if (strcmp(id, ancestor) == 0)
                        return true;
                const struct tag *tag = tag_by_id(t, id);
                id = tag ? tag->parent_id : NULL;
        }
        return false;
}

int content_parse_user(const char *body, size_t len, bool *ret_admin)
{
        struct json_object *o = NULL, *role;
        int r;

        r = connect_parse_json(body, len, &o);
        if (r < 0)
                return r;
        if (!json_object_is_type(o, json_type_object)) {
                json_object_put(o);
                return -EBADMSG;
        }
        *ret_admin = json_object_object_get_ex(o, "user_role", &role) &&
                     json_object_is_type(role, json_type_string) &&
                     strcmp(json_object_get_string(role), "administrator") == 0;
        json_object_put(o);
        return 0;
}

/* ---- rules ---- */

struct content_rules {
        const struct config *config;
        const struct tag_tree *tags;
        bool admin;
        /* Per rule: the id its tag path resolves to (borrowed from tags); NULL: no tag key,
         * or (unknown[i]) a path the tree does not have. */
        const char **tag_ids;
        bool *unknown;
};

int content_rules_new(const struct config *c, const struct tag_tree *t, bool admin,
                      struct content_rules **ret)
{
        struct content_rules *r = calloc(1, sizeof(*r));

        if (!r)
                return -ENOMEM;
        r->config = c;
        r->tags = t;
        r->admin = admin;
        r->tag_ids = calloc(c->n_rules ? c->n_rules : 1, sizeof(*r->tag_ids));
        r->unknown = calloc(c->n_rules ? c->n_rules : 1, sizeof(*r->unknown));
        if (!r->tag_ids || !r->unknown) {
                content_rules_free(r);
                return -ENOMEM;
        }
        for (size_t i = 0; i < c->n_rules; i++) {
                if (!c->rules[i].tag)
                        continue;
                r->tag_ids[i] = tag_tree_find(t, c->rules[i].tag);
                r->unknown[i] = !r->tag_ids[i];
        }
        *ret = r;
        return 0;
}

void content_rules_free(struct content_rules *r)
{
        if (!r)
                return;
        free(r->tag_ids);
        free(r->unknown);
        free(r);
}

bool content_rules_unknown_tag(const struct content_rules *r, size_t i)
{
        return i < r->config->n_rules && r->unknown[i];
}

static bool rule_holds(const struct content_rules *r, size_t i, const struct content_item *item)
{
        const struct config_rule *rule = &r->config->rules[i];

        if (rule->owner && (!item->owner || strcasecmp(rule->owner, item->owner) != 0))
                return false;
        if (rule->type && (!item->app_mode || strcmp(rule->type, item->app_mode) != 0))
                return false;
        if (rule->tag) {
                if (!r->tag_ids[i])
                        return false;
                bool tagged = false;
                for (size_t k = 0; k < item->n_tags && !tagged; k++)
                        tagged = tag_is_within(r->tags, item->tags[k], r->tag_ids[i]);
                if (!tagged)
                        return false;
        }
        return true; /* "all: true" alone holds for every item */
}

size_t content_rules_match(const struct content_rules *r, const struct content_item *item)
{
        const struct config *c = r->config;

        if (!content_item_readable(item, r->admin))
                return 0;
        for (size_t i = 0; i < c->n_exclude; i++)
                if (strcasecmp(c->exclude[i], item->guid) == 0)
                        return 0;
        for (size_t i = 0; i < c->n_rules; i++)
                if (rule_holds(r, i, item))
                        return i + 1;
        return 0;
}

const char *content_rule_describe(const struct config_rule *rule, char *buf, size_t size)
{
        const char *names[] = {"tag", "owner", "type"};
        const char *values[] = {rule->tag, rule->owner, rule->type};
        char esc[LOG_ESCAPE_MAX];
        size_t n = 0;

        buf[0] = '\0';
        if (rule->all)
                n += (size_t) snprintf(buf, size, "all");
        for (size_t i = 0; i < ELEMENTSOF(names) && n < size; i++)
                if (values[i])
                        n += (size_t) snprintf(buf + n, size - n, "%s%s %s", n ? " and " : "",
                                               names[i], log_escape(values[i], esc, sizeof(esc)));
        return buf;
}

/* ---- URLs ---- */

int content_list_url(const char *server, char **ret)
{
        return asprintf(ret, "%s/__api__/v1/content?include=tags,owner", server) < 0 ? -ENOMEM : 0;
}

int content_tags_url(const char *server, char **ret)
{
        return asprintf(ret, "%s/__api__/v1/tags", server) < 0 ? -ENOMEM : 0;
}

int content_user_url(const char *server, char **ret)
{
        return asprintf(ret, "%s/__api__/v1/user", server) < 0 ? -ENOMEM : 0;
}

int content_item_url(const char *server, const char *guid, char **ret)
{
        return asprintf(ret, "%s/__api__/v1/content/%s?include=owner", server, guid) < 0 ? -ENOMEM
                                                                                         : 0;
}
