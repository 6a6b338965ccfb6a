#include "model/decode.h"

#include <stdio.h>
#include <string.h>

json_t *decode_object(const char *body, size_t len, struct json_error *jerr,
                      struct field_errors *errs, int *rc)
{
    json_error_t err;
    json_t *root = json_loadb(body ? body : "", body ? len : 0,
                              JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &err);
    if (!root) {
        if (jerr) {
            jerr->position = (size_t)err.position;
            snprintf(jerr->text, sizeof(jerr->text), "%s", err.text);
        }
        *rc = TODO_EJSON;
        return NULL;
    }
    if (!json_is_object(root)) {
        json_decref(root);
        field_errors_add(errs, "body", "must be a JSON object");
        *rc = TODO_EINVALID;
        return NULL;
    }
    *rc = 0;
    return root;
}

static bool is_known(const char *key, const char *const *known)
{
    for (; *known; known++)
        if (strcmp(key, *known) == 0)
            return true;
    return false;
}

void decode_unknown_fields(json_t *obj, const char *const *known, struct field_errors *errs)
{
    const char *key;
    json_t *value;
    json_object_foreach(obj, key, value) {
        (void)value;
        if (!is_known(key, known))
            field_errors_add(errs, key, "unknown field");
    }
}
