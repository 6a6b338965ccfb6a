/*
 * Fuzz target: todo request bodies (POST/PUT/PATCH) through
 * todo_patch_decode() in all three modes, then todo_init_new()/todo_apply()
 * and todo_json_append() on the result. The JSON written must parse back
 * (jansson) to exactly the todo's fields, and the change rules must hold.
 */
#include <stdbool.h>

#include <jansson.h>

#include "fuzz.h"
#include "model/timefmt.h"
#include "model/todo.h"
#include "util/buf.h"
#include "util/utf8.h"

#define NOW_MS INT64_C(1795245226123) /* 2026-11-21T07:13:46.123Z */
#define TODO_ID "0190a0b0-c0d0-7e0f-8a1b-2c3d4e5f6a7b"
#define USER_ID "0190a0b0-c0d0-7e0f-8a1b-2c3d4e5f6a7c"

static bool same_str(const char *a, const char *b)
{
    return a && b ? strcmp(a, b) == 0 : a == b;
}

static bool json_str_is(json_t *v, const char *s)
{
    return json_is_string(v) && json_string_length(v) == strlen(s) &&
           memcmp(json_string_value(v), s, strlen(s)) == 0;
}

static void check_time(json_t *v, int64_t ms)
{
    int64_t back;
    FUZZ_CHECK(json_is_string(v) && json_string_length(v) == TIMEFMT_LEN);
    FUZZ_CHECK(timefmt_parse(json_string_value(v), TIMEFMT_LEN, &back) == 0 && back == ms);
}

/* The todo's JSON must be one valid object holding exactly its fields. */
static void check_json(const struct todo *t)
{
    struct buf b;
    json_error_t err;

    buf_init(&b, 1 << 20);
    todo_json_append(&b, t);
    FUZZ_CHECK(!b.overflow && b.data && strlen(b.data) == b.len);
    FUZZ_CHECK(utf8_valid(b.data, b.len));
    json_t *o = json_loadb(b.data, b.len, JSON_REJECT_DUPLICATES, &err);
    if (!o)
        fprintf(stderr, "invalid JSON (%s at %d): %s\n", err.text, err.position, b.data);
    FUZZ_CHECK(json_is_object(o) && json_object_size(o) == 8);
    FUZZ_CHECK(json_str_is(json_object_get(o, "id"), t->id));
    FUZZ_CHECK(json_str_is(json_object_get(o, "title"), t->title));
    json_t *d = json_object_get(o, "description");
    FUZZ_CHECK(t->description ? json_str_is(d, t->description) : json_is_null(d));
    FUZZ_CHECK(json_is_boolean(json_object_get(o, "completed")));
    FUZZ_CHECK(json_is_true(json_object_get(o, "completed")) == t->completed);
    if (t->has_completed_at)
        check_time(json_object_get(o, "completed_at"), t->completed_at_ms);
    else
        FUZZ_CHECK(json_is_null(json_object_get(o, "completed_at")));
    check_time(json_object_get(o, "created_at"), t->created_at_ms);
    check_time(json_object_get(o, "updated_at"), t->updated_at_ms);
    json_t *v = json_object_get(o, "version");
    FUZZ_CHECK(json_is_integer(v) && json_integer_value(v) == t->version);
    json_decref(o);
    buf_free(&b);
}

static void check_text(const char *s, size_t max_chars)
{
    size_t len = strlen(s);
    FUZZ_CHECK(utf8_valid(s, len) && utf8_count(s, len) <= max_chars);
}

static void check_patch(const struct todo_patch *p, enum todo_decode_mode mode)
{
    if (mode != TODO_DECODE_PATCH)
        FUZZ_CHECK(p->has_title && p->has_description && p->has_completed);
    FUZZ_CHECK(p->has_title == (p->title != NULL));
    if (p->title) {
        size_t len = strlen(p->title), start, end;
        check_text(p->title, TODO_TITLE_MAX);
        utf8_trim(p->title, len, &start, &end);
        FUZZ_CHECK(len > 0 && start == 0 && end == len);
    }
    if (p->description) {
        FUZZ_CHECK(p->has_description);
        check_text(p->description, TODO_DESCRIPTION_MAX);
    }
}

