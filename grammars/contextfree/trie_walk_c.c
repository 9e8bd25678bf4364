/* The first-visit trie walk of cfg_walk.py (TrieWalk.roots / root_groups / walk / walk_from) and the byte
 * walk of the recognizer's simulation (walks_within), compiled: the same steps as the pure-Python versions,
 * which stay as the fallback and as the tests' oracle. Arrays come in through the buffer protocol (no numpy
 * headers); the shared loop walks stay Python objects, called back (`shared(state, depth)`, `Region.take`)
 * except for the states flagged `off_loop` (known to have none). TrieWalk.classify is a whole first visit
 * (cfg_rows' `_walk_trie`) in one call: there the shared walks are asked of `shared` once per state and
 * depth, kept in the TrieWalk, and read through their `RegionParts` (a Region's arrays, with the first bytes
 * taken per byte set memoized), with no call back into Python for a state met before. */

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include "buffers.h"
#include "region_take.h"
#include <stdint.h>
#include <string.h>

typedef struct {
    long long d, lo, hi, s;
    int passed;
} Node;

typedef struct {
    Node *v;
    Py_ssize_t n, cap;
} Stack;

typedef struct {
    long long *v;
    Py_ssize_t n, cap;
} Ranges;

static int stack_push(Stack *st, long long d, long long lo, long long hi, long long s, int passed) {
    if (st->n == st->cap) {
        Py_ssize_t cap = st->cap ? 2 * st->cap : 64;
        Node *v = PyMem_Realloc(st->v, (size_t)cap * sizeof(Node));
        if (v == NULL) {
            PyErr_NoMemory();
            return -1;
        }
        st->v = v;
        st->cap = cap;
    }
    Node *x = &st->v[st->n++];
    x->d = d, x->lo = lo, x->hi = hi, x->s = s, x->passed = passed;
    return 0;
}

static int ranges_add(Ranges *r, long long lo, long long hi) {
    if (r->n + 2 > r->cap) {
        Py_ssize_t cap = r->cap ? 2 * r->cap : 64;
        long long *v = PyMem_Realloc(r->v, (size_t)cap * sizeof(long long));
        if (v == NULL) {
            PyErr_NoMemory();
            return -1;
        }
        r->v = v;
        r->cap = cap;
    }
    r->v[r->n++] = lo;
    r->v[r->n++] = hi;
    return 0;
}

/* Extend the Python list `name` of `out` with the flat ranges. */
static int ranges_flush(Ranges *r, PyObject *out, const char *name) {
    PyObject *list = PyObject_GetAttrString(out, name);
    if (list == NULL)
        return -1;
    if (!PyList_Check(list)) {
        Py_DECREF(list);
        PyErr_Format(PyExc_TypeError, "Walk.%s must be a list", name);
        return -1;
    }
    for (Py_ssize_t i = 0; i < r->n; i++) {
        PyObject *x = PyLong_FromLongLong(r->v[i]);
        if (x == NULL || PyList_Append(list, x) < 0) {
            Py_XDECREF(x);
            Py_DECREF(list);
            return -1;
        }
        Py_DECREF(x);
    }
    Py_DECREF(list);
    return 0;
}

/* A bitmask row to set the bits of tokens in, by rank (`rank_to_id`): where a walk writes its inside tokens
 * instead of listing their rank ranges. */
typedef struct {
    unsigned int *row;
    const long long *to_id;
    long long n_ranks, size; /* ranks in the map, bits in the row */
} Bits;

/* Set the bit of token to_id[r] for rank r: 0 on success, -1 (IndexError set) when r or its id is out of
 * range. */
static int set_rank_bit(const Bits *x, long long r) {
    if (r < 0 || r >= x->n_ranks) {
        PyErr_Format(PyExc_IndexError, "rank %lld out of the vocabulary's %lld", r, x->n_ranks);
        return -1;
    }
    long long t = x->to_id[r];
    if (t < 0 || t >= x->size) {
        PyErr_Format(PyExc_IndexError, "token id %lld out of the row", t);
        return -1;
    }
    x->row[t >> 5] |= 1u << (t & 31);
    return 0;
}

/* Set the bits of the ranks in an int32 or int64 array (any other kind: ValueError). */
static int set_rank_bits(const Bits *x, PyObject *array) {
    Py_buffer a;
    if (PyObject_GetBuffer(array, &a, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT) < 0)
        return -1;
    char f = a.format != NULL ? a.format[0] : 'B';
    int wide = a.itemsize == 8 && (f == 'q' || f == 'l');
    int ok = wide || (a.itemsize == 4 && (f == 'i' || f == 'l'));
    if (!ok)
        PyErr_SetString(PyExc_ValueError, "rank arrays must be int32 or int64");
    Py_ssize_t n = a.len / a.itemsize;
    for (Py_ssize_t j = 0; ok && j < n; j++)
        ok = set_rank_bit(x, wide ? ((const long long *)a.buf)[j] : ((const int *)a.buf)[j]) == 0;
    PyBuffer_Release(&a);
    return ok ? 0 : -1;
}

/* A state's live bytes and its dead bytes that enter a callee, ascending (memoized, as cfg_walk's `state`:
 * the rows of built states never change). */
typedef struct {
    int n_live, n_edead;
    unsigned char live[256], edead[256];
} StateInfo;

/* ---- RegionParts: a shared loop walk (cfg_loops.Region) as the classification reads it ---------------- */

/* The first bytes into a region's state that a first visit took together (`Region.first_bytes`): the inside
 * tokens' row, the uncertain ranks, the leaving nodes' indices; memoized per region by byte set. */
typedef struct {
    uint64_t key[4];
    Py_ssize_t n_words;
    uint32_t *row;
    Vec unc, leaving;
} FirstBytes;

#define MAX_FIRST_BYTES 64 /* byte sets memoized per region (a string body sees a few) */

typedef struct {
    PyObject_HEAD
    Py_buffer in, unc, lo, lv, bb;
    int held; /* buffers held, in that order */
    RegionArrays x;
    const long long *leaving; /* [n_leaving * 5]: depth, rank lo, rank hi, exit number, passed */
    const long long *bounds;
    FirstBytes *memo;
    int n_memo;
    /* every inside token's bit (by the map `full_to_id`, n_full_words words), made on the first byte set
     * that takes most of them: such a set's row is this less the tokens of the other first bytes */
    uint32_t *full;
    const long long *full_to_id;
    Py_ssize_t n_full_words, full_ranks;
    int full_ok; /* whether no two inside ranks share an id (then the row less the others is exact) */
    /* per first byte c, where its ranks start in inside, uncertain and leaving_lo ([c], [257 + c], [514 + c];
     * [256]: the end), made on the first byte set: a miss then reads slices, where it searched each array
     * for each byte (about 700 binary searches for a string body's set, most of a miss's 25 us) */
    Py_ssize_t *at;
} RegionPartsObject;

static void region_parts_forget(RegionPartsObject *self) {
    for (int i = 0; i < self->n_memo; i++) {
        PyMem_Free(self->memo[i].row);
        PyMem_Free(self->memo[i].unc.v);
        PyMem_Free(self->memo[i].leaving.v);
    }
    self->n_memo = 0;
}

static void RegionParts_dealloc(RegionPartsObject *self) {
    Py_buffer *bufs[] = {&self->in, &self->unc, &self->lo, &self->lv, &self->bb};
    for (int i = 0; i < self->held; i++)
        PyBuffer_Release(bufs[i]);
    region_parts_forget(self);
    PyMem_Free(self->memo);
    PyMem_Free(self->full);
    PyMem_Free(self->at);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static int RegionParts_init(RegionPartsObject *self, PyObject *args, PyObject *kwds) {
    static char *kwlist[] = {"inside", "uncertain", "leaving_lo", "leaving", "bounds", NULL};
    PyObject *objs[5];
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "OOOOO", kwlist, &objs[0], &objs[1], &objs[2], &objs[3],
                                     &objs[4]))
        return -1;
    if (self->held) {
        PyErr_SetString(PyExc_RuntimeError, "RegionParts is initialized once");
        return -1;
    }
    Py_buffer *bufs[] = {&self->in, &self->unc, &self->lo, &self->lv, &self->bb};
    const char *names[] = {"inside", "uncertain", "leaving_lo", "leaving", "bounds"};
    Py_ssize_t sizes[] = {4, 4, 8, 8, 8};
    const char *kinds[] = {"i", "i", "lq", "lq", "lq"};
    for (; self->held < 5; self->held++)
        if (get_buffer(objs[self->held], bufs[self->held], names[self->held], 1, sizes[self->held],
                       kinds[self->held], 0) < 0)
            return -1;
    if (self->lv.shape[0] != 5 * self->lo.shape[0] || self->bb.shape[0] != 257) {
        PyErr_SetString(PyExc_ValueError, "RegionParts: 5 numbers per leaving node, 257 bounds");
        return -1;
    }
    RegionArrays x = {self->in.buf, self->unc.buf, self->lo.buf, self->in.shape[0], self->unc.shape[0],
                      self->lo.shape[0]};
    self->x = x;
    self->leaving = self->lv.buf, self->bounds = self->bb.buf;
    self->memo = PyMem_Calloc(MAX_FIRST_BYTES, sizeof(FirstBytes));
    if (self->memo == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    return 0;
}

static PyTypeObject RegionPartsType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "decc.grammars.contextfree.trie_walk_c.RegionParts",
    .tp_basicsize = sizeof(RegionPartsObject),
    .tp_dealloc = (destructor)RegionParts_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "RegionParts(inside, uncertain, leaving_lo, leaving, bounds): a cfg_loops.Region's arrays (int32, "
              "int32, int64, int64 [5 per leaving node], int64 [257]) for TrieWalk.classify.",
    .tp_init = (initproc)RegionParts_init,
    .tp_new = PyType_GenericNew,
};

