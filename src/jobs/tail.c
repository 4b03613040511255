#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "connect.h"
#include "macro.h"
#include "tail.h"
#include "util.h"

/* A log entry is a flat object; anything nested deeper than this is hostile. */
#define JSON_MAX_DEPTH 32

enum decoder_state {
        STATE_LINE_START,  /* at the start of a line: a value, an SSE field, or a blank line */
        STATE_AFTER_VALUE, /* a value ended: whitespace, a newline, or the next value */
        STATE_FIELD_LINE,  /* inside an SSE field line, collected up to its newline */
        STATE_VALUE,       /* inside a JSON value, fed to the tokener */
};

struct buffer {
        char *data;
        size_t len, cap;
};

struct tail_decoder {
        tail_entry_fn *fn;
        void *userdata;
        enum decoder_state state;
        struct json_tokener *tok;
        size_t value_bytes;
        struct buffer line;  /* the SSE field line being read */
        struct buffer event; /* the data of the SSE event being read */
        bool has_event_data;
};

static int buffer_append(struct buffer *b, const char *data, size_t len)
{
        if (b->len + len > TAIL_FRAME_MAX)
                return -EBADMSG;
        return buf_append(&b->data, &b->len, &b->cap, data, len, 256);
}

int tail_decoder_new(tail_entry_fn *fn, void *userdata, struct tail_decoder **ret)
{
        struct tail_decoder *d = calloc(1, sizeof(*d));

        if (!d)
                return -ENOMEM;
        d->fn = fn;
        d->userdata = userdata;
        d->tok = json_tokener_new_ex(JSON_MAX_DEPTH);
        if (!d->tok) {
                free(d);
                return -ENOMEM;
        }
        /* Strict json-c refuses anything after a value unless told that more may follow. */
        json_tokener_set_flags(d->tok, JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8 |
                                               JSON_TOKENER_ALLOW_TRAILING_CHARS);
        *ret = d;
        return 0;
}

void tail_decoder_free(struct tail_decoder *d)
{
        if (!d)
                return;
        json_tokener_free(d->tok);
        free(d->line.data);
        free(d->event.data);
        free(d);
}

void tail_decoder_freep(struct tail_decoder **d)
{
        tail_decoder_free(*d);
}

void tail_decoder_reset(struct tail_decoder *d)
{
        json_tokener_reset(d->tok);
        d->state = STATE_LINE_START;
        d->value_bytes = 0;
        d->line.len = 0;
        d->event.len = 0;
        d->has_event_data = false;
}

static int deliver_entry(struct tail_decoder *d, struct json_object *o)
{
        struct log_entry e;
        int r;

        r = connect_log_entry_from_json(o, &e);
        if (r < 0)
                return r;
        return d->fn(d->userdata, &e);
}

/* A LogEntry, a LogEntries object, or an array of LogEntry. */
static int deliver_value(struct tail_decoder *d, struct json_object *v)
{
        struct json_object *arr = v;
        int r;

        if (json_object_is_type(v, json_type_object) &&
            !json_object_object_get_ex(v, "entries", &arr))
                return deliver_entry(d, v);
        if (!json_object_is_type(arr, json_type_array))
                return -EBADMSG;
        for (size_t i = 0, n = json_object_array_length(arr); i < n; i++) {
                r = deliver_entry(d, json_object_array_get_idx(arr, i));
                if (r < 0)
                        return r;
        }
        return 0;
}

/* An SSE event ended (blank line, or the end of the stream): its data is one JSON value. */
static int dispatch_event(struct tail_decoder *d)
{
        struct json_tokener *tok;
        struct json_object *v;
        int r = -EBADMSG;

        if (!d->has_event_data)
                return 0;
        d->has_event_data = false;
        size_t len = d->event.len;
        d->event.len = 0;
        size_t start = 0;
        while (start < len && strchr(" \t\r\n", d->event.data[start]))
                start++;
        if (start == len)
                return 0; /* "data:" alone: a keep-alive */
        tok = json_tokener_new_ex(JSON_MAX_DEPTH);
        if (!tok)
                return -ENOMEM;
        json_tokener_set_flags(tok, JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8);
        v = json_tokener_parse_ex(tok, d->event.data + start, (int) (len - start));
        if (v && json_tokener_get_error(tok) == json_tokener_success) {
                size_t end = start + json_tokener_get_parse_end(tok);
                while (end < len && strchr(" \t\r\n", d->event.data[end]))
                        end++;
                if (end == len)
                        r = deliver_value(d, v);
        }
        json_object_put(v);
        json_tokener_free(tok);
        return r;
}

