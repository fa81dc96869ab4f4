
/*
 * Copyright (C) client guard authors
 *
 * cg_topn: the first N items of a stream in rank order, in bounded memory.
 *
 * Owns: a heap of at most N item pointers whose root is the item ranked
 * last, so that an item ranked before it replaces it in O(log N).  Rank
 * order is that of the status pages: the higher key first, then the name
 * in ngx_memn2cmp() order (all keys equal: by name).  No nginx runtime
 * calls, no allocation: the caller owns the items and the array of
 * pointers.  Unit tested in t/unit/test_cg_topn.c.
 */


#ifndef _CG_TOPN_H_INCLUDED_
#define _CG_TOPN_H_INCLUDED_


#include <stddef.h>
#include <stdint.h>


typedef struct {
    double                 key;        /* a number, never NaN */
    size_t                 len;
    const unsigned char   *name;
} cg_topn_item_t;


typedef struct {
    cg_topn_item_t       **heap;       /* "cap" slots */
    size_t                 n;
    size_t                 cap;
} cg_topn_t;


void cg_topn_init(cg_topn_t *t, cg_topn_item_t **slots, size_t cap);

/* 1 when item "a" ranks before item "b" */
int cg_topn_before(const cg_topn_item_t *a, const cg_topn_item_t *b);

/* 1 when an item of this key and name would be kept now */
int cg_topn_wants(const cg_topn_t *t, double key, const unsigned char *name,
    size_t len);

/*
 * Offers an item: returns NULL when it was kept in a free slot, the item
 * it pushed out when it was kept in place of another, or the item itself
 * when it was not kept.  What is returned belongs to the caller again.
 */
cg_topn_item_t *cg_topn_add(cg_topn_t *t, cg_topn_item_t *it);

/* the slots in rank order, first first; the heap is spent */
void cg_topn_sort(cg_topn_t *t);


#endif /* _CG_TOPN_H_INCLUDED_ */