/* The slices of each first byte's ranks in the region's arrays (RegionPartsObject.at), made once: 0, or -1. */
static int parts_offsets(RegionPartsObject *p) {
    if (p->at != NULL)
        return 0;
    Py_ssize_t *at = PyMem_Malloc(3 * 257 * sizeof(Py_ssize_t));
    if (at == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    const RegionArrays *x = &p->x;
    for (int c = 0; c <= 256; c++) {
        if (c && p->bounds[c] < p->bounds[c - 1]) {
            PyMem_Free(at);
            PyErr_SetString(PyExc_ValueError, "RegionParts: bounds must not decrease");
            return -1;
        }
        at[c] = lower_bound32(x->inside, x->n_in, p->bounds[c]);
        at[257 + c] = lower_bound32(x->uncertain, x->n_unc, p->bounds[c]);
        at[514 + c] = lower_bound64(x->leaving_lo, x->n_leaving, p->bounds[c]);
    }
    p->at = at;
    return 0;
}

/* Set (on 1) or clear the bits of the inside tokens of indices lo..hi-1: 0, or -1 with a ValueError for a rank or
 * id out of range. */
static int parts_bits(const RegionPartsObject *p, Py_ssize_t lo, Py_ssize_t hi, const Bits *bits, uint32_t *row,
                      Py_ssize_t n_words, int on) {
    for (Py_ssize_t j = lo; j < hi; j++) {
        long long r = p->x.inside[j];
        long long t = r >= 0 && r < bits->n_ranks ? bits->to_id[r] : -1;
        if (t < 0 || t >= (long long)n_words * 32) {
            PyErr_SetString(PyExc_ValueError, "a rank or token id out of range");
            return -1;
        }
        if (on)
            row[t >> 5] |= 1u << (t & 31);
        else
            row[t >> 5] &= ~(1u << (t & 31));
    }
    return 0;
}

/* region_first_bytes into m (its row zeroed), by slices (parts_offsets): where the bytes take more than half
 * the inside tokens, the row is the region's full row (made once) less the inside tokens of the other first
 * bytes, the same bits (a token has one first byte and one rank: to_id is one-to-one) for a fraction of the
 * writes; the uncertain ranks and leaving nodes' indices of the bytes in rank order, as region_first_bytes
 * gives them. 0, or -1 with an error. */
static int region_first_fast(RegionPartsObject *p, const unsigned char *firsts, Py_ssize_t n_firsts,
                             const Bits *bits, FirstBytes *m, Py_ssize_t n_words) {
    const RegionArrays *x = &p->x;
    if (parts_offsets(p) < 0)
        return -1;
    const Py_ssize_t *at = p->at, *unc_at = p->at + 257, *lv_at = p->at + 514;
    char in_set[256] = {0};
    Py_ssize_t taken = 0;
    for (Py_ssize_t i = 0; i < n_firsts; i++) {
        in_set[firsts[i]] = 1;
        taken += at[firsts[i] + 1] - at[firsts[i]];
    }
    int less = !(2 * taken <= x->n_in || n_firsts < 2);
    if (less && (p->full == NULL || p->full_to_id != bits->to_id || p->n_full_words != n_words ||
                 p->full_ranks != (Py_ssize_t)bits->n_ranks)) {
        uint32_t *full = PyMem_Calloc((size_t)(n_words ? n_words : 1), 4);
        if (full == NULL) {
            PyErr_NoMemory();
            return -1;
        }
        int one_to_one = 1; /* (else: two ranks of one id, the direct way below) */
        for (Py_ssize_t j = 0; j < x->n_in; j++) {
            long long r = x->inside[j];
            long long t = r >= 0 && r < bits->n_ranks ? bits->to_id[r] : -1;
            if (t < 0 || t >= (long long)n_words * 32) {
                PyErr_SetString(PyExc_ValueError, "a rank or token id out of range");
                PyMem_Free(full);
                return -1;
            }
            one_to_one &= !((full[t >> 5] >> (t & 31)) & 1);
            full[t >> 5] |= 1u << (t & 31);
        }
        PyMem_Free(p->full);
        p->full = full, p->full_to_id = bits->to_id, p->n_full_words = n_words;
        p->full_ranks = (Py_ssize_t)bits->n_ranks, p->full_ok = one_to_one;
    }
    less = less && p->full_ok;
    if (less) {
        memcpy(m->row, p->full, (size_t)n_words * 4);
        for (int c = 0; c < 256; c++) /* the other first bytes' inside tokens out */
            if (!in_set[c] && parts_bits(p, at[c], at[c + 1], bits, m->row, n_words, 0) < 0)
                return -1;
    }
    for (Py_ssize_t i = 0; i < n_firsts; i++) {
        int c = firsts[i];
        if (i && firsts[i] <= firsts[i - 1]) {
            PyErr_SetString(PyExc_ValueError, "firsts must be sorted and distinct");
            return -1;
        }
        if (!less && parts_bits(p, at[c], at[c + 1], bits, m->row, n_words, 1) < 0)
            return -1;
        for (Py_ssize_t j = unc_at[c]; j < unc_at[c + 1]; j++)
            if (vec_push(&m->unc, x->uncertain[j]) < 0)
                return -1;
        for (Py_ssize_t j = lv_at[c]; j < lv_at[c + 1]; j++)
            if (vec_push(&m->leaving, j) < 0)
                return -1;
    }
    return 0;
}

/* The region's tokens starting with the bytes of the 256-bit set `key` (memoized): NULL with an error. */
static FirstBytes *region_first(RegionPartsObject *p, const uint64_t key[4], const Bits *bits, Py_ssize_t n_words) {
    for (int i = 0; i < p->n_memo; i++)
        if (p->memo[i].n_words == n_words && memcmp(p->memo[i].key, key, sizeof(p->memo[i].key)) == 0)
            return &p->memo[i];
    if (p->n_memo == MAX_FIRST_BYTES) /* bounded: start again */
        region_parts_forget(p);
    unsigned char firsts[256];
    Py_ssize_t n_firsts = 0;
    for (int b = 0; b < 256; b++)
        if ((key[b >> 6] >> (b & 63)) & 1)
            firsts[n_firsts++] = (unsigned char)b;
    FirstBytes *m = &p->memo[p->n_memo];
    memset(m, 0, sizeof(*m));
    m->row = PyMem_Calloc((size_t)(n_words ? n_words : 1), 4);
    if (m->row == NULL) {
        PyErr_NoMemory();
        return NULL;
    }
    if (region_first_fast(p, firsts, n_firsts, bits, m, n_words) < 0) {
        PyMem_Free(m->row), PyMem_Free(m->unc.v), PyMem_Free(m->leaving.v);
        return NULL;
    }
    memcpy(m->key, key, sizeof(m->key));
    m->n_words = n_words;
    p->n_memo++;
    return m;
}

/* A state's shared walk at one depth, as `shared(state, depth)` gave it (the callback asked once per
 * TrieWalk: a StateRows makes its TrieWalk again when its table grows). */
typedef struct SharedHit {
    long long depth;
    RegionPartsObject *parts; /* NULL: no shared walk there */
    long long *exits;         /* the states its exit numbers name */
    Py_ssize_t n_exits;
    struct SharedHit *next;
} SharedHit;

typedef struct {
    PyObject_HEAD
    PyObject *words;      /* tuple of bytes, sorted */
    PyObject *exit_point; /* the array itself, handed to Region.take */
    long long first[257];
    Py_buffer table, exits, enters, off_loop; /* off_loop: optional, a flag per state known to be on no loop */
    int have_table, have_exits, have_enters, have_off_loop;
    long long n_states, dead;
    Py_ssize_t n_words;
    StateInfo **info; /* per state, made on first use */
    SharedHit **hits; /* per state, made on first use: the shared walks `classify` looked up */
    /* The words joined (bytes objects, shared by the TrieWalks over one tuple of words): word i is
     * blob[off[i]:off[i + 1]], read by the bisections from two contiguous arrays rather than from a bytes
     * object apiece (a cache miss each on a large vocabulary). */
    PyObject *blob_obj, *off_obj;
    const char *blob;
    const long long *off;
} TrieWalkObject;

/* The last tuple of words checked to hold bytes only and joined (a StateRows makes its TrieWalk again as its
 * table grows, over the same words: done once), with its blob and offsets. */
static PyObject *joined_for = NULL, *joined_blob = NULL, *joined_off = NULL;

/* Check that `words` holds bytes only and join them (memoized for the last tuple): 0, or -1 with an error. */
static int join_words(PyObject *words) {
    if (words == joined_for)
        return 0;
    Py_ssize_t n = PyTuple_GET_SIZE(words), total = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *w = PyTuple_GET_ITEM(words, i);
        if (!PyBytes_CheckExact(w)) {
            PyErr_SetString(PyExc_TypeError, "words must be a tuple of bytes");
            return -1;
        }
        total += PyBytes_GET_SIZE(w);
    }
    PyObject *blob = PyBytes_FromStringAndSize(NULL, total);
    PyObject *off = PyBytes_FromStringAndSize(NULL, (n + 1) * (Py_ssize_t)sizeof(long long));
    if (blob == NULL || off == NULL) {
        Py_XDECREF(blob);
        Py_XDECREF(off);
        return -1;
    }
    char *b = PyBytes_AS_STRING(blob);
    long long *o = (long long *)PyBytes_AS_STRING(off), at = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *w = PyTuple_GET_ITEM(words, i);
        o[i] = at;
        memcpy(b + at, PyBytes_AS_STRING(w), (size_t)PyBytes_GET_SIZE(w));
        at += PyBytes_GET_SIZE(w);
    }
    o[n] = at;
    Py_INCREF(words);
    Py_XSETREF(joined_for, words);
    Py_XSETREF(joined_blob, blob);
    Py_XSETREF(joined_off, off);
    return 0;
}

static StateInfo *state_info(TrieWalkObject *self, long long s) {
    if (self->info == NULL) {
        self->info = PyMem_Calloc((size_t)self->n_states, sizeof(StateInfo *));
        if (self->info == NULL) {
            PyErr_NoMemory();
            return NULL;
        }
    }
    StateInfo *x = self->info[s];
    if (x != NULL)
        return x;
    x = PyMem_Malloc(sizeof(StateInfo));
    if (x == NULL) {
        PyErr_NoMemory();
        return NULL;
    }
    const int *row = (const int *)self->table.buf + s * 256;
    const char *enters = (const char *)self->enters.buf + s * 256;
    x->n_live = x->n_edead = 0;
    for (int b = 0; b < 256; b++) {
        if (row[b] != self->dead)
            x->live[x->n_live++] = (unsigned char)b;
        else if (enters[b])
            x->edead[x->n_edead++] = (unsigned char)b;
    }
    self->info[s] = x;
    return x;
}

#define WORD_LEN(self, i) ((self)->off[(i) + 1] - (self)->off[(i)])

/* Byte d of token i, -1 where it has only d bytes. Within a trie node at depth d (tokens sharing their
 * first d bytes, sorted), this is the order of the tokens: the node's own token first, then by byte d; so a
 * child's bounds are found by comparing that one byte (no key, no memcmp of the prefix). */
static inline int byte_at(TrieWalkObject *self, long long i, long long d) {
    long long a = self->off[i];
    return self->off[i + 1] - a > d ? (unsigned char)self->blob[a + d] : -1;
}

/* The first token of lo..hi-1 (a trie node at depth d, or its tail) whose byte d is at least b: the
 * bisection of the Python walk for the key (prefix + byte b). */
