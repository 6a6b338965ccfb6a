#include <criterion/criterion.h>

#include <jansson.h>
#include <string.h>

#include "model/field_errors.h"
#include "model/timefmt.h"
#include "model/todo.h"
#include "util/buf.h"

/* ---- helpers ------------------------------------------------------------ */

static int decode(const char *body, enum todo_decode_mode mode, struct todo_patch *p,
                  struct json_error *jerr, struct field_errors *errs)
{
    return todo_patch_decode(body, strlen(body), mode, p, jerr, errs);
}

/* The message recorded for `field`, or NULL. */
static const char *error_for(const struct field_errors *e, const char *field)
{
    for (size_t i = 0; i < e->count; i++)
        if (strcmp(e->items[i].field, field) == 0)
            return e->items[i].message;
    return NULL;
}

static char *repeat(const char *unit, size_t n)
{
    size_t ul = strlen(unit);
    char *s = malloc(ul * n + 1);
    cr_assert_not_null(s);
    for (size_t i = 0; i < n; i++)
        memcpy(s + i * ul, unit, ul);
    s[ul * n] = '\0';
    return s;
}

/* {"title": "<unit × n>"} */
static char *title_body(const char *unit, size_t n)
{
    char *t = repeat(unit, n);
    size_t len = strlen(t) + 32;
    char *body = malloc(len);
    cr_assert_not_null(body);
    snprintf(body, len, "{\"title\":\"%s\"}", t);
    free(t);
    return body;
}

/* ---- field_errors -------------------------------------------------------- */

Test(field_errors, add_formats_and_caps)
{
    struct field_errors e;
    field_errors_init(&e);
    cr_expect_eq(e.count, 0);
    field_errors_add(&e, "title", "must be at most %d characters", 255);
    cr_assert_eq(e.count, 1);
    cr_expect_str_eq(e.items[0].field, "title");
    cr_expect_str_eq(e.items[0].message, "must be at most 255 characters");
    for (int i = 0; i < 40; i++)
        field_errors_add(&e, "x", "n=%d", i);
    cr_expect_eq(e.count, FIELD_ERRORS_MAX);
    cr_expect_str_eq(e.items[FIELD_ERRORS_MAX - 1].message, "n=14");
}

Test(field_errors, long_strings_truncated)
{
    struct field_errors e;
    char longf[200];
    memset(longf, 'f', sizeof(longf) - 1);
    longf[sizeof(longf) - 1] = '\0';
    field_errors_init(&e);
    field_errors_add(&e, longf, "%s%s", longf, longf);
    cr_assert_eq(e.count, 1);
    cr_expect_eq(strlen(e.items[0].field), sizeof(e.items[0].field) - 1);
    cr_expect_eq(strlen(e.items[0].message), sizeof(e.items[0].message) - 1);
}

/* ---- decode: success ---------------------------------------------------- */

Test(todo_decode, create_minimal_fills_defaults)
{
    struct todo_patch p;
    struct json_error jerr;
    struct field_errors errs;
    cr_assert_eq(decode("{\"title\":\"Buy milk\"}", TODO_DECODE_CREATE, &p, &jerr, &errs), 0);
    cr_expect(p.has_title);
    cr_expect_str_eq(p.title, "Buy milk");
    cr_expect(p.has_description);
    cr_expect_null(p.description);
    cr_expect(p.has_completed);
    cr_expect_not(p.completed);
    cr_expect_eq(errs.count, 0);
    todo_patch_free(&p);
}

Test(todo_decode, create_full)
{
    struct todo_patch p;
    struct json_error jerr;
    struct field_errors errs;
    int rc = decode("{\"title\":\"t\",\"description\":\"  d \\n\",\"completed\":true}",
                    TODO_DECODE_CREATE, &p, &jerr, &errs);
    cr_assert_eq(rc, 0);
    cr_expect_str_eq(p.title, "t");
    cr_expect_str_eq(p.description, "  d \n"); /* kept as given */
    cr_expect(p.completed);
    todo_patch_free(&p);
}

Test(todo_decode, replace_resets_omitted_fields)
{
    struct todo_patch p;
    struct json_error jerr;
    struct field_errors errs;
    cr_assert_eq(decode("{\"title\":\"x\"}", TODO_DECODE_REPLACE, &p, &jerr, &errs), 0);
    cr_expect(p.has_description && p.description == NULL);
    cr_expect(p.has_completed && !p.completed);
    todo_patch_free(&p);
}

