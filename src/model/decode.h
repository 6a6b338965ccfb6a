/*
 * model/decode: the JSON-body helpers that model/todo and model/user share
 * (internal to model/). Pure; any thread.
 */
#ifndef TODO_MODEL_DECODE_H
#define TODO_MODEL_DECODE_H

#include <stddef.h>

#include <jansson.h>

#include "model/field_errors.h"
#include "model/todo.h"

/* Parse `body` (duplicate keys rejected) and require an object. Returns a new
 * reference (caller json_decref()s), or NULL with *rc = TODO_EJSON (`jerr`,
 * which may be NULL, says where) or TODO_EINVALID (an error on "body"). */
json_t *decode_object(const char *body, size_t len, struct json_error *jerr,
                      struct field_errors *errs, int *rc);

/* Add an "unknown field" error for each key of `obj` not in `known`
 * (NULL-terminated). */
void decode_unknown_fields(json_t *obj, const char *const *known, struct field_errors *errs);

#endif
