#include "model/field_errors.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

void field_errors_init(struct field_errors *e)
{
    e->count = 0;
}

void field_errors_add(struct field_errors *e, const char *field, const char *fmt, ...)
{
    if (e->count >= FIELD_ERRORS_MAX)
        return;
    struct field_error *item = &e->items[e->count++];
    snprintf(item->field, sizeof(item->field), "%s", field ? field : "");
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(item->message, sizeof(item->message), fmt, ap);
    va_end(ap);
}
