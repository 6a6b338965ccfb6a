/* placeholder: to be written */
#include <criterion/criterion.h>
