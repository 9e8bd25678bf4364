/* A shared loop walk's tokens in one rank range (cfg_loops.Region: `take` for a trie node, `first_bytes` for
 * the first bytes into a loop state), written once for loops_c.c (`first_parts`) and trie_walk_c.c (a first
 * visit's one-call classification). Needs buffers.h (Vec). */
#ifndef DECC_REGION_TAKE_H
#define DECC_REGION_TAKE_H

#include "buffers.h"
#include <stdint.h>

/* A Region's sorted arrays: the ranks of the tokens inside it and of the uncertain ones (int32), and the
 * first rank of each node leaving it (int64). */
typedef struct {
    const int32_t *inside, *uncertain;
    const long long *leaving_lo;
    Py_ssize_t n_in, n_unc, n_leaving;
} RegionArrays;

/* The first index of a sorted int32 array at or past `x`. */
static Py_ssize_t lower_bound32(const int32_t *a, Py_ssize_t n, long long x) {
    Py_ssize_t lo = 0, hi = n;
    while (lo < hi) {
        Py_ssize_t mid = (lo + hi) / 2;
        if (a[mid] < x)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

static Py_ssize_t lower_bound64(const long long *a, Py_ssize_t n, long long x) {
    Py_ssize_t lo = 0, hi = n;
    while (lo < hi) {
        Py_ssize_t mid = (lo + hi) / 2;
        if (a[mid] < x)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/* The region's tokens of ranks lo..hi-1: the inside ones' bits set in `bits` (n_words uint32, by token id
 * rank_to_id[r]; a rank or id out of range: ValueError), the uncertain ranks appended to `unc`, the indices
 * of the leaving nodes that start there appended to `leaving` (all in rank order). 0, or -1 with an error. */
static int region_take(const RegionArrays *x, long long lo, long long hi, const long long *rank_to_id,
                       Py_ssize_t n_ranks, uint32_t *bits, Py_ssize_t n_words, Vec *unc, Vec *leaving) {
    for (Py_ssize_t j = lower_bound32(x->inside, x->n_in, lo); j < x->n_in && x->inside[j] < hi; j++) {
        long long r = x->inside[j];
        long long t = r >= 0 && r < n_ranks ? rank_to_id[r] : -1;
        if (t < 0 || t >= (long long)n_words * 32) {
            PyErr_SetString(PyExc_ValueError, "a rank or token id out of range");
            return -1;
        }
        bits[t >> 5] |= 1u << (t & 31);
    }
    Py_ssize_t a = lower_bound32(x->uncertain, x->n_unc, lo), b = lower_bound32(x->uncertain, x->n_unc, hi);
    for (Py_ssize_t j = a; j < b; j++)
        if (vec_push(unc, x->uncertain[j]) < 0)
            return -1;
    a = lower_bound64(x->leaving_lo, x->n_leaving, lo), b = lower_bound64(x->leaving_lo, x->n_leaving, hi);
    for (Py_ssize_t j = a; j < b; j++)
        if (vec_push(leaving, j) < 0)
            return -1;
    return 0;
}

/* `Region.first_bytes`: region_take over the ranks of the tokens starting with each byte of `firsts`
 * (sorted, distinct: else ValueError; byte b's ranks are bounds[b]..bounds[b + 1] - 1). */
static inline int region_first_bytes(const RegionArrays *x, const long long *bounds, const unsigned char *firsts,
                              Py_ssize_t n_firsts, const long long *rank_to_id, Py_ssize_t n_ranks,
                              uint32_t *bits, Py_ssize_t n_words, Vec *unc, Vec *leaving) {
    for (Py_ssize_t i = 0; i < n_firsts; i++) {
        if (i && firsts[i] <= firsts[i - 1]) {
            PyErr_SetString(PyExc_ValueError, "firsts must be sorted and distinct");
            return -1;
        }
    }
    for (Py_ssize_t i = 0; i < n_firsts; i++)
        if (region_take(x, bounds[firsts[i]], bounds[firsts[i] + 1], rank_to_id, n_ranks, bits, n_words, unc,
                        leaving) < 0)
            return -1;
    return 0;
}

#endif
