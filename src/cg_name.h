
/*
 * Copyright (C) client guard authors
 *
 * cg_name: what a client name is, and nothing else.
 *
 * Owns: the normalisation of a client name, the one rule that the
 * configuration, the requests (cg_identity), Redis's definitions and the
 * status queries share: ASCII letters are lowercased; letters, digits and
 * "-_.:@" are kept; anything else, an empty name, or one longer than the
 * room given makes it invalid.  Inline: every request goes through it.
 * Pure; unit tested in t/unit/test_cg_name.c.
 */


#ifndef _CG_NAME_H_INCLUDED_
#define _CG_NAME_H_INCLUDED_


#include <stddef.h>


#define CG_NAME_MAX         128


/* the length of the name written into dst (room for max), or -1 */

static inline int
cg_name_normalize(unsigned char *dst, const unsigned char *src, size_t len,
    size_t max)
{
    size_t         i;
    unsigned char  c;

    /* a byte as a name keeps it (lowercase), or 0 when no name may hold it */

    static const unsigned char  chars[256] = {
        ['-'] = '-', ['.'] = '.', ['0'] = '0', ['1'] = '1', ['2'] = '2',
        ['3'] = '3', ['4'] = '4', ['5'] = '5', ['6'] = '6', ['7'] = '7',
        ['8'] = '8', ['9'] = '9', [':'] = ':', ['@'] = '@', ['_'] = '_',

        ['A'] = 'a', ['B'] = 'b', ['C'] = 'c', ['D'] = 'd', ['E'] = 'e',
        ['F'] = 'f', ['G'] = 'g', ['H'] = 'h', ['I'] = 'i', ['J'] = 'j',
        ['K'] = 'k', ['L'] = 'l', ['M'] = 'm', ['N'] = 'n', ['O'] = 'o',
        ['P'] = 'p', ['Q'] = 'q', ['R'] = 'r', ['S'] = 's', ['T'] = 't',
        ['U'] = 'u', ['V'] = 'v', ['W'] = 'w', ['X'] = 'x', ['Y'] = 'y',
        ['Z'] = 'z',

        ['a'] = 'a', ['b'] = 'b', ['c'] = 'c', ['d'] = 'd', ['e'] = 'e',
        ['f'] = 'f', ['g'] = 'g', ['h'] = 'h', ['i'] = 'i', ['j'] = 'j',
        ['k'] = 'k', ['l'] = 'l', ['m'] = 'm', ['n'] = 'n', ['o'] = 'o',
        ['p'] = 'p', ['q'] = 'q', ['r'] = 'r', ['s'] = 's', ['t'] = 't',
        ['u'] = 'u', ['v'] = 'v', ['w'] = 'w', ['x'] = 'x', ['y'] = 'y',
        ['z'] = 'z'
    };

    if (len == 0 || len > max) {
        return -1;
    }

    for (i = 0; i < len; i++) {
        c = chars[src[i]];

        if (c == 0) {
            return -1;
        }

        dst[i] = c;
    }

    return (int) len;
}


#endif /* _CG_NAME_H_INCLUDED_ */
