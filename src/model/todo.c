#include "model/todo.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "model/decode.h"
#include "model/timefmt.h"
#include "util/buf.h"
#include "util/utf8.h"
#include "util/xalloc.h"

static const char *const todo_fields[] = {"title", "description", "completed", NULL};

/* True when the field must be present with a complete representation. */
static bool is_full(enum todo_decode_mode mode)
{
    return mode == TODO_DECODE_CREATE || mode == TODO_DECODE_REPLACE;
}

static void decode_title(json_t *root, enum todo_decode_mode mode, struct todo_patch *p,
                         struct field_errors *errs)
{
    json_t *v = json_object_get(root, "title");
    if (!v) {
        if (is_full(mode))
            field_errors_add(errs, "title", "is required");
        return;
    }
    if (json_is_null(v)) {
        field_errors_add(errs, "title", "must not be null");
        return;
    }
    if (!json_is_string(v)) {
        field_errors_add(errs, "title", "must be a string");
        return;
    }
    const char *s = json_string_value(v);
    size_t start, end;
    utf8_trim(s, json_string_length(v), &start, &end);
    size_t chars = utf8_count(s + start, end - start);
    if (chars == 0) {
        field_errors_add(errs, "title", "must not be empty");
        return;
    }
    if (chars > TODO_TITLE_MAX) {
        field_errors_add(errs, "title", "must be at most %d characters", TODO_TITLE_MAX);
        return;
    }
    p->has_title = true;
    p->title = xstrndup(s + start, end - start);
}

static void decode_description(json_t *root, enum todo_decode_mode mode, struct todo_patch *p,
                               struct field_errors *errs)
{
    json_t *v = json_object_get(root, "description");
    if (!v || json_is_null(v)) {
        /* Absent: a full representation resets it to null; a patch keeps it. */
        p->has_description = v != NULL || is_full(mode);
        return;
    }
    if (!json_is_string(v)) {
        field_errors_add(errs, "description", "must be a string or null");
        return;
    }
    const char *s = json_string_value(v);
    size_t len = json_string_length(v);
    if (utf8_count(s, len) > TODO_DESCRIPTION_MAX) {
        field_errors_add(errs, "description", "must be at most %d characters",
                         TODO_DESCRIPTION_MAX);
        return;
    }
    p->has_description = true;
    p->description = xstrndup(s, len);
}

static void decode_completed(json_t *root, enum todo_decode_mode mode, struct todo_patch *p,
                             struct field_errors *errs)
{
    json_t *v = json_object_get(root, "completed");
    if (!v) {
        p->has_completed = is_full(mode);
        p->completed = false;
        return;
    }
    if (json_is_null(v)) {
        field_errors_add(errs, "completed", "must not be null");
        return;
    }
    if (!json_is_boolean(v)) {
        field_errors_add(errs, "completed", "must be a boolean");
        return;
    }
    p->has_completed = true;
    p->completed = json_is_true(v);
}

int todo_patch_decode(const char *body, size_t len, enum todo_decode_mode mode,
                      struct todo_patch *out, struct json_error *jerr,
                      struct field_errors *errs)
{
    struct todo_patch p = {0};
    int rc;

    memset(out, 0, sizeof(*out));
    field_errors_init(errs);
    json_t *root = decode_object(body, len, jerr, errs, &rc);
    if (!root)
        return rc;
    decode_title(root, mode, &p, errs);
    decode_description(root, mode, &p, errs);
    decode_completed(root, mode, &p, errs);
    decode_unknown_fields(root, todo_fields, errs);
    json_decref(root);
    if (errs->count > 0) {
        todo_patch_free(&p);
        return TODO_EINVALID;
    }
    *out = p;
    return 0;
}

void todo_patch_free(struct todo_patch *p)
{
    if (!p)
        return;
    free(p->title);
    free(p->description);
    memset(p, 0, sizeof(*p));
}

void todo_init_new(struct todo *t, const char *id, const char *user_id,
                   const struct todo_patch *p, int64_t now_ms)
{
    memset(t, 0, sizeof(*t));
    snprintf(t->id, sizeof(t->id), "%s", id);
    snprintf(t->user_id, sizeof(t->user_id), "%s", user_id);
    t->title = p->title ? p->title : "";
    t->description = p->has_description ? p->description : NULL;
    t->completed = p->has_completed && p->completed;
    t->has_completed_at = t->completed;
    t->completed_at_ms = t->completed ? now_ms : 0;
    t->created_at_ms = now_ms;
    t->updated_at_ms = now_ms;
    t->version = 1;
}

static bool same_str(const char *a, const char *b)
{
    if (!a || !b)
        return a == b;
    return strcmp(a, b) == 0;
}

bool todo_apply(struct todo *t, const struct todo_patch *p, int64_t now_ms)
{
    bool title = p->has_title && p->title && !same_str(t->title, p->title);
    bool description = p->has_description && !same_str(t->description, p->description);
    bool completed = p->has_completed && t->completed != p->completed;
    if (!title && !description && !completed)
        return false;
    if (title)
        t->title = p->title;
    if (description)
        t->description = p->description;
    if (completed) {
        t->completed = p->completed;
        t->has_completed_at = p->completed;
        t->completed_at_ms = p->completed ? now_ms : 0;
    }
    t->updated_at_ms = now_ms;
    t->version++;
    return true;
}

#define APPEND_LIT(b, lit) buf_append((b), (lit), sizeof(lit) - 1)

static void append_time(struct buf *b, int64_t ms)
{
    char text[TIMEFMT_LEN + 3];
    text[0] = '"';
    timefmt_format(ms, text + 1);
    text[TIMEFMT_LEN + 1] = '"';
    buf_append(b, text, TIMEFMT_LEN + 2);
}

void todo_json_append(struct buf *b, const struct todo *t)
{
    APPEND_LIT(b, "{\"id\":\"");
    buf_append(b, t->id, strnlen(t->id, UUID_STR_LEN));
    APPEND_LIT(b, "\",\"title\":");
    buf_append_json_str(b, t->title ? t->title : "");
    APPEND_LIT(b, ",\"description\":");
    buf_append_json_str(b, t->description);
    if (t->completed)
        APPEND_LIT(b, ",\"completed\":true,\"completed_at\":");
    else
        APPEND_LIT(b, ",\"completed\":false,\"completed_at\":");
    if (t->has_completed_at)
        append_time(b, t->completed_at_ms);
    else
        APPEND_LIT(b, "null");
    APPEND_LIT(b, ",\"created_at\":");
    append_time(b, t->created_at_ms);
    APPEND_LIT(b, ",\"updated_at\":");
    append_time(b, t->updated_at_ms);
    APPEND_LIT(b, ",\"version\":");
    buf_append_int(b, t->version);
    buf_append_char(b, '}');
}