static long long first_at_least(TrieWalkObject *self, long long d, int b, long long lo, long long hi) {
    while (lo < hi) {
        long long mid = (lo + hi) / 2;
        if (byte_at(self, mid, d) < b)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

static void TrieWalk_dealloc(TrieWalkObject *self) {
    if (self->have_table)
        PyBuffer_Release(&self->table);
    if (self->have_exits)
        PyBuffer_Release(&self->exits);
    if (self->have_enters)
        PyBuffer_Release(&self->enters);
    if (self->have_off_loop)
        PyBuffer_Release(&self->off_loop);
    if (self->info != NULL) {
        for (long long s = 0; s < self->n_states; s++)
            PyMem_Free(self->info[s]);
        PyMem_Free(self->info);
    }
    if (self->hits != NULL) {
        for (long long s = 0; s < self->n_states; s++) {
            for (SharedHit *h = self->hits[s], *next; h != NULL; h = next) {
                next = h->next;
                Py_XDECREF(h->parts);
                PyMem_Free(h->exits);
                PyMem_Free(h);
            }
        }
        PyMem_Free(self->hits);
    }
    Py_XDECREF(self->words);
    Py_XDECREF(self->exit_point);
    Py_XDECREF(self->blob_obj);
    Py_XDECREF(self->off_obj);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static int TrieWalk_init(TrieWalkObject *self, PyObject *args, PyObject *kwds) {
    static char *kwlist[] = {"words", "first", "table", "dead", "exit_point", "enters", "off_loop", NULL};
    PyObject *words, *first, *table, *exit_point, *enters, *off_loop = Py_None;
    long long dead;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "O!OOLOO|O", kwlist, &PyTuple_Type, &words, &first, &table,
                                     &dead, &exit_point, &enters, &off_loop))
        return -1;
    if (self->words != NULL) {
        PyErr_SetString(PyExc_RuntimeError, "TrieWalk is initialized once");
        return -1;
    }
    Py_ssize_t n = PyTuple_GET_SIZE(words);
    if (join_words(words) < 0)
        return -1;
    PyObject *seq = PySequence_Fast(first, "first must be a sequence");
    if (seq == NULL)
        return -1;
    if (PySequence_Fast_GET_SIZE(seq) != 257) {
        Py_DECREF(seq);
        PyErr_SetString(PyExc_ValueError, "first must have 257 entries");
        return -1;
    }
    for (int b = 0; b < 257; b++) {
        long long v = PyLong_AsLongLong(PySequence_Fast_GET_ITEM(seq, b));
        if (v == -1 && PyErr_Occurred()) {
            Py_DECREF(seq);
            return -1;
        }
        if (v < 0 || v > n) {
            Py_DECREF(seq);
            PyErr_SetString(PyExc_ValueError, "first: a rank out of range");
            return -1;
        }
        self->first[b] = v;
    }
    Py_DECREF(seq);
    int flags = PyBUF_C_CONTIGUOUS | PyBUF_FORMAT;
    if (PyObject_GetBuffer(table, &self->table, flags) < 0)
        return -1;
    self->have_table = 1;
    if (PyObject_GetBuffer(exit_point, &self->exits, flags) < 0)
        return -1;
    self->have_exits = 1;
    if (PyObject_GetBuffer(enters, &self->enters, flags) < 0)
        return -1;
    self->have_enters = 1;
    if (check_buffer(&self->table, "table", 2, 4, "i") < 0 ||
        check_buffer(&self->exits, "exit_point", 1, 1, "?") < 0 ||
        check_buffer(&self->enters, "enters", 2, 1, "?") < 0)
        return -1;
    self->n_states = self->table.shape[0];
    if (self->exits.shape[0] < self->n_states || self->enters.shape[0] < self->n_states) {
        PyErr_SetString(PyExc_ValueError, "exit_point and enters need a row per state of the table");
        return -1;
    }
    if (off_loop != Py_None) {
        if (PyObject_GetBuffer(off_loop, &self->off_loop, flags) < 0)
            return -1;
        self->have_off_loop = 1;
        if (check_buffer(&self->off_loop, "off_loop", 1, 1, "?") < 0)
            return -1;
        if (self->off_loop.shape[0] < self->n_states) {
            PyErr_SetString(PyExc_ValueError, "off_loop needs a flag per state of the table");
            return -1;
        }
    }
    Py_INCREF(joined_blob);
    Py_INCREF(joined_off);
    self->blob_obj = joined_blob, self->off_obj = joined_off;
    self->blob = PyBytes_AS_STRING(joined_blob), self->off = (const long long *)PyBytes_AS_STRING(joined_off);
    Py_INCREF(words);
    self->words = words;
    Py_INCREF(exit_point);
    self->exit_point = exit_point;
    self->n_words = n;
    self->dead = dead;
    return 0;
}

static int check_state(TrieWalkObject *self, long long s) {
    if (s < 0 || s >= self->n_states) {
        PyErr_Format(PyExc_IndexError, "state %lld out of the table", s);
        return -1;
    }
    return 0;
}

static int check_range(TrieWalkObject *self, long long lo, long long hi) {
    if (lo < 0 || hi > self->n_words || lo >= hi) {
        PyErr_Format(PyExc_IndexError, "trie node %lld..%lld out of the words", lo, hi);
        return -1;
    }
    return 0;
}

static PyObject *TrieWalk_roots(TrieWalkObject *self, PyObject *arg) {
    if (self->words == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "TrieWalk not initialized");
        return NULL;
    }
    long long g = PyLong_AsLongLong(arg);
    if (g == -1 && PyErr_Occurred())
        return NULL;
    if (check_state(self, g) < 0)
        return NULL;
    const int *row = (const int *)self->table.buf + g * 256;
    const char *exits = (const char *)self->exits.buf;
    PyObject *out = PyList_New(0);
    if (out == NULL)
        return NULL;
    for (int b = 0; b < 256; b++) {
        long long nxt = row[b];
        long long lo = self->first[b], hi = self->first[b + 1];
        if (nxt == self->dead || lo >= hi)
            continue;
        if (check_state(self, nxt) < 0) {
            Py_DECREF(out);
            return NULL;
        }
        PyObject *node = Py_BuildValue("(iLLLO)", 1, lo, hi, nxt, exits[nxt] ? Py_True : Py_False);
        if (node == NULL || PyList_Append(out, node) < 0) {
            Py_XDECREF(node);
            Py_DECREF(out);
            return NULL;
        }
        Py_DECREF(node);
    }
    return out;
}

/* Push the trie nodes of a Python sequence of (depth, lo, hi, state, passed). */
static int push_nodes(TrieWalkObject *self, Stack *st, PyObject *nodes) {
    PyObject *seq = PySequence_Fast(nodes, "trie nodes must be a sequence");
    if (seq == NULL)
        return -1;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *t = PySequence_Fast_GET_ITEM(seq, i);
        long long v[4];
        if (!PyTuple_Check(t) || PyTuple_GET_SIZE(t) != 5) {
            PyErr_SetString(PyExc_TypeError, "a trie node is a 5-tuple");
            goto fail;
        }
        for (int j = 0; j < 4; j++) {
            v[j] = PyLong_AsLongLong(PyTuple_GET_ITEM(t, j));
            if (v[j] == -1 && PyErr_Occurred())
                goto fail;
        }
        int passed = PyObject_IsTrue(PyTuple_GET_ITEM(t, 4));
        if (passed < 0 || check_state(self, v[3]) < 0 || check_range(self, v[1], v[2]) < 0)
            goto fail;
        if (stack_push(st, v[0], v[1], v[2], v[3], passed) < 0)
            goto fail;
    }
    Py_DECREF(seq);
    return 0;
fail:
    Py_DECREF(seq);
    return -1;
}

/* The shared walk of state s at depth d: from the memo, else asked of `shared` once (a Region's parts, made
 * by its `parts()`, and its exit states; or None); NULL with an error. */
static SharedHit *shared_hit(TrieWalkObject *self, long long s, long long d, PyObject *shared) {
    if (self->hits == NULL) {
        self->hits = PyMem_Calloc((size_t)self->n_states, sizeof(SharedHit *));
        if (self->hits == NULL) {
            PyErr_NoMemory();
            return NULL;
        }
    }
    for (SharedHit *h = self->hits[s]; h != NULL; h = h->next)
        if (h->depth == d)
            return h;
    PyObject *hit = PyObject_CallFunction(shared, "LL", s, d);
    if (hit == NULL)
        return NULL;
    SharedHit *h = PyMem_Calloc(1, sizeof(SharedHit));
    PyObject *region = NULL, *to = NULL, *parts = NULL, *seq = NULL;
    if (h == NULL) {
        PyErr_NoMemory();
        goto fail;
    }
    h->depth = d;
    if (hit != Py_None) {
        region = PySequence_GetItem(hit, 0);
        to = region != NULL ? PySequence_GetItem(hit, 1) : NULL;
        parts = to != NULL ? PyObject_CallMethod(region, "parts", NULL) : NULL;
        if (parts == NULL)
            goto fail;
        if (!PyObject_TypeCheck(parts, &RegionPartsType)) {
            PyErr_SetString(PyExc_TypeError, "a shared walk's parts() must be a RegionParts");
            goto fail;
        }
        seq = PySequence_Fast(to, "a shared walk's exits must be a sequence");
        if (seq == NULL)
            goto fail;
        h->n_exits = PySequence_Fast_GET_SIZE(seq);
        h->exits = PyMem_Malloc((size_t)(h->n_exits ? h->n_exits : 1) * sizeof(long long));
        if (h->exits == NULL) {
            PyErr_NoMemory();
            goto fail;
        }
        for (Py_ssize_t i = 0; i < h->n_exits; i++) {
            h->exits[i] = PyLong_AsLongLong(PySequence_Fast_GET_ITEM(seq, i));
            if ((h->exits[i] == -1 && PyErr_Occurred()) || check_state(self, h->exits[i]) < 0)
                goto fail;
        }
        h->parts = (RegionPartsObject *)parts;
        parts = NULL;
    }
    Py_XDECREF(region), Py_XDECREF(to), Py_XDECREF(seq);
    Py_DECREF(hit);
    h->next = self->hits[s];
    self->hits[s] = h;
    return h;
fail:
    Py_XDECREF(region), Py_XDECREF(to), Py_XDECREF(parts), Py_XDECREF(seq);
    Py_DECREF(hit);
    if (h != NULL)
        PyMem_Free(h->exits);
    PyMem_Free(h);
    return NULL;
}

/* Push the leaving nodes `which` (indices into the region's) of a shared walk, on from its exit states. */
static int push_taken(TrieWalkObject *self, Stack *st, const SharedHit *h, const Vec *which) {
    const char *exits = (const char *)self->exits.buf;
    for (Py_ssize_t j = 0; j < which->n; j++) {
        const long long *x = h->parts->leaving + 5 * which->v[j];
        if (x[3] < 0 || x[3] >= h->n_exits) {
            PyErr_SetString(PyExc_IndexError, "a leaving node's exit number is out of its exits");
            return -1;
        }
        long long s = h->exits[x[3]];
        if (check_range(self, x[1], x[2]) < 0 || stack_push(st, x[0], x[1], x[2], s, x[4] || exits[s]) < 0)
            return -1;
    }
    return 0;
}

/* What a walk gathers. The Python form (`memo` 0) asks `shared` (None: no shared walks) at each node and
 * hands the Region's `take` the Walk `out`; the classification's (`memo` 1) looks the shared walks up in the
 * TrieWalk's memo and takes their tokens here: inside into `bits`, uncertain ranks into `unsure_ranks`. */
typedef struct {
    PyObject *shared, *out;
    int memo;
    const Bits *bits; /* the inside tokens' row (the classification always has one) */
    Ranges inside, unsure;
    Vec unsure_ranks, which;
} WalkCtx;

static void walk_ctx_free(WalkCtx *cx) {
    PyMem_Free(cx->inside.v);
    PyMem_Free(cx->unsure.v);
    PyMem_Free(cx->unsure_ranks.v);
    PyMem_Free(cx->which.v);
}

