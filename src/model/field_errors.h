/*
 * model/field_errors: the {field, message} list that validation fills and
 * problem+json prints as `errors`.
 *
 * Fixed capacity, no allocation: adding past FIELD_ERRORS_MAX is ignored
 * (the first errors are the useful ones). Strings are copied in (truncated
 * to fit). Pure; any thread.
 */
#ifndef TODO_MODEL_FIELD_ERRORS_H
#define TODO_MODEL_FIELD_ERRORS_H

#include <stddef.h>

#define FIELD_ERRORS_MAX 16

struct field_error {
    char field[64];
    char message[160];
};

struct field_errors {
    size_t count;
    struct field_error items[FIELD_ERRORS_MAX];
};

void field_errors_init(struct field_errors *e);
void field_errors_add(struct field_errors *e, const char *field, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
