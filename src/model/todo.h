/*
 * model/todo: the todo record, its validation, its change rules and its JSON.
 *
 * Pure: no I/O, no globals, callable from any thread.
 *
 * Ownership: a `struct todo` never owns its strings; whoever fills it (the
 * store, or todo_init_new/todo_apply from a patch) says how long they live.
 * A `struct todo_patch` owns its strings; release them with todo_patch_free().
 *
 * Errors: decoders return 0, TODO_EJSON (malformed JSON: `jerr` says where) or
 * TODO_EINVALID (well-formed JSON with wrong fields: `errs` lists each field).
 */
#ifndef TODO_MODEL_TODO_H
#define TODO_MODEL_TODO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "model/field_errors.h"
#include "model/uuid.h"

struct buf;

#define TODO_TITLE_MAX 255         /* characters, after trimming */
#define TODO_DESCRIPTION_MAX 10000 /* characters */

#define TODO_EJSON (-1)
#define TODO_EINVALID (-2)

/* Where a malformed JSON body broke: byte offset and jansson's text. */
struct json_error {
    size_t position;
    char text[160];
};

struct todo {
    char id[UUID_STR_LEN + 1];      /* canonical lower-case */
    char user_id[UUID_STR_LEN + 1]; /* owner */
    const char *title;              /* never NULL */
    const char *description;        /* NULL means JSON null */
    bool completed;
    bool has_completed_at;          /* false: completed_at is null */
    int64_t completed_at_ms;        /* Unix epoch milliseconds, UTC */
    int64_t created_at_ms;
    int64_t updated_at_ms;
    int32_t version; /* 1 on creation, +1 per real change */
};

/* A set of field changes: a POST/PUT body (every field present, defaults
 * filled in) or a JSON merge patch (only the fields given). Owns its strings. */
struct todo_patch {
    bool has_title;
    bool has_description;
    bool has_completed;
    bool completed;
    char *title;       /* trimmed, validated */
    char *description; /* NULL with has_description: set to null */
};

enum todo_decode_mode {
    TODO_DECODE_CREATE,  /* POST: title required, others default */
    TODO_DECODE_REPLACE, /* PUT: same as create; omitted fields go back to defaults */
    TODO_DECODE_PATCH,   /* PATCH (RFC 7396): only the given fields */
};

/* Parse and validate a request body. On success fills `out` (free it with
 * todo_patch_free); on failure `out` holds nothing to free. */
__attribute__((warn_unused_result)) int todo_patch_decode(const char *body, size_t len,
                                                          enum todo_decode_mode mode,
                                                          struct todo_patch *out,
                                                          struct json_error *jerr,
                                                          struct field_errors *errs);
void todo_patch_free(struct todo_patch *p);

/* Fill `t` as a new todo from a complete patch (create or replace-as-create):
 * version 1, created_at = updated_at = now, completed_at = now if completed.
 * `t` borrows the patch's strings. */
void todo_init_new(struct todo *t, const char *id, const char *user_id,
                   const struct todo_patch *p, int64_t now_ms);

/* Apply a patch to `t` in place. Returns true when anything changed; then
 * updated_at = now, version + 1, and completed_at follows `completed` (set to
 * now when it becomes true, cleared when it becomes false). Returns false and
 * leaves `t` untouched on a no-op. `t` borrows the patch's strings. */
bool todo_apply(struct todo *t, const struct todo_patch *p, int64_t now_ms);

/* Append the todo's JSON object to `b`. */
void todo_json_append(struct buf *b, const struct todo *t);

#endif