/* The walk of TrieWalk.walk (cfg_walk.py) from the nodes on `st`: 1 done, 0 past `budget` nodes, -1 error. */
static int walk_core(TrieWalkObject *self, Stack *st, long long budget, long long few, WalkCtx *cx) {
    const int *table = (const int *)self->table.buf;
    const char *exits = (const char *)self->exits.buf;
    const char *enters_all = (const char *)self->enters.buf;
    const char *off_loop = self->have_off_loop ? (const char *)self->off_loop.buf : NULL;
    const long long dead = self->dead;
    const Bits *bits = cx->bits;
    int use_shared = cx->shared != Py_None;

    while (st->n) {
        Node x = st->v[--st->n];
        long long d = x.d, lo = x.lo, hi = x.hi, s = x.s;
        int passed = x.passed;
        if (--budget < 0)
            return 0;
        if (use_shared && hi - lo > few && passed == (exits[s] != 0) && !(off_loop && off_loop[s])) {
            if (cx->memo) {
                SharedHit *h = shared_hit(self, s, d, cx->shared);
                if (h == NULL)
                    return -1;
                if (h->parts != NULL) {
                    cx->which.n = 0;
                    if (region_take(&h->parts->x, lo, hi, bits->to_id, (Py_ssize_t)bits->n_ranks, bits->row,
                                    (Py_ssize_t)(bits->size / 32), &cx->unsure_ranks, &cx->which) < 0 ||
                        push_taken(self, st, h, &cx->which) < 0)
                        return -1;
                    continue;
                }
            } else {
                PyObject *hit = PyObject_CallFunction(cx->shared, "LL", s, d);
                if (hit == NULL)
                    return -1;
                if (hit != Py_None) {
                    PyObject *region = PySequence_GetItem(hit, 0), *to = PySequence_GetItem(hit, 1);
                    PyObject *nodes = NULL;
                    if (region != NULL && to != NULL)
                        nodes = PyObject_CallMethod(region, "take", "LLOOO", lo, hi, to, self->exit_point, cx->out);
                    Py_XDECREF(region);
                    Py_XDECREF(to);
                    Py_DECREF(hit);
                    if (nodes == NULL)
                        return -1;
                    int bad = push_nodes(self, st, nodes);
                    Py_DECREF(nodes);
                    if (bad < 0)
                        return -1;
                    continue;
                }
                Py_DECREF(hit);
            }
        }
        long long k = lo; /* past the tokens that end here (the node's own, repeated) */
        if (WORD_LEN(self, lo) == d)
            k = first_at_least(self, d, 0, lo, hi);
        if (bits != NULL) { /* tokens that end here, alive: into the row */
            for (long long r = lo; r < k; r++)
                if (set_rank_bit(bits, r) < 0)
                    return -1;
        } else if (k > lo && ranges_add(&cx->inside, lo, k) < 0)
            return -1;
        if (k == hi)
            continue;
        const int *row = table + s * 256;
        const char *enters = enters_all + s * 256;
        StateInfo *info = state_info(self, s);
        if (info == NULL)
            return -1;
        const unsigned char *live = info->live;
        int n_live = info->n_live;
        if (WORD_LEN(self, k) <= d) {
            PyErr_SetString(PyExc_IndexError, "a trie node's token is shorter than its depth");
            return -1;
        }
        if (hi - k <= 2 * (long long)n_live) { /* fewer tokens than live bytes: go through the children */
            long long c = k;
            while (c < hi) {
                int b = byte_at(self, c, d);
                if (b < 0) {
                    PyErr_SetString(PyExc_IndexError, "index out of range");
                    return -1;
                }
                long long e = b < 255 ? first_at_least(self, d, b + 1, c, hi) : hi;
                long long nxt = row[b];
                int p = passed || enters[b];
                if (nxt != dead) {
                    if (check_state(self, nxt) < 0)
                        return -1;
                    if (stack_push(st, d + 1, c, e, nxt, p || exits[nxt]) < 0)
                        return -1;
                } else if (p && ranges_add(&cx->unsure, c, e) < 0)
                    return -1;
                c = e;
            }
            continue;
        }
        long long gap = k; /* the start of the tokens not yet placed (for the dead children of a passed node) */
        for (int i = 0; i < n_live; i++) {
            int b = live[i];
            long long c = first_at_least(self, d, b, gap, hi);
            if (c == hi)
                break;
            long long e = b < 255 ? first_at_least(self, d, b + 1, c, hi) : hi;
            if (c == e)
                continue;
            if (passed && c > gap && ranges_add(&cx->unsure, gap, c) < 0)
                return -1;
            gap = e;
            long long nxt = row[b];
            if (check_state(self, nxt) < 0)
                return -1;
            if (stack_push(st, d + 1, c, e, nxt, passed || enters[b] || exits[nxt]) < 0)
                return -1;
        }
        if (passed) {
            if (gap < hi && ranges_add(&cx->unsure, gap, hi) < 0)
                return -1;
        } else {
            for (int i = 0; i < info->n_edead; i++) { /* a dead byte that may go on in a callee: uncertain */
                int b = info->edead[i];
                long long c = first_at_least(self, d, b, k, hi);
                long long e = b < 255 ? first_at_least(self, d, b + 1, c, hi) : hi;
                if (c < e && ranges_add(&cx->unsure, c, e) < 0)
                    return -1;
            }
        }
    }
    return 1;
}

/* The walk of TrieWalk.walk from the nodes on `st` (freed here), the Python form: its ranges added to
 * out.inside / out.unsure (or, with `bits`, its inside tokens set there, the shared walks' ones too, and
 * out.inside_ranks emptied); `out` itself, or None past `budget` nodes. */
static PyObject *run_walk(TrieWalkObject *self, Stack st, PyObject *shared, long long budget, long long few,
                          PyObject *out, const Bits *bits) {
    WalkCtx cx = {shared, out, 0, bits, {NULL, 0, 0}, {NULL, 0, 0}, {0}, {0}};
    PyObject *result = NULL;
    int done = walk_core(self, &st, budget, few, &cx);
    if (done < 0)
        goto done;
    if (done == 0) {
        result = Py_NewRef(Py_None);
        goto done;
    }
    if (ranges_flush(&cx.inside, out, "inside") < 0 || ranges_flush(&cx.unsure, out, "unsure") < 0)
        goto done;
    if (bits != NULL) { /* the shared walks' inside ranks too: into the row, the list emptied */
        PyObject *taken = PyObject_GetAttrString(out, "inside_ranks");
        if (taken == NULL)
            goto done;
        int bad = !PyList_Check(taken);
        if (bad)
            PyErr_SetString(PyExc_TypeError, "Walk.inside_ranks must be a list");
        for (Py_ssize_t i = 0; !bad && i < PyList_GET_SIZE(taken); i++)
            bad = set_rank_bits(bits, PyList_GET_ITEM(taken, i)) < 0;
        if (!bad)
            bad = PyList_SetSlice(taken, 0, PyList_GET_SIZE(taken), NULL) < 0;
        Py_DECREF(taken);
        if (bad)
            goto done;
    }
    result = Py_NewRef(out);
done:
    PyMem_Free(st.v);
    walk_ctx_free(&cx);
    return result;
}

/* walk(frontier, shared, budget, few, out): TrieWalk.walk from the trie nodes `frontier`. */
static PyObject *TrieWalk_walk(TrieWalkObject *self, PyObject *args) {
    PyObject *frontier, *shared, *out;
    long long budget, few;
    if (!PyArg_ParseTuple(args, "OOLLO", &frontier, &shared, &budget, &few, &out))
        return NULL;
    if (self->words == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "TrieWalk not initialized");
        return NULL;
    }
    Stack st = {NULL, 0, 0};
    if (push_nodes(self, &st, frontier) < 0) {
        PyMem_Free(st.v);
        return NULL;
    }
    return run_walk(self, st, shared, budget, few, out, NULL);
}

/* Whether state s is among the `n` states of `skip`. */
static int skipped(const long long *skip, Py_ssize_t n, long long s) {
    for (Py_ssize_t i = 0; i < n; i++)
        if (skip[i] == s)
            return 1;
    return 0;
}

/* Push the nodes that leave shared walks: for each (nodes, indices, exits) of `leaving`, each node
 * nodes[i] = (depth, lo, hi, exit number x, passed) for i in the int64 `indices` goes on from state
 * exits[x], passed there if it accepts. */
static int push_leaving(TrieWalkObject *self, Stack *st, PyObject *leaving) {
    const char *exits = (const char *)self->exits.buf;
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(leaving); i++) {
        PyObject *triple = PyList_GET_ITEM(leaving, i);
        if (!PyTuple_Check(triple) || PyTuple_GET_SIZE(triple) != 3 ||
            !PyTuple_Check(PyTuple_GET_ITEM(triple, 0)) || !PyList_Check(PyTuple_GET_ITEM(triple, 2))) {
            PyErr_SetString(PyExc_TypeError, "leaving: (nodes tuple, int64 indices, exit states list) triples");
            return -1;
        }
        PyObject *nodes = PyTuple_GET_ITEM(triple, 0), *to = PyTuple_GET_ITEM(triple, 2);
        Py_buffer which;
        if (PyObject_GetBuffer(PyTuple_GET_ITEM(triple, 1), &which, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT) < 0)
            return -1;
        int bad = check_buffer(&which, "leaving indices", 1, 8, "ql") < 0;
        const long long *idx = (const long long *)which.buf;
        for (Py_ssize_t j = 0; !bad && j < which.len / 8; j++) {
            bad = 1;
            if (idx[j] < 0 || idx[j] >= PyTuple_GET_SIZE(nodes)) {
                PyErr_SetString(PyExc_IndexError, "a leaving node's index is out of its nodes");
                break;
            }
            PyObject *t = PyTuple_GET_ITEM(nodes, idx[j]);
            long long v[4];
            if (!PyTuple_Check(t) || PyTuple_GET_SIZE(t) != 5) {
                PyErr_SetString(PyExc_TypeError, "a leaving node is a 5-tuple");
                break;
            }
            int k = 0;
            for (; k < 4; k++) {
                v[k] = PyLong_AsLongLong(PyTuple_GET_ITEM(t, k));
                if (v[k] == -1 && PyErr_Occurred())
                    break;
            }
            if (k < 4)
                break;
            if (v[3] < 0 || v[3] >= PyList_GET_SIZE(to)) {
                PyErr_SetString(PyExc_IndexError, "a leaving node's exit number is out of its exits");
                break;
            }
            long long s = PyLong_AsLongLong(PyList_GET_ITEM(to, v[3]));
            if (s == -1 && PyErr_Occurred())
                break;
            int passed = PyObject_IsTrue(PyTuple_GET_ITEM(t, 4));
            if (passed < 0 || check_state(self, s) < 0 || check_range(self, v[1], v[2]) < 0)
                break;
            if (stack_push(st, v[0], v[1], v[2], s, passed || exits[s]) < 0)
                break;
            bad = 0;
        }
        PyBuffer_Release(&which);
        if (bad)
            return -1;
    }
    return 0;
}

/* walk_from(g, skip, leaving, shared, budget, few, out, row, rank_to_id): TrieWalk.walk_from: the walk from
 * the nodes that leave shared walks (`leaving`: see push_leaving) and from the roots of state g, less those
 * into the states of the list `skip`; with a `row` (writable uint32) and `rank_to_id` (int64), the inside
 * tokens are set there rather than listed. */
static PyObject *TrieWalk_walk_from(TrieWalkObject *self, PyObject *args) {
    PyObject *skip_list, *leaving, *shared, *out, *row_obj, *map_obj;
    long long g, budget, few;
    if (!PyArg_ParseTuple(args, "LO!O!OLLOOO", &g, &PyList_Type, &skip_list, &PyList_Type, &leaving, &shared,
                          &budget, &few, &out, &row_obj, &map_obj))
        return NULL;
    if (self->words == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "TrieWalk not initialized");
        return NULL;
    }
    if (check_state(self, g) < 0)
        return NULL;
    long long skip[256];
    Py_ssize_t n_skip = PyList_GET_SIZE(skip_list);
    if (n_skip > 256) {
        PyErr_SetString(PyExc_ValueError, "walk_from: at most 256 states to skip");
        return NULL;
    }
    for (Py_ssize_t i = 0; i < n_skip; i++) {
        skip[i] = PyLong_AsLongLong(PyList_GET_ITEM(skip_list, i));
        if (skip[i] == -1 && PyErr_Occurred())
            return NULL;
    }
    Py_buffer row = {0}, map = {0};
    int have_row = 0, have_map = 0;
    Bits bits, *use_bits = NULL;
    PyObject *result = NULL;
    Stack st = {NULL, 0, 0};
    if (row_obj != Py_None) {
        if (PyObject_GetBuffer(row_obj, &row, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT | PyBUF_WRITABLE) < 0)
            goto done;
        have_row = 1;
        if (PyObject_GetBuffer(map_obj, &map, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT) < 0)
            goto done;
        have_map = 1;
        if (check_buffer(&row, "row", 1, 4, "IL") < 0 || check_buffer(&map, "rank_to_id", 1, 8, "ql") < 0)
            goto done;
        bits.row = (unsigned int *)row.buf, bits.to_id = (const long long *)map.buf;
        bits.n_ranks = map.shape[0], bits.size = (long long)row.shape[0] * 32;
        use_bits = &bits;
    }
    if (push_leaving(self, &st, leaving) < 0)
        goto done;
    const int *trow = (const int *)self->table.buf + g * 256;
    const char *exits = (const char *)self->exits.buf;
    for (int b = 0; b < 256; b++) {
        long long nxt = trow[b];
        long long lo = self->first[b], hi = self->first[b + 1];
        if (nxt == self->dead || lo >= hi || skipped(skip, n_skip, nxt))
            continue;
        if (check_state(self, nxt) < 0 || stack_push(&st, 1, lo, hi, nxt, exits[nxt] != 0) < 0)
            goto done;
    }
    result = run_walk(self, st, shared, budget, few, out, use_bits);
    st.v = NULL; /* freed there */
