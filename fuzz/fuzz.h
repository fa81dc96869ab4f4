
/*
 * Copyright (C) client guard authors
 *
 * What the fuzz targets share: a check that ends the run (libFuzzer keeps
 * the input as a crash) when a parser breaks its contract, and a way to
 * cut an input into pieces.  See docs/internals.md, "Fuzzing".
 */


#ifndef _CG_FUZZ_H_INCLUDED_
#define _CG_FUZZ_H_INCLUDED_


#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>


#define cg_fuzz_check(cond)                                                  \
    do {                                                                      \
        if (!(cond)) {                                                        \
            fprintf(stderr, "%s:%d: broken: %s\n", __FILE__, __LINE__,        \
                    #cond);                                                   \
            abort();                                                          \
        }                                                                     \
    } while (0)


/*
 * The next piece of the input, up to a NUL byte (taken off) or its end:
 * 1 with the piece, 0 when nothing is left.
 */

static inline int
cg_fuzz_piece(const uint8_t **data, size_t *size, const uint8_t **p,
    size_t *len)
{
    const uint8_t  *nul;

    if (*size == 0) {
        return 0;
    }

    *p = *data;
    nul = memchr(*data, '\0', *size);
    *len = nul ? (size_t) (nul - *data) : *size;

    *data += *len + (nul != NULL);
    *size -= *len + (nul != NULL);

    return 1;
}


/* a copy of the input in a buffer of its own size, so ASan sees overreads */

static inline uint8_t *
cg_fuzz_copy(const uint8_t *data, size_t size)
{
    uint8_t  *p;

    p = malloc(size ? size : 1);
    cg_fuzz_check(p != NULL);
    memcpy(p, data, size);

    return p;
}


#endif /* _CG_FUZZ_H_INCLUDED_ */