static void check_failure(int rc, size_t size, const struct todo_patch *p,
                          const struct json_error *jerr, const struct field_errors *errs)
{
    FUZZ_CHECK(rc == TODO_EJSON || rc == TODO_EINVALID);
    FUZZ_CHECK(!p->title && !p->description);
    if (rc == TODO_EJSON) {
        FUZZ_CHECK(jerr->position <= size && memchr(jerr->text, '\0', sizeof(jerr->text)));
        return;
    }
    FUZZ_CHECK(errs->count > 0 && errs->count <= FIELD_ERRORS_MAX);
    for (size_t i = 0; i < errs->count; i++)
        FUZZ_CHECK(memchr(errs->items[i].field, '\0', sizeof(errs->items[i].field)) &&
                   errs->items[i].message[0] != '\0');
}

/* Apply `p` to a copy of `base`: the change rules of model/todo.h. */
static void check_apply(const struct todo *base, const struct todo_patch *p)
{
    struct todo t = *base;
    if (!todo_apply(&t, p, NOW_MS)) {
        FUZZ_CHECK(memcmp(&t, base, sizeof(t)) == 0);
        return;
    }
    FUZZ_CHECK(t.version == base->version + 1 && t.updated_at_ms == NOW_MS);
    FUZZ_CHECK(t.created_at_ms == base->created_at_ms && strcmp(t.id, base->id) == 0);
    FUZZ_CHECK(!same_str(t.title, base->title) || !same_str(t.description, base->description) ||
               t.completed != base->completed);
    if (p->has_title)
        FUZZ_CHECK(strcmp(t.title, p->title) == 0);
    if (p->has_description)
        FUZZ_CHECK(same_str(t.description, p->description));
    if (p->has_completed)
        FUZZ_CHECK(t.completed == p->completed);
    if (t.completed != base->completed)
        FUZZ_CHECK(t.has_completed_at == t.completed &&
                   (!t.completed || t.completed_at_ms == NOW_MS));
    else
        FUZZ_CHECK(t.has_completed_at == base->has_completed_at &&
                   t.completed_at_ms == base->completed_at_ms);
    check_json(&t);
    /* The same patch again is a no-op. */
    struct todo again = t;
    FUZZ_CHECK(!todo_apply(&again, p, NOW_MS + 1));
}

static const struct todo bases[] = {
    {TODO_ID, USER_ID, "Buy milk", NULL, false, false, 0, 1000, 2000, 1},
    {TODO_ID, USER_ID, "Übung \"1\"", "two\nlines", true, true, 1500, -5000, 2000, 41},
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *body = (const char *)data;
    for (int m = TODO_DECODE_CREATE; m <= TODO_DECODE_PATCH; m++) {
        enum todo_decode_mode mode = (enum todo_decode_mode)m;
        struct todo_patch p;
        struct json_error jerr;
        struct field_errors errs;
        int rc = todo_patch_decode(body, size, mode, &p, &jerr, &errs);
        if (rc != 0) {
            check_failure(rc, size, &p, &jerr, &errs);
            continue;
        }
        FUZZ_CHECK(errs.count == 0);
        check_patch(&p, mode);
        if (mode != TODO_DECODE_PATCH) {
            struct todo t;
            todo_init_new(&t, TODO_ID, USER_ID, &p, NOW_MS);
            FUZZ_CHECK(t.version == 1 && t.created_at_ms == NOW_MS && t.updated_at_ms == NOW_MS);
            FUZZ_CHECK(t.has_completed_at == t.completed);
            check_json(&t);
        }
        for (size_t i = 0; i < sizeof(bases) / sizeof(bases[0]); i++)
            check_apply(&bases[i], &p);
        todo_patch_free(&p);
    }
    return 0;
}