done:
    PyMem_Free(st.v);
    if (have_row)
        PyBuffer_Release(&row);
    if (have_map)
        PyBuffer_Release(&map);
    return result;
}

/* State g's roots grouped by the state their first byte leads to (in first-byte order): each group's state,
 * tokens, and first bytes (a 256-bit set); `total`: the tokens under the roots. */
typedef struct {
    long long state[256], count[256], total;
    uint64_t firsts[256][4];
    int n, size[256];
} Groups;

static int root_groups_of(TrieWalkObject *self, long long g, Groups *gr) {
    const int *row = (const int *)self->table.buf + g * 256;
    gr->n = 0, gr->total = 0;
    for (int b = 0; b < 256; b++) {
        long long nxt = row[b];
        long long lo = self->first[b], hi = self->first[b + 1];
        if (nxt == self->dead || lo >= hi)
            continue;
        if (check_state(self, nxt) < 0)
            return -1;
        int k = 0;
        while (k < gr->n && gr->state[k] != nxt)
            k++;
        if (k == gr->n) {
            gr->state[k] = nxt, gr->count[k] = 0, gr->size[k] = 0;
            memset(gr->firsts[k], 0, sizeof(gr->firsts[k]));
            gr->n++;
        }
        gr->firsts[k][b >> 6] |= (uint64_t)1 << (b & 63);
        gr->count[k] += hi - lo;
        gr->size[k]++;
        gr->total += hi - lo;
    }
    return 0;
}

/* root_groups(g, few): TrieWalk.root_groups: (the tokens under g's live first bytes, [(state, tokens, first
 * bytes as bytes) for each state those bytes lead to with more than `few` tokens, by first byte]). */
static PyObject *TrieWalk_root_groups(TrieWalkObject *self, PyObject *args) {
    long long g, few;
    if (!PyArg_ParseTuple(args, "LL", &g, &few))
        return NULL;
    if (self->words == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "TrieWalk not initialized");
        return NULL;
    }
    Groups gr;
    if (check_state(self, g) < 0 || root_groups_of(self, g, &gr) < 0)
        return NULL;
    PyObject *groups = PyList_New(0);
    if (groups == NULL)
        return NULL;
    for (int k = 0; k < gr.n; k++) {
        if (gr.count[k] <= few)
            continue;
        PyObject *firsts = PyBytes_FromStringAndSize(NULL, gr.size[k]);
        if (firsts == NULL)
            goto fail;
        char *f = PyBytes_AS_STRING(firsts);
        for (int b = 0, i = 0; b < 256; b++)
            if ((gr.firsts[k][b >> 6] >> (b & 63)) & 1)
                f[i++] = (char)b;
        PyObject *item = Py_BuildValue("(LLN)", gr.state[k], gr.count[k], firsts);
        if (item == NULL || PyList_Append(groups, item) < 0) {
            Py_XDECREF(item);
            goto fail;
        }
        Py_DECREF(item);
    }
    return Py_BuildValue("(LN)", gr.total, groups);
fail:
    Py_DECREF(groups);
    return NULL;
}

static int cmp_ll(const void *a, const void *b) {
    long long x = *(const long long *)a, y = *(const long long *)b;
    return x < y ? -1 : x > y;
}

/* classify(g, row, rank_to_id, shared, budget, few_groups, few, wide, wide_limit): cfg_rows'
 * `StateRows._walk_trie` of state g in one call: the roots grouped (root_groups(g, few_groups)); each group's
 * state's shared walk at depth 1 (the memo, else `shared(state, 1)` once; none asked for states flagged
 * off_loop) taking its first bytes (memoized per region and byte set); the tokens of the groups with no
 * shared walk into states with at least `wide` live bytes counted; then walk_from(g, ...) with the nodes
 * leaving the shared walks and the other roots (deeper shared walks through the memo too). The inside tokens
 * are set in `row` (uint32 or int32 [n_words], zeroed first; by `rank_to_id`). Returns (the tokens under the
 * roots, the sorted uncertain ranks as int64 bytes, whether the row has a bit); None past `budget` nodes;
 * False when more than `wide_limit` tokens go into wide states with no shared walk (the caller's pair walk
 * takes those: `_walk_trie`); the row is zero again in both cases. */
static PyObject *TrieWalk_classify(TrieWalkObject *self, PyObject *args) {
    PyObject *row_obj, *map_obj, *shared;
    long long g, budget, few_groups, few, wide, wide_limit;
    if (!PyArg_ParseTuple(args, "LOOOLLLLL", &g, &row_obj, &map_obj, &shared, &budget, &few_groups, &few, &wide,
                          &wide_limit))
        return NULL;
    if (self->words == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "TrieWalk not initialized");
        return NULL;
    }
    if (check_state(self, g) < 0)
        return NULL;
    if (!PyCallable_Check(shared)) {
        PyErr_SetString(PyExc_TypeError, "classify: shared must be callable");
        return NULL;
    }
    Py_buffer row, map;
    if (get_buffer(row_obj, &row, "row", 1, 4, "iIlL", 1) < 0)
        return NULL;
    if (get_buffer(map_obj, &map, "rank_to_id", 1, 8, "ql", 0) < 0) {
        PyBuffer_Release(&row);
        return NULL;
    }
    Py_ssize_t n_words = row.shape[0];
    uint32_t *words = row.buf;
    memset(words, 0, (size_t)n_words * 4);
    Bits bits = {(unsigned int *)words, map.buf, map.shape[0], (long long)n_words * 32};
    WalkCtx cx = {shared, NULL, 1, &bits, {NULL, 0, 0}, {NULL, 0, 0}, {0}, {0}};
    Stack st = {NULL, 0, 0};
    PyObject *result = NULL;
    Groups gr;
    long long skip[256], n_wide = 0;
    Py_ssize_t n_skip = 0;
    const char *off_loop = self->have_off_loop ? (const char *)self->off_loop.buf : NULL;
    const char *exits = (const char *)self->exits.buf;
    if (root_groups_of(self, g, &gr) < 0)
        goto done;
    for (int k = 0; k < gr.n; k++) {
        if (gr.count[k] <= few_groups)
            continue;
        long long s = gr.state[k];
        SharedHit *h = NULL;
        if (!(off_loop && off_loop[s]) && (h = shared_hit(self, s, 1, shared)) == NULL)
            goto done;
        if (h == NULL || h->parts == NULL) {
            StateInfo *info = state_info(self, s);
            if (info == NULL)
                goto done;
            if (info->n_live >= wide)
                n_wide += gr.count[k];
            continue;
        }
        skip[n_skip++] = s;
        FirstBytes *m = region_first(h->parts, gr.firsts[k], &bits, n_words);
        if (m == NULL)
            goto done;
        for (Py_ssize_t i = 0; i < n_words; i++)
            words[i] |= m->row[i];
        for (Py_ssize_t i = 0; i < m->unc.n; i++)
            if (vec_push(&cx.unsure_ranks, m->unc.v[i]) < 0)
                goto done;
        if (push_taken(self, &st, h, &m->leaving) < 0)
            goto done;
    }
    if (n_wide > wide_limit) {
        memset(words, 0, (size_t)n_words * 4);
        result = Py_NewRef(Py_False);
        goto done;
    }
    const int *trow = (const int *)self->table.buf + g * 256;
    for (int b = 0; b < 256; b++) {
        long long nxt = trow[b];
        long long lo = self->first[b], hi = self->first[b + 1];
        if (nxt == self->dead || lo >= hi || skipped(skip, n_skip, nxt))
            continue;
        if (stack_push(&st, 1, lo, hi, nxt, exits[nxt] != 0) < 0)
            goto done;
    }
    int walked = walk_core(self, &st, budget, few, &cx);
    if (walked < 0)
        goto done;
    if (walked == 0) {
        memset(words, 0, (size_t)n_words * 4);
        result = Py_NewRef(Py_None);
        goto done;
    }
    for (Py_ssize_t i = 0; i < cx.unsure.n; i += 2)
        for (long long r = cx.unsure.v[i]; r < cx.unsure.v[i + 1]; r++)
            if (vec_push(&cx.unsure_ranks, r) < 0)
                goto done;
    if (cx.unsure_ranks.n > 1)
        qsort(cx.unsure_ranks.v, (size_t)cx.unsure_ranks.n, sizeof(long long), cmp_ll);
    int any = 0;
    for (Py_ssize_t i = 0; i < n_words && !any; i++)
        any = words[i] != 0;
    result = Py_BuildValue("(Ly#O)", gr.total, cx.unsure_ranks.n ? (const char *)cx.unsure_ranks.v : "",
                           cx.unsure_ranks.n * 8,
                           any ? Py_True : Py_False);
done:
    if (result == NULL)
        memset(words, 0, (size_t)n_words * 4);
    PyMem_Free(st.v);
    walk_ctx_free(&cx);
    PyBuffer_Release(&row);
    PyBuffer_Release(&map);
    return result;
}

static PyMethodDef TrieWalk_methods[] = {
    {"roots", (PyCFunction)TrieWalk_roots, METH_O, "roots(g): the walk's start from state g."},
    {"walk", (PyCFunction)TrieWalk_walk, METH_VARARGS,
     "walk(frontier, shared, budget, few, out): out with the ranges added, or None past budget."},
    {"walk_from", (PyCFunction)TrieWalk_walk_from, METH_VARARGS,
     "walk_from(g, skip, leaving, shared, budget, few, out, row, rank_to_id): from leaving nodes and g's roots."},
    {"root_groups", (PyCFunction)TrieWalk_root_groups, METH_VARARGS,
     "root_groups(g, few): (tokens under g's roots, [(state, tokens, first bytes)] of groups over few)."},
    {"classify", (PyCFunction)TrieWalk_classify, METH_VARARGS,
     "classify(g, row, rank_to_id, shared, budget, few_groups, few, wide, wide_limit): a first visit of g in one "
     "call."},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject TrieWalkType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "decc.grammars.contextfree.trie_walk_c.TrieWalk",
    .tp_basicsize = sizeof(TrieWalkObject),
    .tp_dealloc = (destructor)TrieWalk_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "TrieWalk(words, first, table, dead, exit_point, enters, off_loop=None): cfg_walk.TrieWalk, "
              "compiled.",
    .tp_methods = TrieWalk_methods,
    .tp_init = (initproc)TrieWalk_init,
    .tp_new = PyType_GenericNew,
};

/* walks_within(flat, states, w, d): some state of `states` walks the bytes w[d:] through the byte table
 * `flat` (int32, flat[g * 256 + b], negative: dead) and ends live. */
