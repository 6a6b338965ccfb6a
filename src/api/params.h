/*
 * api/params: query-string parsing for GET /api/v1/todos.
 *
 * Parameters: limit (1–1000, default 100), offset (>= 0, default 0),
 * completed (true|false), q (percent-decoded; '+' is a space; valid UTF-8,
 * at most 255 characters), sort (created_at, -created_at (default),
 * updated_at, -updated_at, title, -title). An unknown parameter, a repeated
 * one, or a bad value is an error naming the parameter.
 *
 * Pure; any thread. On success `out->q` points into `scratch` (owned by the
 * caller, at least `len + 1` bytes); `out->user_id` is left NULL.
 */
#ifndef TODO_API_PARAMS_H
#define TODO_API_PARAMS_H

#include <stddef.h>

#include "model/field_errors.h"
#include "store/store.h"

#define PARAMS_LIMIT_DEFAULT 100
#define PARAMS_LIMIT_MAX 1000
#define PARAMS_Q_MAX 255

/* Parse `qs[0..len)` (the part after '?', may be empty). Returns 0, or -1
 * with one entry per bad parameter in `errs` (field = the parameter name). */
__attribute__((warn_unused_result)) int params_todo_query(const char *qs, size_t len,
                                                          char *scratch, struct todo_query *out,
                                                          struct field_errors *errs);

#endif