Test(todo_decode, title_trimmed)
{
    struct todo_patch p;
    struct json_error jerr;
    struct field_errors errs;
    cr_assert_eq(decode("{\"title\":\" \\t\\r\\n Buy milk \\u00a0\\u3000\"}", TODO_DECODE_CREATE,
                        &p, &jerr, &errs),
                 0);
    cr_expect_str_eq(p.title, "Buy milk");
    todo_patch_free(&p);
}

Test(todo_decode, patch_only_given_fields)
{
    struct todo_patch p;
    struct json_error jerr;
    struct field_errors errs;
    cr_assert_eq(decode("{\"completed\":true}", TODO_DECODE_PATCH, &p, &jerr, &errs), 0);
    cr_expect_not(p.has_title);
    cr_expect_not(p.has_description);
    cr_expect(p.has_completed && p.completed);
    todo_patch_free(&p);

    cr_assert_eq(decode("{}", TODO_DECODE_PATCH, &p, &jerr, &errs), 0);
    cr_expect_not(p.has_title || p.has_description || p.has_completed);
    todo_patch_free(&p);
}

Test(todo_decode, patch_description_null_sets_null)
{
    struct todo_patch p;
    struct json_error jerr;
    struct field_errors errs;
    cr_assert_eq(decode("{\"description\":null}", TODO_DECODE_PATCH, &p, &jerr, &errs), 0);
    cr_expect(p.has_description);
    cr_expect_null(p.description);
    todo_patch_free(&p);
}

Test(todo_decode, title_255_multibyte_ok_256_not)
{
    struct todo_patch p;
    struct json_error jerr;
    struct field_errors errs;
    char *body = title_body("\xc3\xa9", 255); /* é: 2 bytes, 1 character */
    cr_assert_eq(decode(body, TODO_DECODE_CREATE, &p, &jerr, &errs), 0);
    cr_expect_eq(strlen(p.title), 510);
    todo_patch_free(&p);
    free(body);

    body = title_body("\xc3\xa9", 256);
    cr_assert_eq(decode(body, TODO_DECODE_CREATE, &p, &jerr, &errs), TODO_EINVALID);
    cr_expect_str_eq(error_for(&errs, "title"), "must be at most 255 characters");
    free(body);

    body = title_body("\xf0\x9f\x99\x82", 255); /* 4-byte emoji */
    cr_expect_eq(decode(body, TODO_DECODE_CREATE, &p, &jerr, &errs), 0);
    todo_patch_free(&p);
    free(body);
}

Test(todo_decode, title_length_counted_after_trim)
{
    struct todo_patch p;
    struct json_error jerr;
    struct field_errors errs;
    char *t = repeat("a", 255);
    char body[400];
    snprintf(body, sizeof(body), "{\"title\":\"   %s   \"}", t);
    free(t);
    cr_assert_eq(decode(body, TODO_DECODE_CREATE, &p, &jerr, &errs), 0);
    cr_expect_eq(strlen(p.title), 255);
    todo_patch_free(&p);
}

Test(todo_decode, description_limit_in_characters)
{
    struct todo_patch p;
    struct json_error jerr;
    struct field_errors errs;
    char *d = repeat("\xe6\x97\xa5", 10000);
    size_t len = strlen(d) + 64;
    char *body = malloc(len);
    snprintf(body, len, "{\"title\":\"t\",\"description\":\"%s\"}", d);
    cr_expect_eq(decode(body, TODO_DECODE_CREATE, &p, &jerr, &errs), 0);
    todo_patch_free(&p);
    free(body);
    free(d);

    d = repeat("x", 10001);
    len = strlen(d) + 64;
    body = malloc(len);
    snprintf(body, len, "{\"title\":\"t\",\"description\":\"%s\"}", d);
    cr_expect_eq(decode(body, TODO_DECODE_CREATE, &p, &jerr, &errs), TODO_EINVALID);
    cr_expect_str_eq(error_for(&errs, "description"), "must be at most 10000 characters");
    free(body);
    free(d);
}

/* ---- decode: errors ----------------------------------------------------- */

Test(todo_decode, malformed_json_reports_offset)
{
    struct todo_patch p;
    struct json_error jerr = {0};
    struct field_errors errs;
    const char *body = "{\"title\": \"x\",}";
    cr_expect_eq(decode(body, TODO_DECODE_CREATE, &p, &jerr, &errs), TODO_EJSON);
    cr_expect_gt(jerr.position, 10);
    cr_expect_leq(jerr.position, strlen(body));
    cr_expect_neq(jerr.text[0], '\0');
    cr_expect_null(p.title);

    cr_expect_eq(decode("", TODO_DECODE_CREATE, &p, &jerr, &errs), TODO_EJSON);
    cr_expect_eq(decode("{\"title\":\"x\"} trailing", TODO_DECODE_CREATE, &p, &jerr, &errs),
                 TODO_EJSON);
}