static PyObject *walks_within(PyObject *module, PyObject *args) {
    (void)module;
    PyObject *flat, *states;
    Py_buffer w, tab;
    Py_ssize_t d;
    if (!PyArg_ParseTuple(args, "OOy*n", &flat, &states, &w, &d))
        return NULL;
    if (PyObject_GetBuffer(flat, &tab, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT) < 0) {
        PyBuffer_Release(&w);
        return NULL;
    }
    PyObject *result = NULL;
    PyObject *seq = NULL;
    if (check_buffer(&tab, "flat", 1, 4, "i") < 0)
        goto done;
    seq = PySequence_Fast(states, "states must be a sequence");
    if (seq == NULL)
        goto done;
    const int *t = (const int *)tab.buf;
    const unsigned char *bytes = (const unsigned char *)w.buf;
    long long size = tab.shape[0];
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
    if (d < 0)
        d = 0;
    if (d > w.len) /* w[d:] is empty: the first state walks it */
        d = w.len;
    for (Py_ssize_t i = 0; i < n; i++) {
        long long g = PyLong_AsLongLong(PySequence_Fast_GET_ITEM(seq, i));
        if (g == -1 && PyErr_Occurred())
            goto done;
        Py_ssize_t j = d;
        for (; j < w.len; j++) {
            long long at = (g << 8) | bytes[j];
            if (at < 0 || at >= size) {
                PyErr_SetString(PyExc_IndexError, "index out of bounds on dimension 1");
                goto done;
            }
            g = t[at];
            if (g < 0)
                break;
        }
        if (j == w.len) {
            result = Py_True;
            Py_INCREF(result);
            goto done;
        }
    }
    result = Py_False;
    Py_INCREF(result);
done:
    Py_XDECREF(seq);
    PyBuffer_Release(&tab);
    PyBuffer_Release(&w);
    return result;
}

static int cmp_pairs(const void *a, const void *b) {
    long long x = ((const long long *)a)[0], y = ((const long long *)b)[0];
    return x < y ? -1 : x > y;
}

/* ranges_to_ranks(flat): cfg_walk.ranges_to_ranks' sorted ranks of the disjoint rank ranges
 * [lo0, hi0, lo1, hi1, ...], as the bytes of an int64 array (a bytearray, for np.frombuffer). */
static PyObject *ranges_to_ranks(PyObject *module, PyObject *flat) {
    (void)module;
    PyObject *seq = PySequence_Fast(flat, "ranges must be a sequence");
    if (seq == NULL)
        return NULL;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
    PyObject *result = NULL;
    long long *pairs = NULL;
    if (n % 2) {
        PyErr_SetString(PyExc_ValueError, "ranges come in (lo, hi) pairs");
        goto done;
    }
    pairs = PyMem_Malloc((size_t)(n ? n : 1) * sizeof(long long));
    if (pairs == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    long long total = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        pairs[i] = PyLong_AsLongLong(PySequence_Fast_GET_ITEM(seq, i));
        if (pairs[i] == -1 && PyErr_Occurred())
            goto done;
        if (i % 2 && pairs[i] < pairs[i - 1]) {
            PyErr_SetString(PyExc_ValueError, "a range ends before it starts");
            goto done;
        }
        if (i % 2)
            total += pairs[i] - pairs[i - 1];
    }
    qsort(pairs, (size_t)(n / 2), 2 * sizeof(long long), cmp_pairs);
    result = PyByteArray_FromStringAndSize(NULL, (Py_ssize_t)(total * (long long)sizeof(long long)));
    if (result == NULL)
        goto done;
    long long *out = (long long *)PyByteArray_AS_STRING(result);
    for (Py_ssize_t i = 0; i < n; i += 2)
        for (long long r = pairs[i]; r < pairs[i + 1]; r++)
            *out++ = r;
done:
    PyMem_Free(pairs);
    Py_DECREF(seq);
    return result;
}

/* A bytearray of n_words zero uint32 words (a bitmask row), with `*row` set to its words; NULL on error. */
static PyObject *zero_row(Py_ssize_t n_words, unsigned int **row) {
    PyObject *out = PyByteArray_FromStringAndSize(NULL, n_words * 4);
    if (out == NULL)
        return NULL;
    *row = (unsigned int *)PyByteArray_AS_STRING(out);
    memset(*row, 0, (size_t)n_words * 4);
    return out;
}

/* bits_of(ids, n_words): cfg_walk.bits_of's bitmask row (uint32 [n_words]) with the bits of the token
 * ids (an int64 buffer; negative ones count from the end, as numpy indexes) set, as a bytearray. */
static PyObject *bits_of(PyObject *module, PyObject *args) {
    (void)module;
    Py_buffer ids;
    Py_ssize_t n_words;
    if (!PyArg_ParseTuple(args, "y*n", &ids, &n_words))
        return NULL;
    PyObject *result = NULL;
    if (n_words < 0 || ids.len % 8) {
        PyErr_SetString(PyExc_ValueError, "bits_of: int64 ids and a word count");
        goto done;
    }
    unsigned int *row;
    result = zero_row(n_words, &row);
    if (result == NULL)
        goto done;
    const long long *v = (const long long *)ids.buf;
    long long size = (long long)n_words * 32;
    for (Py_ssize_t i = 0; i < ids.len / 8; i++) {
        long long t = v[i] < 0 ? v[i] + size : v[i];
        if (t < 0 || t >= size) {
            PyErr_Format(PyExc_IndexError, "token id %lld out of the row", v[i]);
            Py_CLEAR(result);
            goto done;
        }
        row[t >> 5] |= 1u << (t & 31);
    }
done:
    PyBuffer_Release(&ids);
    return result;
}


/* bits_of_ranks(ranges, arrays, rank_to_id, n_words): cfg_walk.bits_of_ranks, a first visit's inside row
 * (uint32 [n_words]): the bits of the tokens whose byte-order ranks lie in the flat [lo, hi) `ranges` (a
 * list of ints) or in the int64 `arrays`, through the int64 map `rank_to_id`, in one pass (the numpy way
 * took a slice or an index array per part, a concatenation and a bits_of: about 15 us a visit). */
static PyObject *bits_of_ranks(PyObject *module, PyObject *args) {
    (void)module;
    PyObject *ranges, *arrays;
    Py_buffer map;
    Py_ssize_t n_words;
    if (!PyArg_ParseTuple(args, "O!O!y*n", &PyList_Type, &ranges, &PyList_Type, &arrays, &map, &n_words))
        return NULL;
    PyObject *result = NULL;
    if (n_words < 0 || map.len % 8 || PyList_GET_SIZE(ranges) % 2) {
        PyErr_SetString(PyExc_ValueError, "bits_of_ranks: [lo, hi, ...] ranges, int64 arrays and map, a word count");
        goto done;
    }
    unsigned int *row;
    result = zero_row(n_words, &row);
    if (result == NULL)
        goto done;
    Bits x = {row, (const long long *)map.buf, (long long)(map.len / 8), (long long)n_words * 32};
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(ranges); i += 2) {
        long long lo = PyLong_AsLongLong(PyList_GET_ITEM(ranges, i));
        long long hi = PyLong_AsLongLong(PyList_GET_ITEM(ranges, i + 1));
        if ((lo == -1 || hi == -1) && PyErr_Occurred())
            goto fail;
        if (lo > hi) {
            PyErr_Format(PyExc_ValueError, "rank range [%lld, %lld) runs backwards", lo, hi);
            goto fail;
        }
        for (long long r = lo; r < hi; r++)
            if (set_rank_bit(&x, r) < 0)
                goto fail;
    }
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(arrays); i++)
        if (set_rank_bits(&x, PyList_GET_ITEM(arrays, i)) < 0)
            goto fail;
    goto done;
fail:
    Py_CLEAR(result);
done:
    PyBuffer_Release(&map);
    return result;
}

/* pair_walk(src, t_idx, cur, table, dead, exit_point, enters, lengths, padded, stop, depth): cfg_walk.pair_walk
 * one pair at a time (src, t_idx, lengths: int64; cur: int32; table: int32 [R, 256]; exit_point, stop: bool
 * [R] or more, stop None for none; enters: bool [R, 256]; padded: uint8 [N, width]), with the same classes.
 * Returns 9 bytearrays: in_src, in_tok, unc_src, unc_tok, out_src, out_tok, out_at, out_state (int64) and
 * out_passed (bool). */
static PyObject *pair_walk(PyObject *module, PyObject *args) {
    (void)module;
    Py_buffer src, tok, cur, tab, ex, en, len, pad, st;
    PyObject *pad_obj, *stop_obj;
    long long dead;
    Py_ssize_t depth;
    int have_stop = 0;
    if (!PyArg_ParseTuple(args, "y*y*y*y*Ly*y*y*OOn", &src, &tok, &cur, &tab, &dead, &ex, &en, &len,
                          &pad_obj, &stop_obj, &depth))
        return NULL;
    PyObject *result = NULL;
    Vec v[8];
    unsigned char *passed_out = NULL;
    Py_ssize_t passed_n = 0, passed_cap = 0;
    memset(v, 0, sizeof v);
    int have_pad = PyObject_GetBuffer(pad_obj, &pad, PyBUF_C_CONTIGUOUS | PyBUF_ND) == 0;
    if (!have_pad)
        goto release;
    if (stop_obj != Py_None) {
        if (PyObject_GetBuffer(stop_obj, &st, PyBUF_C_CONTIGUOUS) < 0)
            goto release;
        have_stop = 1;
    }
    Py_ssize_t n = src.len / 8;
    long long n_states = tab.len / (256 * 4);
    if (src.len % 8 || tok.len != src.len || cur.len != (Py_ssize_t)(n * 4) || tab.len % (256 * 4) ||
        en.len != tab.len / 4 || ex.len < n_states || pad.ndim != 2 || len.len != pad.shape[0] * 8 ||
        (have_stop && st.len < n_states) || dead < 0 || dead >= n_states || depth < 0) {
        PyErr_SetString(PyExc_ValueError, "pair_walk: arrays of the wrong sizes or kinds");
        goto release;
    }
    const long long *s_v = src.buf, *t_v = tok.buf, *lengths = len.buf;
    const int *c_v = cur.buf, *table = tab.buf;
    const unsigned char *exit_point = ex.buf, *enters = en.buf, *bytes = pad.buf;
    const unsigned char *stop = have_stop ? st.buf : NULL;
    Py_ssize_t width = pad.shape[1], n_tok = pad.shape[0];
    for (Py_ssize_t i = 0; i < n; i++) {
        long long t = t_v[i], q = c_v[i];
        if (t < 0 || t >= n_tok || q < 0 || q >= n_states) {
            PyErr_SetString(PyExc_IndexError, "pair_walk: a token row or state out of range");
            goto release;
        }
        int passed = exit_point[q] != 0;
        long long j = depth, leave_at = -1;
        if (stop != NULL && stop[q]) {
            passed = 0; /* left on the first byte: nothing passed yet */
            leave_at = j;
        }
        while (leave_at < 0) {
            int done = lengths[t] == j;
            long long at = q * 256 + bytes[t * width + (j < width - 1 ? j : width - 1)];
            long long nq = table[at];
            if (nq < 0 || nq >= n_states) {
                PyErr_SetString(PyExc_IndexError, "pair_walk: a table entry out of range");
                goto release;
            }
            passed |= enters[at] != 0;
            if (done) {
                if (vec_push(&v[0], s_v[i]) < 0 || vec_push(&v[1], t) < 0)
                    goto release;
                break;
            }
            if (nq == dead) {
                if (passed && (vec_push(&v[2], s_v[i]) < 0 || vec_push(&v[3], t) < 0))
                    goto release;
                break;
            }
            q = nq;
            j++;
            if (stop != NULL && stop[q]) {
                leave_at = j;
                break;
            }
            passed |= exit_point[q] != 0;
        }
        if (leave_at >= 0) {
            if (vec_push(&v[4], s_v[i]) < 0 || vec_push(&v[5], t) < 0 || vec_push(&v[6], leave_at) < 0 ||
                vec_push(&v[7], q) < 0)
                goto release;
            if (passed_n == passed_cap) {
                passed_cap = passed_cap ? 2 * passed_cap : 256;
                unsigned char *p = PyMem_Realloc(passed_out, (size_t)passed_cap);
                if (p == NULL) {
                    PyErr_NoMemory();
                    goto release;
                }
                passed_out = p;
            }
            passed_out[passed_n++] = (unsigned char)passed;
        }
    }
    result = PyTuple_New(9);
    if (result == NULL)
        goto release;
    for (int k = 0; k < 9; k++) {
        PyObject *a = k < 8 ? PyByteArray_FromStringAndSize((const char *)v[k].v, v[k].n * 8)
                            : PyByteArray_FromStringAndSize((const char *)passed_out, passed_n);
        if (a == NULL) {
            Py_CLEAR(result);
            goto release;
        }
        PyTuple_SET_ITEM(result, k, a);
    }
release:
    for (int k = 0; k < 8; k++)
        PyMem_Free(v[k].v);
    PyMem_Free(passed_out);
    if (have_stop)
        PyBuffer_Release(&st);
    PyBuffer_Release(&src);
    PyBuffer_Release(&tok);
    PyBuffer_Release(&cur);
    PyBuffer_Release(&tab);
    PyBuffer_Release(&ex);
    PyBuffer_Release(&en);
    PyBuffer_Release(&len);
    if (have_pad)
        PyBuffer_Release(&pad);
    return result;
}

