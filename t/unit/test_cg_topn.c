
/*
 * Unit tests of src/cg_topn.c: the first N of a stream in rank order.
 */

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "cg_topn.h"


#define NITEMS  3000

typedef struct {
    cg_topn_item_t  item;
    unsigned char   name[16];
} item_t;


static item_t          items[NITEMS];
static cg_topn_item_t  *slots[NITEMS];
static cg_topn_item_t  *ref[NITEMS];


static int
ref_cmp(const void *one, const void *two)
{
    const cg_topn_item_t  *a = *(cg_topn_item_t * const *) one;
    const cg_topn_item_t  *b = *(cg_topn_item_t * const *) two;

    if (cg_topn_before(a, b)) {
        return -1;
    }

    return cg_topn_before(b, a) ? 1 : 0;
}


/* the order written out again, without cg_topn: higher key, then name */

static int
own_cmp(const void *one, const void *two)
{
    int                    rc;
    size_t                 len;
    const cg_topn_item_t  *a = *(cg_topn_item_t * const *) one;
    const cg_topn_item_t  *b = *(cg_topn_item_t * const *) two;

    if (a->key > b->key) {
        return -1;
    }

    if (a->key < b->key) {
        return 1;
    }

    len = a->len < b->len ? a->len : b->len;
    rc = memcmp(a->name, b->name, len);

    if (rc != 0) {
        return rc;
    }

    return (a->len > b->len) - (a->len < b->len);
}


static void
make(size_t n, unsigned seed, uint64_t keys)
{
    size_t  i;

    srand(seed);

    for (i = 0; i < n; i++) {
        items[i].item.key = (double) ((uint64_t) rand() % keys);
        items[i].item.len = (size_t) snprintf((char *) items[i].name,
                                              sizeof(items[i].name), "c-%zu",
                                              i);
        items[i].item.name = items[i].name;
        ref[i] = &items[i].item;
    }

    qsort(ref, n, sizeof(ref[0]), ref_cmp);
}


static void
check(size_t n, size_t cap)
{
    size_t           i, kept;
    cg_topn_t        t;
    cg_topn_item_t  *out;

    cg_topn_init(&t, slots, cap);
    kept = 0;

    for (i = 0; i < n; i++) {
        int  want = cg_topn_wants(&t, items[i].item.key, items[i].name,
                                  items[i].item.len);

        out = cg_topn_add(&t, &items[i].item);

        /* "wants" says in advance what "add" does */
        assert_int_equal(want, out != &items[i].item);

        if (out != &items[i].item) {
            kept++;             /* kept, in a free slot or in place */
        }
    }

    assert_int_equal(t.n, n < cap ? n : cap);
    assert_true(kept >= t.n);

    cg_topn_sort(&t);

    for (i = 0; i < t.n; i++) {
        assert_ptr_equal(t.heap[i], ref[i]);
    }
}


static void
test_ranks(void **state)
{
    (void) state;

    make(NITEMS, 1, 1000000);
    check(NITEMS, 1000);
    check(NITEMS, 1);
    check(NITEMS, NITEMS);
    make(10, 6, 5);
    check(10, 1000);
}


static void
test_ties(void **state)
{
    (void) state;

    /* many equal keys: the names decide, shorter first on a common part */

    make(NITEMS, 2, 3);
    check(NITEMS, 700);
    check(NITEMS, 2);

    make(NITEMS, 3, 1);
    check(NITEMS, 100);
    assert_int_equal(ref[0]->len, 3);                      /* "c-0" */
    assert_memory_equal(ref[1]->name, "c-1", 3);
    assert_int_equal(ref[1]->len, 3);
}


static void
test_order_of_arrival(void **state)
{
    size_t  i;

    (void) state;

    /* ascending keys: every item pushes the last one out */

    make(NITEMS, 4, 1);

    for (i = 0; i < NITEMS; i++) {
        items[i].item.key = (double) i;
    }

    qsort(ref, NITEMS, sizeof(ref[0]), ref_cmp);
    check(NITEMS, 256);

    for (i = 0; i < NITEMS; i++) {
        items[i].item.key = (double) (NITEMS - i);
    }

    qsort(ref, NITEMS, sizeof(ref[0]), ref_cmp);
    check(NITEMS, 256);
}


static void
test_fractions(void **state)
{
    size_t  i;

    (void) state;

    /* rates and ratios: keys that differ below 1, and some equal ones */

    make(NITEMS, 7, 1);

    for (i = 0; i < NITEMS; i++) {
        items[i].item.key = (double) (rand() % 50) / 16 + 1e-9 * (i % 3);
    }

    qsort(ref, NITEMS, sizeof(ref[0]), own_cmp);
    check(NITEMS, 500);
    check(NITEMS, 3);

    assert_true(ref[0]->key >= ref[1]->key);
    assert_true(ref[0]->key > 3.0);
}


static void
test_by_name(void **state)
{
    size_t  i;

    (void) state;

    /* every key 0: the names alone, ascending ("sort=name") */

    make(NITEMS, 8, 1);

    for (i = 0; i < NITEMS; i++) {
        items[i].item.key = 0;
    }

    qsort(ref, NITEMS, sizeof(ref[0]), own_cmp);
    check(NITEMS, 1000);
    check(NITEMS, NITEMS);

    assert_memory_equal(ref[0]->name, "c-0", 3);
    assert_memory_equal(ref[1]->name, "c-1", 3);
    assert_memory_equal(ref[2]->name, "c-10", 4);
    assert_memory_equal(ref[3]->name, "c-100", 5);
}


static void
test_empty(void **state)
{
    cg_topn_t  t;

    (void) state;

    make(4, 5, 10);

    cg_topn_init(&t, slots, 0);
    assert_int_equal(cg_topn_wants(&t, 1, items[0].name, 3), 0);
    assert_ptr_equal(cg_topn_add(&t, &items[0].item), &items[0].item);
    cg_topn_sort(&t);
    assert_int_equal(t.n, 0);

    cg_topn_init(&t, slots, 4);
    cg_topn_sort(&t);
    assert_int_equal(t.n, 0);
}


int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ranks),
        cmocka_unit_test(test_ties),
        cmocka_unit_test(test_order_of_arrival),
        cmocka_unit_test(test_fractions),
        cmocka_unit_test(test_by_name),
        cmocka_unit_test(test_empty),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