Test(todo_decode, invalid_utf8_is_malformed)
{
    struct todo_patch p;
    struct json_error jerr;
    struct field_errors errs;
    cr_expect_eq(decode("{\"title\":\"\xff\"}", TODO_DECODE_CREATE, &p, &jerr, &errs), TODO_EJSON);
    cr_expect_eq(decode("{\"title\":\"a\\u0000b\"}", TODO_DECODE_CREATE, &p, &jerr, &errs),
                 TODO_EJSON);
}

Test(todo_decode, duplicate_keys_rejected)
{
    struct todo_patch p;
    struct json_error jerr;
    struct field_errors errs;
    cr_expect_eq(decode("{\"title\":\"a\",\"title\":\"b\"}", TODO_DECODE_CREATE, &p, &jerr, &errs),
                 TODO_EJSON);
}

Test(todo_decode, non_object_body_is_422_on_body)
{
    const char *bodies[] = {"[]", "[{\"title\":\"x\"}]", "\"x\"", "42", "null", "true"};
    for (size_t i = 0; i < sizeof(bodies) / sizeof(bodies[0]); i++) {
        struct todo_patch p;
        struct json_error jerr;
        struct field_errors errs;
        cr_expect_eq(decode(bodies[i], TODO_DECODE_CREATE, &p, &jerr, &errs), TODO_EINVALID,
                     "%s", bodies[i]);
        cr_expect_eq(errs.count, 1);
        cr_expect_not_null(error_for(&errs, "body"), "%s", bodies[i]);
    }
}

Test(todo_decode, unknown_fields_each_reported)
{
    struct todo_patch p;
    struct json_error jerr;
    struct field_errors errs;
    cr_expect_eq(decode("{\"title\":\"x\",\"foo\":1,\"bar\":null}", TODO_DECODE_CREATE, &p, &jerr,
                        &errs),
                 TODO_EINVALID);
    cr_expect_eq(errs.count, 2);
    cr_expect_str_eq(error_for(&errs, "foo"), "unknown field");
    cr_expect_str_eq(error_for(&errs, "bar"), "unknown field");
    cr_expect_null(p.title);
    cr_expect_eq(decode("{\"id\":\"x\"}", TODO_DECODE_PATCH, &p, &jerr, &errs), TODO_EINVALID);
    cr_expect_str_eq(error_for(&errs, "id"), "unknown field");
}

Test(todo_decode, all_errors_collected)
{
    struct todo_patch p;
    struct json_error jerr;
    struct field_errors errs;
    int rc = decode("{\"title\":5,\"description\":[],\"completed\":\"yes\",\"x\":0}",
                    TODO_DECODE_CREATE, &p, &jerr, &errs);
    cr_assert_eq(rc, TODO_EINVALID);
    cr_expect_eq(errs.count, 4);
    cr_expect_str_eq(error_for(&errs, "title"), "must be a string");
    cr_expect_str_eq(error_for(&errs, "description"), "must be a string or null");
    cr_expect_str_eq(error_for(&errs, "completed"), "must be a boolean");
    cr_expect_str_eq(error_for(&errs, "x"), "unknown field");
}

Test(todo_decode, title_required_for_create_and_replace)
{
    enum todo_decode_mode modes[] = {TODO_DECODE_CREATE, TODO_DECODE_REPLACE};
    for (size_t i = 0; i < 2; i++) {
        struct todo_patch p;
        struct json_error jerr;
        struct field_errors errs;
        cr_expect_eq(decode("{\"completed\":true}", modes[i], &p, &jerr, &errs), TODO_EINVALID);
        cr_expect_str_eq(error_for(&errs, "title"), "is required");
    }
}

Test(todo_decode, null_title_and_completed_rejected_in_every_mode)
{
    enum todo_decode_mode modes[] = {TODO_DECODE_CREATE, TODO_DECODE_REPLACE, TODO_DECODE_PATCH};
    for (size_t i = 0; i < 3; i++) {
        struct todo_patch p;
        struct json_error jerr;
        struct field_errors errs;
        cr_expect_eq(decode("{\"title\":null}", modes[i], &p, &jerr, &errs), TODO_EINVALID);
        cr_expect_not_null(error_for(&errs, "title"), "mode %zu", i);
        cr_expect_eq(decode("{\"title\":\"x\",\"completed\":null}", modes[i], &p, &jerr, &errs),
                     TODO_EINVALID);
        cr_expect_not_null(error_for(&errs, "completed"), "mode %zu", i);
        cr_expect_null(error_for(&errs, "title"));
    }
}