/* rank_lcps(blob, offsets): each rank's common prefix length with the previous rank's (int64 [n], 0 for rank 0),
 * the tokens' bytes joined in `blob`, bounded by `offsets` (int64 [n + 1]). */
static PyObject *rank_lcps(PyObject *module, PyObject *args) {
    (void)module;
    Py_buffer blob, off;
    if (!PyArg_ParseTuple(args, "y*y*", &blob, &off))
        return NULL;
    PyObject *result = NULL;
    Py_ssize_t n = off.len / 8 - 1;
    const long long *o = off.buf;
    const unsigned char *b = blob.buf;
    if (off.len % 8 || n < 0) {
        PyErr_SetString(PyExc_ValueError, "rank_lcps: offsets of the wrong size");
        goto release;
    }
    for (Py_ssize_t r = 0; r < n; r++)
        if (o[r] < 0 || o[r + 1] < o[r] || o[r + 1] > blob.len) {
            PyErr_SetString(PyExc_ValueError, "rank_lcps: offsets out of order or past the bytes");
            goto release;
        }
    result = PyByteArray_FromStringAndSize(NULL, n * 8);
    if (result == NULL)
        goto release;
    long long *out = (long long *)PyByteArray_AS_STRING(result);
    for (Py_ssize_t r = 0; r < n; r++) {
        long long m = 0;
        if (r > 0) {
            long long lim = o[r + 1] - o[r] < o[r] - o[r - 1] ? o[r + 1] - o[r] : o[r] - o[r - 1];
            while (m < lim && b[o[r] + m] == b[o[r - 1] + m])
                m++;
        }
        out[r] = m;
    }
release:
    PyBuffer_Release(&blob);
    PyBuffer_Release(&off);
    return result;
}

/* region_walk(s, depth, table, dead, exit_point, stop, enters, blob, offsets, lcps): cfg_loops.region_walk_py's
 * walk of every token of at least `depth` bytes from state s (table: int32 [R, 256]; exit_point, stop: bool [R]
 * or more; enters: bool [R, 256]), the tokens in rank order (`blob`: their bytes joined, `offsets`: int64
 * [n + 1] bounds, `lcps`: rank_lcps), each walk resumed from the states of the prefix it shares with the previous token's, so that the
 * cost is per trie node rather than per byte. Returns (inside ranks, uncertain ranks: int32 bytearrays,
 * sorted; the number of leaving tokens; the leaving trie nodes by rank: depth, lo, hi, state (int64
 * bytearrays) and passed (bool bytearray)). */
static PyObject *region_walk(PyObject *module, PyObject *args) {
    (void)module;
    long long s, dead;
    Py_ssize_t depth;
    Py_buffer tab, ex, st, en, blob, off, lc;
    if (!PyArg_ParseTuple(args, "Lny*Ly*y*y*y*y*y*", &s, &depth, &tab, &dead, &ex, &st, &en, &blob, &off, &lc))
        return NULL;
    PyObject *result = NULL;
    Vec v[4]; /* leaving: at, lo, hi, state */
    memset(v, 0, sizeof v);
    unsigned char *lp = NULL, *ps = NULL;
    Py_ssize_t lp_n = 0, lp_cap = 0;
    int *inside = NULL, *unc = NULL;
    long long *qs = NULL;
    Py_ssize_t n_in = 0, n_unc = 0, n_out = 0;
    long long n_states = tab.len / (256 * 4);
    Py_ssize_t n = off.len / 8 - 1;
    if (tab.len % (256 * 4) || en.len != tab.len / 4 || ex.len < n_states || st.len < n_states || off.len % 8 ||
        n < 0 || lc.len != n * 8 || dead < 0 || dead >= n_states || s < 0 || s >= n_states || depth < 0) {
        PyErr_SetString(PyExc_ValueError, "region_walk: arrays of the wrong sizes or kinds");
        goto release;
    }
    const int *table = tab.buf;
    const unsigned char *exit_point = ex.buf, *stop = st.buf, *enters = en.buf, *bytes = blob.buf;
    const long long *offsets = off.buf, *lcps = lc.buf;
    Py_ssize_t max_len = 0;
    for (Py_ssize_t r = 0; r < n; r++) {
        if (offsets[r] < 0 || offsets[r + 1] < offsets[r] || offsets[r + 1] > blob.len) {
            PyErr_SetString(PyExc_ValueError, "region_walk: offsets out of order or past the bytes");
            goto release;
        }
        if (lcps[r] < 0 || (r > 0 && (lcps[r] > offsets[r + 1] - offsets[r] || lcps[r] > offsets[r] - offsets[r - 1]))) {
            PyErr_SetString(PyExc_ValueError, "region_walk: a prefix length past its tokens");
            goto release;
        }
        if (offsets[r + 1] - offsets[r] > max_len)
            max_len = (Py_ssize_t)(offsets[r + 1] - offsets[r]);
    }
    inside = PyMem_Malloc((size_t)(n + 1) * sizeof(int));
    unc = PyMem_Malloc((size_t)(n + 1) * sizeof(int));
    qs = PyMem_Malloc((size_t)(max_len + depth + 2) * sizeof(long long));
    ps = PyMem_Malloc((size_t)(max_len + depth + 2));
    if (inside == NULL || unc == NULL || qs == NULL || ps == NULL) {
        PyErr_NoMemory();
        goto release;
    }
    qs[depth] = s;
    ps[depth] = exit_point[s] != 0;
    /* the previous walked token: its bytes, and where its walk ended before its end (term: the byte whose
     * step ended it, -1 if it ended inside; kind 0 died, 1 died uncertain, 2 left; leaving state, passed) */
    int walked = 0;
    Py_ssize_t valid = depth, term = -1;
    int kind = 0, t_passed = 0;
    long long t_state = 0;
    Py_ssize_t shared = 0; /* the common prefix with the previous walked token: the least lcp since */
    for (Py_ssize_t r = 0; r < n; r++) {
        Py_ssize_t len = (Py_ssize_t)(offsets[r + 1] - offsets[r]);
        if (lcps[r] < shared)
            shared = (Py_ssize_t)lcps[r];
        if (len < depth)
            continue;
        const unsigned char *w = bytes + offsets[r];
        Py_ssize_t m = walked ? shared : 0;
        walked = 1;
        shared = PY_SSIZE_T_MAX;
        long long at_leave = -1, q_leave = 0;
        int p_leave = 0;
        if (stop[s]) { /* left on the first byte: nothing passed yet */
            at_leave = depth;
            q_leave = s;
        } else if (term >= 0 && m > term) { /* ends as the previous token did */
            if (kind == 1)
                unc[n_unc++] = (int)r;
            if (kind == 2) {
                at_leave = term + 1;
                q_leave = t_state;
                p_leave = t_passed;
            }
        } else {
            Py_ssize_t j = m < valid ? m : valid;
            if (j < depth)
                j = depth;
            long long q = qs[j];
            int passed = ps[j];
            term = -1;
            for (;;) {
                if (len == j) {
                    inside[n_in++] = (int)r;
                    valid = j;
                    break;
                }
                long long at = q * 256 + w[j];
                long long nq = table[at];
                if (nq < 0 || nq >= n_states) {
                    PyErr_SetString(PyExc_IndexError, "region_walk: a table entry out of range");
                    goto release;
                }
                passed |= enters[at] != 0;
                if (nq == dead) {
                    kind = passed != 0;
                    if (passed)
                        unc[n_unc++] = (int)r;
                    term = j;
                    valid = j;
                    break;
                }
                q = nq;
                j++;
                if (stop[q]) {
                    kind = 2;
                    term = j - 1;
                    valid = j - 1;
                    t_state = q;
                    t_passed = passed;
                    at_leave = j;
                    q_leave = q;
                    p_leave = passed;
                    break;
                }
                passed |= exit_point[q] != 0;
                qs[j] = q;
                ps[j] = (unsigned char)passed;
            }
        }
        if (at_leave < 0 && term >= 0 && kind == 0) {
            /* died, not uncertain: the next tokens sharing the byte it died on die alike, leaving nothing (a
             * region from a UTF-8 continuation state: most of the vocabulary, ~200 us a walk token by token) */
            while (r + 1 < n && lcps[r + 1] > term)
                r++;
            continue;
        }
        if (at_leave >= 0) {
            n_out++;
            Py_ssize_t k = v[0].n;
            if (k > 0 && v[2].v[k - 1] == r && v[0].v[k - 1] == at_leave && m >= at_leave) {
                v[2].v[k - 1] = r + 1; /* the same trie node: one more token */
                continue;
            }
            if (vec_push(&v[0], at_leave) < 0 || vec_push(&v[1], r) < 0 || vec_push(&v[2], r + 1) < 0 ||
                vec_push(&v[3], q_leave) < 0)
                goto release;
            if (lp_n == lp_cap) {
                lp_cap = lp_cap ? 2 * lp_cap : 256;
                unsigned char *p = PyMem_Realloc(lp, (size_t)lp_cap);
                if (p == NULL) {
                    PyErr_NoMemory();
                    goto release;
                }
                lp = p;
            }
            lp[lp_n++] = (unsigned char)p_leave;
        }
    }
    result = Py_BuildValue("(y#y#nNNNNN)", (const char *)inside, (Py_ssize_t)(n_in * 4), (const char *)unc,
                           (Py_ssize_t)(n_unc * 4), n_out,
                           PyByteArray_FromStringAndSize((const char *)v[0].v, v[0].n * 8),
                           PyByteArray_FromStringAndSize((const char *)v[1].v, v[1].n * 8),
                           PyByteArray_FromStringAndSize((const char *)v[2].v, v[2].n * 8),
                           PyByteArray_FromStringAndSize((const char *)v[3].v, v[3].n * 8),
                           PyByteArray_FromStringAndSize((const char *)lp, lp_n));
release:
    for (int k = 0; k < 4; k++)
        PyMem_Free(v[k].v);
    PyMem_Free(lp);
    PyMem_Free(ps);
    PyMem_Free(qs);
    PyMem_Free(inside);
    PyMem_Free(unc);
    PyBuffer_Release(&tab);
    PyBuffer_Release(&ex);
    PyBuffer_Release(&st);
    PyBuffer_Release(&en);
    PyBuffer_Release(&blob);
    PyBuffer_Release(&off);
    PyBuffer_Release(&lc);
    return result;
}

/* take_rows(src, dst, dead, n_live): StateRows' copy of new RTN rows (int32 [k, 256], -1 dead) into its own
 * table's rows `dst` (its dead state `dead` for -1), each row's live bytes counted into n_live (int64 [k]). */
