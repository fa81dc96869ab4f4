
/*
 * Copyright (C) client guard authors
 *
 * Fuzz target: client name normalisation (cg_name.h cg_name_normalize),
 * which every request, the configuration, Redis's definitions and the
 * status queries share.  The first byte is the room given; the name
 * must come out valid, the same length, lowercase, unchanged by a second
 * pass, and the same for the name in any case.
 */


#include "fuzz.h"
#include "cg_name.h"


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int             n, m;
    size_t          i, max;
    uint8_t        *src, *dst, *again;

    if (size == 0) {
        return 0;
    }

    max = data[0] % (CG_NAME_MAX + 1);
    data++;
    size--;

    src = cg_fuzz_copy(data, size);
    dst = malloc(max ? max : 1);
    again = malloc(max ? max : 1);
    cg_fuzz_check(dst != NULL && again != NULL);

    n = cg_name_normalize(dst, src, size, max);

    cg_fuzz_check(n == -1 || (n > 0 && (size_t) n == size && size <= max));

    if (n > 0) {
        for (i = 0; i < (size_t) n; i++) {
            cg_fuzz_check((dst[i] >= 'a' && dst[i] <= 'z')
                          || (dst[i] >= '0' && dst[i] <= '9')
                          || strchr("-_.:@", dst[i]) != NULL);
            cg_fuzz_check(dst[i] == src[i]
                          || (src[i] >= 'A' && src[i] <= 'Z'
                              && dst[i] == (src[i] | 0x20)));
        }

        m = cg_name_normalize(again, dst, n, max);
        cg_fuzz_check(m == n && memcmp(again, dst, n) == 0);

    } else {
        /* invalid in any case */

        for (i = 0; i < size; i++) {
            if (src[i] >= 'a' && src[i] <= 'z') {
                src[i] &= ~0x20;
            }
        }

        cg_fuzz_check(cg_name_normalize(again, src, size, max) == -1);
    }

    free(src);
    free(dst);
    free(again);

    return 0;
}