Test(todo_decode, empty_or_blank_title_rejected)
{
    const char *bodies[] = {"{\"title\":\"\"}", "{\"title\":\"   \"}",
                            "{\"title\":\"\\t\\n\\u2028\"}"};
    for (size_t i = 0; i < 3; i++) {
        struct todo_patch p;
        struct json_error jerr;
        struct field_errors errs;
        cr_expect_eq(decode(bodies[i], TODO_DECODE_PATCH, &p, &jerr, &errs), TODO_EINVALID);
        cr_expect_str_eq(error_for(&errs, "title"), "must not be empty");
    }
}

Test(todo_decode, completed_must_be_boolean)
{
    const char *bodies[] = {"{\"title\":\"t\",\"completed\":1}",
                            "{\"title\":\"t\",\"completed\":\"true\"}",
                            "{\"title\":\"t\",\"completed\":{}}"};
    for (size_t i = 0; i < 3; i++) {
        struct todo_patch p;
        struct json_error jerr;
        struct field_errors errs;
        cr_expect_eq(decode(bodies[i], TODO_DECODE_CREATE, &p, &jerr, &errs), TODO_EINVALID);
        cr_expect_str_eq(error_for(&errs, "completed"), "must be a boolean");
    }
}

/* ---- init / apply ------------------------------------------------------- */

#define ID "0190a0b0-c0d0-7e0f-8a1b-2c3d4e5f6a7b"
#define UID "0190a0b0-c0d0-7e0f-8a1b-000000000001"

/* The todo borrows the title: keep it in static storage. */
static char make_todo_title[] = "Title";

static struct todo make_todo(bool completed)
{
    struct todo_patch p = {
        .has_title = true, .title = make_todo_title,
        .has_description = true, .description = NULL,
        .has_completed = true, .completed = completed,
    };
    struct todo t;
    todo_init_new(&t, ID, UID, &p, 1000);
    return t;
}

Test(todo_init, new_todo)
{
    struct todo t = make_todo(false);
    cr_expect_str_eq(t.id, ID);
    cr_expect_str_eq(t.user_id, UID);
    cr_expect_str_eq(t.title, "Title");
    cr_expect_null(t.description);
    cr_expect_not(t.completed);
    cr_expect_not(t.has_completed_at);
    cr_expect_eq(t.created_at_ms, 1000);
    cr_expect_eq(t.updated_at_ms, 1000);
    cr_expect_eq(t.version, 1);

    t = make_todo(true);
    cr_expect(t.completed);
    cr_expect(t.has_completed_at);
    cr_expect_eq(t.completed_at_ms, 1000);
}

Test(todo_apply, no_op_leaves_todo_untouched)
{
    struct todo t = make_todo(false);
    struct todo before = t;
    struct todo_patch p = {
        .has_title = true, .title = (char[]){"Title"},
        .has_description = true, .description = NULL,
        .has_completed = true, .completed = false,
    };
    cr_expect_not(todo_apply(&t, &p, 5000));
    cr_expect_eq(memcmp(&t, &before, sizeof(t)), 0);

    struct todo_patch empty = {0};
    cr_expect_not(todo_apply(&t, &empty, 5000));
    cr_expect_eq(memcmp(&t, &before, sizeof(t)), 0);
}

Test(todo_apply, same_description_text_is_no_op)
{
    struct todo t = make_todo(false);
    t.description = "same";
    struct todo before = t;
    char copy[] = "same";
    struct todo_patch p = {.has_description = true, .description = copy};
    cr_expect_not(todo_apply(&t, &p, 5000));
    cr_expect_eq(memcmp(&t, &before, sizeof(t)), 0);
}

Test(todo_apply, change_bumps_version_and_updated_at)
{
    struct todo t = make_todo(false);
    struct todo_patch p = {.has_title = true, .title = (char[]){"New"}};
    cr_expect(todo_apply(&t, &p, 5000));
    cr_expect_str_eq(t.title, "New");
    cr_expect_eq(t.version, 2);
    cr_expect_eq(t.updated_at_ms, 5000);
    cr_expect_eq(t.created_at_ms, 1000);
    cr_expect_not(t.has_completed_at);
}