static PyObject *take_rows(PyObject *module, PyObject *args) {
    (void)module;
    PyObject *so, *dobj, *no;
    long long dead;
    if (!PyArg_ParseTuple(args, "OOLO", &so, &dobj, &dead, &no))
        return NULL;
    Py_buffer src, dst, nl;
    if (get_buffer(so, &src, "src", 2, 4, "il", 0) < 0)
        return NULL;
    if (get_buffer(dobj, &dst, "dst", 2, 4, "il", 1) < 0) {
        PyBuffer_Release(&src);
        return NULL;
    }
    if (get_buffer(no, &nl, "n_live", 1, 8, "qlL", 1) < 0) {
        PyBuffer_Release(&src);
        PyBuffer_Release(&dst);
        return NULL;
    }
    PyObject *result = NULL;
    Py_ssize_t k = src.shape[0];
    if (dst.shape[0] != k || nl.shape[0] != k) {
        PyErr_SetString(PyExc_ValueError, "take_rows: src, dst and n_live differ in rows");
        goto done;
    }
    const int32_t *a = src.buf;
    int32_t *b = dst.buf, d = (int32_t)dead;
    int64_t *cnt = nl.buf;
    for (Py_ssize_t i = 0; i < k; i++) {
        int64_t c = 0;
        for (int j = 0; j < 256; j++) {
            int32_t v = a[i * 256 + j];
            c += v >= 0;
            b[i * 256 + j] = v >= 0 ? v : d;
        }
        cnt[i] = c;
    }
    result = Py_NewRef(Py_None);
done:
    PyBuffer_Release(&src);
    PyBuffer_Release(&dst);
    PyBuffer_Release(&nl);
    return result;
}

typedef struct {
    uint64_t w[4];
} Bits256;

/* The (callee, nxt) pairs of calls[g], as longs; -1 on error. */
static int call_pair(PyObject *edge, long *callee, long *nxt) {
    if (!PyTuple_Check(edge) || PyTuple_GET_SIZE(edge) != 2) {
        PyErr_SetString(PyExc_TypeError, "a call edge must be a pair");
        return -1;
    }
    *callee = PyLong_AsLong(PyTuple_GET_ITEM(edge, 0));
    *nxt = PyLong_AsLong(PyTuple_GET_ITEM(edge, 1));
    return (*callee == -1 || *nxt == -1) && PyErr_Occurred() ? -1 : 0;
}

/* rule_exits(calls, lo, hi, table, accepting, nullable, first, enters, exit_point): cfg_rows'
 * `call_first` (into enters: bool [hi - lo, 256]) and `accepting_through_nullable` (into exit_point: bool
 * [hi - lo]) of the built rule whose states are lo..hi-1: `calls` the RTN's list of call edges per state,
 * `table` its byte table (int32 [>= hi, 256], -1 dead), `accepting` (bool [>= hi]), `nullable` (uint8 per
 * rule) and `first` (uint8 [rules, 32]: each rule's first bytes, bit b of byte b >> 3). The same fixpoints. */
static PyObject *rule_exits(PyObject *module, PyObject *args) {
    (void)module;
    PyObject *calls, *to, *ao, *nlo, *fo, *eo, *xo;
    Py_ssize_t lo, hi;
    if (!PyArg_ParseTuple(args, "O!nnOOOOOO", &PyList_Type, &calls, &lo, &hi, &to, &ao, &nlo, &fo, &eo, &xo))
        return NULL;
    Py_buffer tab = {0}, acc = {0}, nul = {0}, fst = {0}, ent = {0}, ext = {0};
    Py_buffer *bufs[] = {&tab, &acc, &nul, &fst, &ent, &ext};
    PyObject *objs[] = {to, ao, nlo, fo, eo, xo};
    int held = 0;
    PyObject *result = NULL;
    long *src = NULL, *dst = NULL; /* the nullable call edges (state, next), rule-relative */
    Bits256 *via = NULL;
    unsigned char *callers = NULL;
    for (; held < 6; held++) {
        int flags = PyBUF_C_CONTIGUOUS | PyBUF_FORMAT | (held >= 4 ? PyBUF_WRITABLE : 0);
        if (PyObject_GetBuffer(objs[held], bufs[held], flags) < 0)
            goto done;
    }
    Py_ssize_t n = hi - lo, n_rules = fst.shape ? fst.shape[0] : 0;
    if (check_buffer(&tab, "table", 2, 4, "il") < 0 || check_buffer(&acc, "accepting", 1, 1, "?bB") < 0 ||
        check_buffer(&nul, "nullable", 1, 1, "?bB") < 0 || check_buffer(&ent, "enters", 2, 1, "?bB") < 0 ||
        check_buffer(&ext, "exit_point", 1, 1, "?bB") < 0)
        goto done;
    if (fst.ndim != 2 || fst.itemsize != 1 || fst.shape[1] != 32 || nul.shape[0] != n_rules) {
        PyErr_SetString(PyExc_ValueError, "rule_exits: first must be uint8 [rules, 32], one per nullable");
        goto done;
    }
    if (lo < 0 || n <= 0 || hi > PyList_GET_SIZE(calls) || tab.shape[0] < hi || acc.shape[0] < hi ||
        ent.shape[0] != n || ext.shape[0] != n) {
        PyErr_SetString(PyExc_ValueError, "rule_exits: the rule's states out of the arrays");
        goto done;
    }
    const int32_t *table = tab.buf;
    const unsigned char *accepting = acc.buf, *nullable = nul.buf, *first = fst.buf;
    unsigned char *enters = ent.buf, *exits = ext.buf;
    via = PyMem_Calloc((size_t)n, sizeof(Bits256));
    callers = PyMem_Calloc((size_t)n, 1);
    Py_ssize_t n_edges = 0, cap = 16;
    src = PyMem_Malloc(cap * sizeof(long));
    dst = PyMem_Malloc(cap * sizeof(long));
    if (via == NULL || callers == NULL || src == NULL || dst == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    /* check every edge once, and note the nullable ones (atn's edges) */
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *edges = PyList_GET_ITEM(calls, lo + i);
        if (!PyTuple_Check(edges)) {
            PyErr_SetString(PyExc_TypeError, "calls[g] must be a tuple");
            goto done;
        }
        callers[i] = PyTuple_GET_SIZE(edges) > 0;
        for (Py_ssize_t e = 0; e < PyTuple_GET_SIZE(edges); e++) {
            long callee, nxt;
            if (call_pair(PyTuple_GET_ITEM(edges, e), &callee, &nxt) < 0)
                goto done;
            if (callee < 0 || callee >= n_rules || nxt < lo || nxt >= hi) {
                PyErr_SetString(PyExc_ValueError, "rule_exits: a call edge out of the rule or the rules");
                goto done;
            }
            if (nullable[callee]) {
                if (n_edges == cap) {
                    cap *= 2;
                    long *s2 = PyMem_Realloc(src, cap * sizeof(long)), *d2 = s2 ? PyMem_Realloc(dst, cap * sizeof(long)) : NULL;
                    if (s2 != NULL)
                        src = s2;
                    if (d2 == NULL) {
                        PyErr_NoMemory();
                        goto done;
                    }
                    dst = d2;
                }
                src[n_edges] = (long)i;
                dst[n_edges++] = nxt - lo;
            }
        }
    }
    /* accepting_through_nullable */
    for (Py_ssize_t i = 0; i < n; i++)
        exits[i] = accepting[lo + i] != 0;
    for (int changed = 1; changed;) {
        changed = 0;
        for (Py_ssize_t e = 0; e < n_edges; e++)
            if (exits[dst[e]] && !exits[src[e]])
                exits[src[e]] = changed = 1;
    }
    /* call_first: F(g) = first(callee) | (own(nxt) | F(nxt) if the callee is nullable), over g's calls */
    for (int changed = 1; changed;) {
        changed = 0;
        for (Py_ssize_t i = 0; i < n; i++) {
            if (!callers[i])
                continue;
            Bits256 v = {{0, 0, 0, 0}};
            PyObject *edges = PyList_GET_ITEM(calls, lo + i);
            for (Py_ssize_t e = 0; e < PyTuple_GET_SIZE(edges); e++) {
                long callee, nxt;
                if (call_pair(PyTuple_GET_ITEM(edges, e), &callee, &nxt) < 0)
                    goto done;
                const unsigned char *f = first + callee * 32;
                for (int k = 0; k < 32; k++)
                    v.w[k >> 3] |= (uint64_t)f[k] << (8 * (k & 7));
                if (nullable[callee]) {
                    const int32_t *row = table + (Py_ssize_t)nxt * 256;
                    for (int b = 0; b < 256; b++)
                        if (row[b] >= 0)
                            v.w[b >> 6] |= (uint64_t)1 << (b & 63);
                    for (int k = 0; k < 4; k++)
                        v.w[k] |= via[nxt - lo].w[k];
                }
            }
            if (memcmp(&v, &via[i], sizeof v) != 0) {
                via[i] = v;
                changed = 1;
            }
        }
    }
    for (Py_ssize_t i = 0; i < n; i++)
        for (int b = 0; b < 256; b++)
            enters[i * 256 + b] = (unsigned char)((via[i].w[b >> 6] >> (b & 63)) & 1);
    result = Py_NewRef(Py_None);
done:
    for (int i = 0; i < held; i++)
        PyBuffer_Release(bufs[i]);
    PyMem_Free(via);
    PyMem_Free(callers);
    PyMem_Free(src);
    PyMem_Free(dst);
    return result;
}

static PyMethodDef module_methods[] = {
    {"ranges_to_ranks", ranges_to_ranks, METH_O,
     "ranges_to_ranks(flat): the sorted ranks of disjoint rank ranges, as int64 bytes."},
    {"bits_of", bits_of, METH_VARARGS, "bits_of(ids, n_words): a bitmask row with the ids' bits, as bytes."},
    {"bits_of_ranks", bits_of_ranks, METH_VARARGS,
     "bits_of_ranks(ranges, arrays, rank_to_id, n_words): a bitmask row with the bits of the ranks' tokens."},
    {"walks_within", walks_within, METH_VARARGS,
     "walks_within(flat, states, w, d): some state walks w[d:] through its rule's byte edges, ending live."},
    {"region_walk", region_walk, METH_VARARGS,
     "region_walk(s, depth, table, dead, exit_point, stop, enters, blob, offsets, lcps): a loop's region walk."},
    {"rank_lcps", rank_lcps, METH_VARARGS,
     "rank_lcps(blob, offsets): each rank's common prefix length with the previous one, as int64 bytes."},
    {"pair_walk", pair_walk, METH_VARARGS,
     "pair_walk(src, t_idx, cur, table, dead, exit_point, enters, lengths, padded, stop, depth): the pair walk."},
    {"take_rows", take_rows, METH_VARARGS,
     "take_rows(src, dst, dead, n_live): new RTN rows copied into StateRows' table, live bytes counted."},
    {"rule_exits", rule_exits, METH_VARARGS,
     "rule_exits(calls, lo, hi, table, accepting, nullable, first, enters, exit_point): call_first and\n"
     "accepting_through_nullable of one built rule."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT, "trie_walk_c", "cfg_walk.py's trie walk, compiled.", -1, module_methods,
};

PyMODINIT_FUNC PyInit_trie_walk_c(void) {
    if (PyType_Ready(&TrieWalkType) < 0 || PyType_Ready(&RegionPartsType) < 0)
        return NULL;
    PyObject *m = PyModule_Create(&module_def);
    if (m == NULL)
        return NULL;
    Py_INCREF(&TrieWalkType);
    if (PyModule_AddObject(m, "TrieWalk", (PyObject *)&TrieWalkType) < 0) {
        Py_DECREF(&TrieWalkType);
        Py_DECREF(m);
        return NULL;
    }
    Py_INCREF(&RegionPartsType);
    if (PyModule_AddObject(m, "RegionParts", (PyObject *)&RegionPartsType) < 0) {
        Py_DECREF(&RegionPartsType);
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
