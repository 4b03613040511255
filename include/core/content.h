#pragma once

/*
 * Connect's content API, as far as discovery needs it: content items as listed by
 * GET /v1/content?include=tags,owner, the tag tree of GET /v1/tags, the key's own role
 * (GET /v1/user), and the discover: rules of the config applied to them. No I/O happens
 * here; both programs (the daemon's refresh, connect-jobs content) use the same rules.
 *
 * Why these endpoints: GET /v1/content and GET /v1/tags exist on every Connect since
 * 1.8.6 (2020), answer in one request each, and return items with their tags and owner;
 * GET /v1/search/content would let the server filter, but exists only from 2024.04 and
 * pages 500 items at a time.
 */

#include <stdbool.h>
#include <stddef.h>

struct config;
struct config_rule;
struct json_object;

/* One content item. Strings are owned; NULL when Connect sent none (or not a string). */
struct content_item {
        char *guid; /* always set: a valid GUID */
        char *name;
        char *title;
        char *owner;    /* owner.username */
        char *app_mode; /* Connect's content type */
        char *app_role; /* the key's relation: owner, editor, viewer, none */
        char **tags;    /* the ids of its tags */
        size_t n_tags;
};

/*
 * Reads one element of a content list. Returns 0, -EBADMSG when it is not an object with a
 * valid "guid" (the caller skips it), or -ENOMEM.
 */
int content_item_from_json(struct json_object *o, struct content_item *ret);
/* Frees what an item owns and zeroes it. */
void content_item_done(struct content_item *c);
/* The name Connect gives it: a non-empty title, else a non-empty name, else NULL. */
const char *content_item_label(const struct content_item *c);
/* The key may read the item's jobs: an administrator's key reads all; another only what it
 * owns or collaborates on (app_role owner or editor). */
bool content_item_readable(const struct content_item *c, bool admin);

/* The tag tree (GET /v1/tags: a bare array of {id, name, parent_id}). */
struct tag_tree;
/* Returns 0, -EBADMSG (not an array of tags) or -ENOMEM. */
int tag_tree_parse(const char *body, size_t len, struct tag_tree **ret);
void tag_tree_free(struct tag_tree *t);
/* The id of the tag at path ("Finance/Reports": names from a top-level tag down), or NULL. */
const char *tag_tree_find(const struct tag_tree *t, const char *path);

/* GET /v1/user: *ret_admin is whether "user_role" is "administrator". 0 or -EBADMSG. */
int content_parse_user(const char *body, size_t len, bool *ret_admin);

/*
 * The discover rules of a config, resolved against a tag tree (NULL when no rule has a
 * tag). A rule whose tag path is not in the tree selects nothing (content_rules_unknown_tag
 * says which, for a warning).
 */
struct content_rules;
int content_rules_new(const struct config *c, const struct tag_tree *t, bool admin,
                      struct content_rules **ret);
void content_rules_free(struct content_rules *r);
/* Whether rule i (0-based) has a tag path the tree does not have. */
bool content_rules_unknown_tag(const struct content_rules *r, size_t i);
/*
 * Which rule selects item: its 1-based number, or 0 when none does, the item is excluded
 * (discover.exclude) or its jobs cannot be read with this key. Rules are ORed, the keys of
 * one rule ANDed; a tag rule holds for the tag and every tag below it.
 */
size_t content_rules_match(const struct content_rules *r, const struct content_item *item);

/* A rule in words for people: "all", "tag Finance/Reports and type shiny", ... (escaped). */
const char *content_rule_describe(const struct config_rule *rule, char *buf, size_t size);

/* "<server>/__api__/v1/content?include=tags,owner", ".../v1/tags", ".../v1/user",
 * ".../v1/content/<guid>?include=owner". */
int content_list_url(const char *server, char **ret);
int content_tags_url(const char *server, char **ret);
int content_user_url(const char *server, char **ret);
int content_item_url(const char *server, const char *guid, char **ret);