Test(todo_apply, description_null_transitions)
{
    struct todo t = make_todo(false);
    struct todo_patch set = {.has_description = true, .description = (char[]){"d"}};
    cr_expect(todo_apply(&t, &set, 2000));
    cr_expect_str_eq(t.description, "d");
    struct todo_patch clear = {.has_description = true, .description = NULL};
    cr_expect(todo_apply(&t, &clear, 3000));
    cr_expect_null(t.description);
    cr_expect_eq(t.version, 3);
    cr_expect_not(todo_apply(&t, &clear, 4000));
    cr_expect_eq(t.version, 3);
}

Test(todo_apply, completed_at_transitions)
{
    struct todo t = make_todo(false);
    struct todo_patch done = {.has_completed = true, .completed = true};
    struct todo_patch undone = {.has_completed = true, .completed = false};
    struct todo_patch retitle = {.has_title = true, .title = (char[]){"Other"}};

    cr_expect(todo_apply(&t, &done, 2000));
    cr_expect(t.completed && t.has_completed_at);
    cr_expect_eq(t.completed_at_ms, 2000);

    /* Another change while completed keeps completed_at. */
    cr_expect(todo_apply(&t, &retitle, 3000));
    cr_expect(t.has_completed_at);
    cr_expect_eq(t.completed_at_ms, 2000);
    cr_expect_eq(t.updated_at_ms, 3000);

    /* completed: true again is a no-op. */
    cr_expect_not(todo_apply(&t, &done, 4000));
    cr_expect_eq(t.completed_at_ms, 2000);

    cr_expect(todo_apply(&t, &undone, 5000));
    cr_expect_not(t.completed);
    cr_expect_not(t.has_completed_at);
    cr_expect_eq(t.version, 4);
}

/* ---- JSON output -------------------------------------------------------- */

Test(todo_json, exact_shape)
{
    struct todo t = make_todo(false);
    t.created_at_ms = 1763709226123; /* 2025-11-21T07:13:46.123Z */
    t.updated_at_ms = 1763709226124;
    struct buf b;
    buf_init(&b, 4096);
    todo_json_append(&b, &t);
    cr_expect_str_eq(b.data,
                     "{\"id\":\"" ID "\",\"title\":\"Title\",\"description\":null,"
                     "\"completed\":false,\"completed_at\":null,"
                     "\"created_at\":\"2025-11-21T07:13:46.123Z\","
                     "\"updated_at\":\"2025-11-21T07:13:46.124Z\",\"version\":1}");
    buf_free(&b);
}

Test(todo_json, escaping_and_completed_round_trip_through_jansson)
{
    struct todo t = make_todo(true);
    t.title = "quote \" back \\ nl \n tab \t ctl \x01 caf\xc3\xa9 \xf0\x9f\x99\x82";
    t.description = "</script>";
    t.completed_at_ms = 0;
    t.version = 42;
    struct buf b;
    buf_init(&b, 4096);
    todo_json_append(&b, &t);
    json_error_t err;
    json_t *root = json_loadb(b.data, b.len, JSON_REJECT_DUPLICATES, &err);
    cr_assert_not_null(root, "invalid JSON: %s (%s)", b.data, err.text);
    cr_expect_eq(json_object_size(root), 8);
    cr_expect_str_eq(json_string_value(json_object_get(root, "title")), t.title);
    cr_expect_str_eq(json_string_value(json_object_get(root, "description")), "</script>");
    cr_expect(json_is_true(json_object_get(root, "completed")));
    cr_expect_str_eq(json_string_value(json_object_get(root, "completed_at")),
                     "1970-01-01T00:00:00.000Z");
    cr_expect_eq(json_integer_value(json_object_get(root, "version")), 42);
    json_decref(root);
    cr_expect_not_null(strstr(b.data, "\\u0001"));
    cr_expect_not_null(strstr(b.data, "\\u000a"));
    buf_free(&b);
}

Test(todo_json, appends_after_existing_content)
{
    struct todo t = make_todo(false);
    struct buf b;
    buf_init(&b, 4096);
    buf_append_str(&b, "[");
    todo_json_append(&b, &t);
    buf_append_str(&b, ",");
    todo_json_append(&b, &t);
    buf_append_str(&b, "]");
    json_error_t err;
    json_t *root = json_loadb(b.data, b.len, 0, &err);
    cr_assert_not_null(root);
    cr_expect_eq(json_array_size(root), 2);
    json_decref(root);
    buf_free(&b);
}
