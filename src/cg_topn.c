
/*
 * Copyright (C) client guard authors
 *
 * The first N items of a stream in rank order.  See cg_topn.h.
 */


#include <string.h>

#include "cg_topn.h"


void
cg_topn_init(cg_topn_t *t, cg_topn_item_t **slots, size_t cap)
{
    t->heap = slots;
    t->n = 0;
    t->cap = cap;
}


static int
cg_topn_cmp(double ka, const unsigned char *na, size_t la,
    const cg_topn_item_t *b)
{
    int  rc;

    if (ka != b->key) {
        return (ka > b->key) ? -1 : 1;
    }

    /* ngx_memn2cmp(): the common part, then the shorter first */

    rc = memcmp(na, b->name, la < b->len ? la : b->len);

    if (rc != 0) {
        return rc;
    }

    return (la == b->len) ? 0 : ((la < b->len) ? -1 : 1);
}


int
cg_topn_before(const cg_topn_item_t *a, const cg_topn_item_t *b)
{
    return cg_topn_cmp(a->key, a->name, a->len, b) < 0;
}


int
cg_topn_wants(const cg_topn_t *t, double key, const unsigned char *name,
    size_t len)
{
    if (t->n < t->cap) {
        return 1;
    }

    return t->cap && cg_topn_cmp(key, name, len, t->heap[0]) < 0;
}


/* the root ranks last of slots 0 .. n-1 */

static void
cg_topn_down(cg_topn_item_t **h, size_t n, size_t i)
{
    size_t           c;
    cg_topn_item_t  *it;

    it = h[i];

    for ( ;; ) {
        c = 2 * i + 1;

        if (c >= n) {
            break;
        }

        if (c + 1 < n && cg_topn_before(h[c], h[c + 1])) {
            c++;
        }

        if (!cg_topn_before(it, h[c])) {
            break;
        }

        h[i] = h[c];
        i = c;
    }

    h[i] = it;
}


cg_topn_item_t *
cg_topn_add(cg_topn_t *t, cg_topn_item_t *it)
{
    size_t           i, p;
    cg_topn_item_t  *out;

    if (t->n < t->cap) {
        i = t->n++;

        while (i > 0) {
            p = (i - 1) / 2;

            if (!cg_topn_before(t->heap[p], it)) {
                break;
            }

            t->heap[i] = t->heap[p];
            i = p;
        }

        t->heap[i] = it;

        return NULL;
    }

    if (t->cap == 0 || !cg_topn_before(it, t->heap[0])) {
        return it;
    }

    out = t->heap[0];
    t->heap[0] = it;
    cg_topn_down(t->heap, t->n, 0);

    return out;
}


void
cg_topn_sort(cg_topn_t *t)
{
    size_t           end;
    cg_topn_item_t  *it;

    /* heap sort: the last ranked goes to the end, and so on */

    for (end = t->n; end > 1; end--) {
        it = t->heap[0];
        t->heap[0] = t->heap[end - 1];
        t->heap[end - 1] = it;
        cg_topn_down(t->heap, end - 1, 0);
    }
}