/* One SSE line, without its newline. Only the fields of the standard are taken. */
static int field_line(struct tail_decoder *d)
{
        char *line = d->line.data ? d->line.data : "";
        size_t len = d->line.len;
        const char *value = "";
        size_t name_len, value_len = 0;

        d->line.len = 0;
        if (len > 0 && line[len - 1] == '\r')
                len--;
        if (len == 0 || line[0] == ':')
                return 0; /* a comment (a keep-alive, typically) */
        char *colon = memchr(line, ':', len);
        name_len = colon ? (size_t) (colon - line) : len;
        if (colon) {
                value = colon + 1;
                value_len = len - name_len - 1;
                if (value_len > 0 && value[0] == ' ') {
                        value++;
                        value_len--;
                }
        }
        if (name_len == 4 && memcmp(line, "data", 4) == 0) {
                int r;
                if (d->has_event_data && (r = buffer_append(&d->event, "\n", 1)) < 0)
                        return r;
                d->has_event_data = true;
                return buffer_append(&d->event, value, value_len);
        }
        if ((name_len == 5 && memcmp(line, "event", 5) == 0) ||
            (name_len == 2 && memcmp(line, "id", 2) == 0) ||
            (name_len == 5 && memcmp(line, "retry", 5) == 0))
                return 0;
        return -EBADMSG; /* neither JSON nor an event stream */
}

int tail_decoder_feed(struct tail_decoder *d, const void *data, size_t len)
{
        const char *p = data;
        size_t i = 0;
        int r;

        while (i < len) {
                char c = p[i];

                switch (d->state) {
                case STATE_LINE_START:
                        if (c == '\n') {
                                r = dispatch_event(d); /* a blank line ends an event */
                                if (r < 0)
                                        return r;
                                i++;
                        } else if (c == '\r' || c == ' ' || c == '\t') {
                                i++;
                        } else if (c == '{' || c == '[') {
                                d->state = STATE_VALUE;
                        } else {
                                d->state = STATE_FIELD_LINE;
                        }
                        break;
                case STATE_AFTER_VALUE:
                        if (c == '\n') {
                                d->state = STATE_LINE_START;
                                i++;
                        } else if (c == '\r' || c == ' ' || c == '\t') {
                                i++;
                        } else if (c == '{' || c == '[') {
                                d->state = STATE_VALUE;
                        } else {
                                return -EBADMSG;
                        }
                        break;
                case STATE_FIELD_LINE: {
                        const char *nl = memchr(p + i, '\n', len - i);
                        size_t n = nl ? (size_t) (nl - (p + i)) : len - i;
                        r = buffer_append(&d->line, p + i, n);
                        if (r < 0)
                                return r;
                        i += n;
                        if (nl) {
                                i++;
                                d->state = STATE_LINE_START;
                                r = field_line(d);
                                if (r < 0)
                                        return r;
                        }
                        break;
                }
                case STATE_VALUE: {
                        size_t n = len - i < INT_MAX ? len - i : INT_MAX;
                        struct json_object *v = json_tokener_parse_ex(d->tok, p + i, (int) n);
                        enum json_tokener_error err = json_tokener_get_error(d->tok);

                        if (err == json_tokener_continue) {
                                d->value_bytes += n;
                                if (d->value_bytes > TAIL_FRAME_MAX)
                                        return -EBADMSG;
                                i += n;
                                break;
                        }
                        if (err != json_tokener_success || !v) {
                                json_object_put(v);
                                return -EBADMSG;
                        }
                        i += json_tokener_get_parse_end(d->tok);
                        json_tokener_reset(d->tok);
                        d->value_bytes = 0;
                        d->state = STATE_AFTER_VALUE;
                        r = deliver_value(d, v);
                        json_object_put(v);
                        if (r < 0)
                                return r;
                        break;
                }
                }
        }
        return 0;
}

int tail_decoder_finish(struct tail_decoder *d)
{
        int r;

        if (d->state == STATE_VALUE)
                return -EBADMSG;
        if (d->state == STATE_FIELD_LINE) {
                d->state = STATE_LINE_START;
                r = field_line(d);
                if (r < 0)
                        return r;
        }
        return dispatch_event(d);
}

/* ---- The seam rule ---- */

/* Counts by line identity: open addressing, linear probing, never more than half full. */
struct slot {
        uint64_t key; /* 0: empty */
        uint32_t count;
};

struct count_map {
        struct slot *slots;
        size_t mask;
};

struct remembered {
        uint64_t key;
        int64_t sec;
        uint32_t nsec;
};

struct tail_seen {
        size_t capacity;
        struct remembered *ring; /* the lines shown, oldest at head */
        size_t head, n;
        struct count_map shown; /* how often each remembered line was shown */
        struct count_map pass;  /* how often this pass has repeated each one */
        bool complete;
        bool caught_up;
        bool pass_has_time;
        int64_t pass_sec;
        uint32_t pass_nsec;
};

static struct slot *map_find(struct count_map *m, uint64_t key)
{
        size_t i = (size_t) key & m->mask;

        while (m->slots[i].key != 0 && m->slots[i].key != key)
                i = (i + 1) & m->mask;
        return &m->slots[i];
}

static uint32_t map_get(struct count_map *m, uint64_t key)
{
        return map_find(m, key)->count;
}

static void map_inc(struct count_map *m, uint64_t key)
{
        struct slot *s = map_find(m, key);

        s->key = key;
        s->count++;
}

/* Decrements, and removes a key that drops to 0 by shifting its probe chain back. */
static void map_dec(struct count_map *m, uint64_t key)
{
        struct slot *s = map_find(m, key);
        size_t i, j;

        if (s->key == 0 || --s->count > 0)
                return;
        i = (size_t) (s - m->slots);
        for (j = (i + 1) & m->mask; m->slots[j].key != 0; j = (j + 1) & m->mask) {
                size_t home = (size_t) m->slots[j].key & m->mask;
                /* Move j into the hole at i unless its home lies cyclically in (i, j]. */
                bool stays = i <= j ? (home > i && home <= j) : (home > i || home <= j);
                if (!stays) {
                        m->slots[i] = m->slots[j];
                        i = j;
                }
        }
        m->slots[i] = (struct slot){0};
}

static void map_clear(struct count_map *m)
{
        memset(m->slots, 0, (m->mask + 1) * sizeof(*m->slots));
}

static int map_init(struct count_map *m, size_t keys)
{
        size_t size = 16;

        while (size < 2 * keys)
                size *= 2;
        m->slots = calloc(size, sizeof(*m->slots));
        if (!m->slots)
                return -ENOMEM;
        m->mask = size - 1;
        return 0;
}

int tail_seen_new(size_t capacity, struct tail_seen **ret)
{
        struct tail_seen *s;

        if (capacity == 0 || capacity > SIZE_MAX / 4 / sizeof(struct remembered))
                return -EINVAL;
        s = calloc(1, sizeof(*s));
        if (!s)
                return -ENOMEM;
        s->capacity = capacity;
        s->ring = calloc(capacity, sizeof(*s->ring));
        if (!s->ring || map_init(&s->shown, capacity) < 0 || map_init(&s->pass, capacity) < 0) {
                tail_seen_free(s);
                return -ENOMEM;
        }
        *ret = s;
        return 0;
}

void tail_seen_free(struct tail_seen *s)
{
        if (!s)
                return;
        free(s->ring);
        free(s->shown.slots);
        free(s->pass.slots);
        free(s);
}

void tail_seen_freep(struct tail_seen **s)
{
        tail_seen_free(*s);
}

void tail_seen_begin_pass(struct tail_seen *s)
{
        map_clear(&s->pass);
        s->caught_up = false;
        s->pass_has_time = false;
        s->pass_sec = 0;
        s->pass_nsec = 0;
}

void tail_seen_set_complete(struct tail_seen *s)
{
        s->complete = true;
}

/* FNV-1a over the time, the source and the text; never 0 (the empty slot). */
static uint64_t line_key(int64_t sec, uint32_t nsec, const struct log_entry *e)
{
        uint64_t h = UINT64_C(14695981039346656037);
        unsigned char head[12];

        for (int i = 0; i < 8; i++)
                head[i] = (unsigned char) ((uint64_t) sec >> (8 * i));
        for (int i = 0; i < 4; i++)
                head[8 + i] = (unsigned char) (nsec >> (8 * i));
        for (size_t i = 0; i < sizeof(head); i++)
                h = (h ^ head[i]) * UINT64_C(1099511628211);
        for (const char *p = e->source ? e->source : ""; *p; p++)
                h = (h ^ (unsigned char) *p) * UINT64_C(1099511628211);
        h = (h ^ 0xffu) * UINT64_C(1099511628211); /* separates source from data */
        for (size_t i = 0; i < e->data_len; i++)
                h = (h ^ (unsigned char) e->data[i]) * UINT64_C(1099511628211);
        return h ? h : 1;
}

int tail_seen_admit(struct tail_seen *s, const struct log_entry *e)
{
        if (e->has_timestamp) {
                s->pass_has_time = true;
                s->pass_sec = e->ts_sec;
                s->pass_nsec = e->ts_nsec;
        }
        uint64_t key = line_key(s->pass_sec, s->pass_nsec, e);

        if (!s->caught_up) {
                uint32_t shown = map_get(&s->shown, key);
                if (shown > 0 && map_get(&s->pass, key) < shown) {
                        map_inc(&s->pass, key);
                        return 0;
                }
                if (!s->complete && s->n > 0) {
                        const struct remembered *oldest = &s->ring[s->head];
                        if (s->pass_sec < oldest->sec ||
                            (s->pass_sec == oldest->sec && s->pass_nsec < oldest->nsec))
                                return 0;
                }
                s->caught_up = true;
        }
        if (s->n == s->capacity) {
                map_dec(&s->shown, s->ring[s->head].key);
                s->head = (s->head + 1) % s->capacity;
                s->n--;
                s->complete = false;
        }
        s->ring[(s->head + s->n) % s->capacity] =
                (struct remembered){.key = key, .sec = s->pass_sec, .nsec = s->pass_nsec};
        s->n++;
        map_inc(&s->shown, key);
        return 1;
}
