/* The subset construction of grammars/automata/dfa.py (`subset_construction`, without its subsets) compiled.
 *
 * Same DFA as the Python, which stays the fallback and the tests' oracle: same states numbered in the same
 * order, same table over the symbol classes (DEAD = -1), same accepting states, and the same work counted
 * against the same limits (the caller raises the limit error, with the Python's message).
 *
 * The numbering is the order in which the Python first meets each subset, and that follows the order it
 * walks a subset's NFA states in: a frozenset's iteration order, the slot order of CPython's hash table for
 * it. So every subset here is a copy of the table CPython builds for that frozenset (`PSet`: a set of small
 * ints, whose hash is the int itself), built by the same operations in the same order: the epsilon closure's
 * `seen` set and its frozenset, and `frozenset().union(...)` of the runs' targets where runs overlap
 * (setobject.c of CPython 3.8 to 3.13: linear probes of 9, perturbation shift 5, the same resize rules). An
 * interpreter that lays sets out otherwise would get the same DFA numbered otherwise: tests/test_subset_native.py
 * compares against the running interpreter's frozensets. (Numbering subsets in sorted order instead would
 * change the Python's numbering, the oracle's, for every rule with a subset of several states.)
 *
 * Input: the NFA as the builders make it (eps: a list of lists of states; edges: a list of lists of
 * (lo, hi, target) over symbols, bytes and 256 + callee), read in place, state by state, as the construction
 * first needs it. Output: (n_states, table, accepting) as bytearrays (int64 [n_states, n_classes], bool
 * [n_states]), or (n_states, None, None) when a limit is passed (n_states: the count when it was).
 * `check(message)` is called every 64 rows, as the Python calls `check_time`, so a compile deadline still
 * fires; its exception propagates. The GIL is held throughout (a rule's construction takes microseconds).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

#define DEAD (-1)
#define EMPTY (-1)       /* an unused slot of a set table (the keys are NFA states, >= 0) */
#define UNKNOWN (-2)     /* a memo slot not filled yet */
#define LINEAR_PROBES 9  /* CPython's setobject.c */
#define PERTURB_SHIFT 5
#define SET_MINSIZE 8

/* ---- growable vectors ---- */

typedef struct {
    int32_t *v;
    size_t n, cap;
} IVec;

static int iv_reserve(IVec *a, size_t extra) {
    if (a->n + extra <= a->cap)
        return 0;
    size_t cap = a->cap ? a->cap : 16;
    while (cap < a->n + extra)
        cap *= 2;
    int32_t *v = PyMem_Realloc(a->v, cap * sizeof(int32_t));
    if (v == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    a->v = v;
    a->cap = cap;
    return 0;
}

static inline int iv_push(IVec *a, int32_t x) {
    if (a->n == a->cap && iv_reserve(a, 1) < 0)
        return -1;
    a->v[a->n++] = x;
    return 0;
}

/* ---- CPython's set table, for sets of small non-negative ints ---- */

/* Whether key k is in table t: the probe sequence of an insert, up to an empty slot (these tables never
 * delete, so a missing key always meets one). */
static int table_has(const int32_t *t, size_t mask, int32_t k) {
    size_t i = (size_t)k & mask, perturb = (size_t)k;
    for (;;) {
        size_t probes = i + LINEAR_PROBES <= mask ? LINEAR_PROBES : 0;
        for (size_t j = 0; j <= probes; j++) {
            if (t[i + j] == k)
                return 1;
            if (t[i + j] == EMPTY)
                return 0;
        }
        perturb >>= PERTURB_SHIFT;
        i = (i * 5 + 1 + perturb) & mask;
    }
}

/* setobject.c's set_insert_clean: k into the first empty slot of its probe sequence. */
static void insert_clean(int32_t *t, size_t mask, int32_t k) {
    size_t i = (size_t)k & mask, perturb = (size_t)k;
    for (;;) {
        size_t probes = i + LINEAR_PROBES <= mask ? LINEAR_PROBES : 0;
        for (size_t j = 0; j <= probes; j++) {
            if (t[i + j] == EMPTY) {
                t[i + j] = k;
                return;
            }
        }
        perturb >>= PERTURB_SHIFT;
        i = (i * 5 + 1 + perturb) & mask;
    }
}

/* A set being built (a scratch buffer, reused): `t` holds mask + 1 slots, `cap` allocated. */
typedef struct {
    int32_t *t;
    size_t mask, fill, cap;
} PSet;

static int ps_reset(PSet *s) {
    if (s->cap < SET_MINSIZE) {
        int32_t *t = PyMem_Realloc(s->t, SET_MINSIZE * sizeof(int32_t));
        if (t == NULL) {
            PyErr_NoMemory();
            return -1;
        }
        s->t = t;
        s->cap = SET_MINSIZE;
    }
    s->mask = SET_MINSIZE - 1;
    s->fill = 0;
    memset(s->t, 0xff, SET_MINSIZE * sizeof(int32_t)); /* all EMPTY (-1) */
    return 0;
}

/* set_table_resize: the smallest table over `minused` slots, keys reinserted in slot order. */
static int ps_resize(PSet *s, size_t minused) {
    size_t size = SET_MINSIZE;
    while (size <= minused)
        size <<= 1;
    if (size == SET_MINSIZE && s->mask == SET_MINSIZE - 1)
        return 0; /* CPython keeps its small table as it is (no deleted entries here) */
    int32_t *t = PyMem_Malloc(size * sizeof(int32_t));
    if (t == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    memset(t, 0xff, size * sizeof(int32_t));
    for (size_t i = 0; i <= s->mask; i++)
        if (s->t[i] != EMPTY)
            insert_clean(t, size - 1, s->t[i]);
    PyMem_Free(s->t);
    s->t = t;
    s->cap = size;
    s->mask = size - 1;
    return 0;
}

/* set_add_entry: k at the first empty slot of its probe sequence unless met before it; then the resize. */
static int ps_add(PSet *s, int32_t k) {
    size_t mask = s->mask, i = (size_t)k & mask, perturb = (size_t)k;
    for (;;) {
        size_t probes = i + LINEAR_PROBES <= mask ? LINEAR_PROBES : 0;
        for (size_t j = 0; j <= probes; j++) {
            int32_t *e = &s->t[i + j];
            if (*e == EMPTY) {
                *e = k;
                s->fill++;
                if (s->fill * 5 < mask * 3)
                    return 0;
                return ps_resize(s, s->fill > 50000 ? s->fill * 2 : s->fill * 4);
            }
            if (*e == k)
                return 0;
        }
        perturb >>= PERTURB_SHIFT;
        i = (i * 5 + 1 + perturb) & mask;
    }
}

/* set_merge: another set's keys in (`frozenset().union(a, b, ...)` merges a, b, ... into a new set). */
static int ps_merge(PSet *s, const int32_t *ot, size_t omask, size_t oused) {
    if (oused == 0)
        return 0;
    if ((s->fill + oused) * 5 >= s->mask * 3 && ps_resize(s, (s->fill + oused) * 2) < 0)
        return -1;
    if (s->fill == 0 && s->mask == omask) { /* an empty table of the same size: a copy */
        memcpy(s->t, ot, (omask + 1) * sizeof(int32_t));
        s->fill = oused;
        return 0;
    }
    if (s->fill == 0) { /* empty: no duplicates to look for */
        for (size_t i = 0; i <= omask; i++)
            if (ot[i] != EMPTY)
                insert_clean(s->t, s->mask, ot[i]);
        s->fill = oused;
        return 0;
    }
    for (size_t i = 0; i <= omask; i++)
        if (ot[i] != EMPTY && ps_add(s, ot[i]) < 0)
            return -1;
    return 0;
}

/* ---- the construction ---- */

/* A finished frozenset: its table in the pool at `off`, and a hash of its contents (order-free). */
typedef struct {
    size_t off;
    uint32_t mask, used;
    uint64_t hash;
} FSet;

/* A run of one NFA state's edge: classes [a, b) to the closure of NFA state t. */
typedef struct {
    int32_t a, b, t;
} Run;

typedef struct {
    /* the input, borrowed (the caller's lists stay alive and unchanged during the call) */
    PyObject **eps, **edges, **classes_in;
    Py_ssize_t n, n_symbols;
    int32_t n_classes, accept;
    /* per NFA state */
    uint8_t *important;  /* byte edges, or the accept state: what a subset keeps */
    int32_t *clo;        /* its closure's FSet, UNKNOWN until made */
    int32_t *clo_state;  /* the DFA state of that closure (DEAD: empty), UNKNOWN until looked up */
    int32_t *prep_off;   /* its runs in `runs` (UNKNOWN: not prepared yet) ... */
    int32_t *prep_len;   /* ... how many */
    uint8_t *prep_overlap; /* two of its runs share a class */
    int64_t *prep_work;  /* the work of a row of this state alone */
    /* marks, valid where equal to the current generation `gen` (so no clearing between uses) */
    uint32_t gen;
    uint32_t *vstamp;  /* per NFA state: visited by the closure's search */
    uint32_t *tstamp;  /* per NFA state: a target already counted */
    uint32_t *cstamp;  /* per class: covered by a run */
    uint32_t *cstamp2; /* per class (and n_classes): a range starts / a cut point here */
    int32_t *cgroup;   /* per class: the range's group, or the cut point's index */
    int32_t *classes;  /* symbol -> class, UNKNOWN until read */
    Run *runs;         /* every prepared state's runs */
    size_t n_runs, cap_runs;
    /* the frozensets: their tables in one pool */
    IVec pool;
    FSet *fsets;
    size_t n_fsets, cap_fsets;
    int32_t empty_fset;
    PSet seen, tmp; /* the closure's `seen` set; a frozenset being built */
    IVec stack;
    /* the DFA states: each one's FSet, the table from contents to state (`ids`), the rows */
    IVec sets;
    int32_t *ids;
    size_t ids_cap;
    int64_t *trans;
    size_t trans_cap;
    /* one row's scratch */
    IVec subset, group_of, cuts, part_off, part_t, first, order;
    Run *items;
    size_t cap_items;
    IVec memo_keys, memo_off, memo_len, memo_state;
    int32_t *memo_tab;
    size_t memo_cap;
} Ctx;

static void ctx_free(Ctx *c) {
    PyMem_Free(c->important);
    PyMem_Free(c->clo);
    PyMem_Free(c->clo_state);
    PyMem_Free(c->prep_off);
    PyMem_Free(c->prep_len);
    PyMem_Free(c->prep_overlap);
    PyMem_Free(c->prep_work);
    PyMem_Free(c->vstamp);
    PyMem_Free(c->tstamp);
    PyMem_Free(c->cstamp);
    PyMem_Free(c->cstamp2);
    PyMem_Free(c->cgroup);
    PyMem_Free(c->classes);
    PyMem_Free(c->runs);
    PyMem_Free(c->pool.v);
    PyMem_Free(c->fsets);
    PyMem_Free(c->seen.t);
    PyMem_Free(c->tmp.t);
    PyMem_Free(c->stack.v);
    PyMem_Free(c->sets.v);
    PyMem_Free(c->ids);
    PyMem_Free(c->trans);
    PyMem_Free(c->items);
    IVec *vecs[] = {&c->subset,   &c->group_of, &c->cuts,     &c->part_off, &c->part_t,     &c->first,
                    &c->order,    &c->memo_keys, &c->memo_off, &c->memo_len, &c->memo_state};
    for (size_t i = 0; i < sizeof(vecs) / sizeof(vecs[0]); i++)
        PyMem_Free(vecs[i]->v);
    PyMem_Free(c->memo_tab);
}

static inline uint64_t mix(uint64_t z) { /* splitmix64's finalizer */
    z += 0x9e3779b97f4a7c15ULL;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static inline const int32_t *fs_table(const Ctx *c, int32_t f) { return c->pool.v + c->fsets[f].off; }

/* A new FSet holding a copy of table t (mask, used keys). Returns its index or -1. */
static int32_t fs_commit(Ctx *c, const int32_t *t, size_t mask, size_t used) {
    if (c->n_fsets == c->cap_fsets) {
        size_t cap = c->cap_fsets ? 2 * c->cap_fsets : 64;
        FSet *f = PyMem_Realloc(c->fsets, cap * sizeof(FSet));
        if (f == NULL) {
            PyErr_NoMemory();
            return -1;
        }
        c->fsets = f;
        c->cap_fsets = cap;
    }
    if (iv_reserve(&c->pool, mask + 1) < 0)
        return -1;
    FSet *f = &c->fsets[c->n_fsets];
    f->off = c->pool.n;
    f->mask = (uint32_t)mask;
    f->used = (uint32_t)used;
    uint64_t h = 0;
    for (size_t i = 0; i <= mask; i++)
        if (t[i] != EMPTY)
            h += mix((uint64_t)t[i]);
    f->hash = h;
    memcpy(c->pool.v + c->pool.n, t, (mask + 1) * sizeof(int32_t));
    c->pool.n += mask + 1;
    return (int32_t)c->n_fsets++;
}

/* Python's `frozenset((t,))`: one key in a small table. */
static int32_t fs_single(Ctx *c, int32_t k) {
    int32_t t[SET_MINSIZE];
    memset(t, 0xff, sizeof(t));
    t[k & (SET_MINSIZE - 1)] = k;
    return fs_commit(c, t, SET_MINSIZE - 1, 1);
}

static int read_int(PyObject *o, long lo, long hi, long *out) {
    long v = PyLong_AsLong(o);
    if (v == -1 && PyErr_Occurred())
        return -1;
    if (v < lo || v >= hi) {
        PyErr_Format(PyExc_ValueError, "subset_c: %ld out of range [%ld, %ld)", v, lo, hi);
        return -1;
    }
    *out = v;
    return 0;
}

/* `epsilon_closure`'s closure(t): the important states reachable by epsilon edges, as a frozenset built
 * the Python's way (its `seen` set grows in depth-first order, then the frozenset takes the important ones
 * in `seen`'s order). The FSet index, or -1 on error. */
static int32_t closure(Ctx *c, int32_t t) {
    if (c->clo[t] != UNKNOWN)
        return c->clo[t];
    PyObject *eps = c->eps[t];
    int32_t f;
    if (PySequence_Fast_GET_SIZE(eps) == 0) {
        f = c->important[t] ? fs_single(c, t) : c->empty_fset;
    } else {
        uint32_t g = ++c->gen;
        if (ps_reset(&c->seen) < 0 || ps_add(&c->seen, t) < 0)
            return -1;
        c->vstamp[t] = g;
        c->stack.n = 0;
        if (iv_push(&c->stack, t) < 0)
            return -1;
        while (c->stack.n) {
            PyObject *out = c->eps[c->stack.v[--c->stack.n]];
            Py_ssize_t m = PySequence_Fast_GET_SIZE(out);
            PyObject **items = PySequence_Fast_ITEMS(out);
            for (Py_ssize_t j = 0; j < m; j++) {
                long u;
                if (read_int(items[j], 0, c->n, &u) < 0)
                    return -1;
                if (c->vstamp[u] != g) {
                    c->vstamp[u] = g;
                    if (ps_add(&c->seen, (int32_t)u) < 0 || iv_push(&c->stack, (int32_t)u) < 0)
                        return -1;
                }
            }
        }
        if (ps_reset(&c->tmp) < 0)
            return -1;
        for (size_t i = 0; i <= c->seen.mask; i++) {
            int32_t u = c->seen.t[i];
            if (u != EMPTY && c->important[u] && ps_add(&c->tmp, u) < 0)
                return -1;
        }
        f = fs_commit(c, c->tmp.t, c->tmp.mask, c->tmp.fill);
    }
    if (f >= 0)
        c->clo[t] = f;
    return f;
}

static int fs_equal(const Ctx *c, int32_t f, const int32_t *t, size_t mask, size_t used) {
    const FSet *a = &c->fsets[f];
    if (a->used != used)
        return 0;
    const int32_t *at = fs_table(c, f);
    for (size_t i = 0; i <= mask; i++)
        if (t[i] != EMPTY && !table_has(at, a->mask, t[i]))
            return 0;
    return 1;
}

/* The DFA state whose subset equals the table t (`ids` by contents), or DEAD if none; *slot: where it goes. */
static int32_t ids_find(const Ctx *c, const int32_t *t, size_t mask, size_t used, uint64_t h, size_t *slot) {
    size_t m = c->ids_cap - 1, i = (size_t)h & m;
    for (;; i = (i + 1) & m) {
        int32_t d = c->ids[i];
        if (d < 0) {
            *slot = i;
            return DEAD;
        }
        int32_t f = c->sets.v[d];
        if (c->fsets[f].hash == h && fs_equal(c, f, t, mask, used))
            return d;
    }
}

/* A new DFA state for FSet f (not in `ids`), its row of DEAD appended. Its number, or -1 on error. */
static int32_t new_state(Ctx *c, int32_t f, size_t slot) {
    int32_t d = (int32_t)c->sets.n;
    if (iv_push(&c->sets, f) < 0)
        return -1;
    c->ids[slot] = d;
    if (2 * c->sets.n > c->ids_cap) { /* keep the table at most half full */
        size_t cap = 2 * c->ids_cap;
        int32_t *ids = PyMem_Malloc(cap * sizeof(int32_t));
        if (ids == NULL) {
            PyErr_NoMemory();
            return -1;
        }
        memset(ids, 0xff, cap * sizeof(int32_t));
        for (size_t s = 0; s < c->sets.n; s++) {
            size_t i = (size_t)c->fsets[c->sets.v[s]].hash & (cap - 1);
            while (ids[i] >= 0)
                i = (i + 1) & (cap - 1);
            ids[i] = (int32_t)s;
        }
        PyMem_Free(c->ids);
        c->ids = ids;
        c->ids_cap = cap;
    }
    return d;
}

/* `_intern` of an FSet: its DFA state, numbered on first sight (DEAD for the empty set). -2 on error. */
static int32_t intern_fset(Ctx *c, int32_t f) {
    const FSet *a = &c->fsets[f];
    if (a->used == 0)
        return DEAD;
    size_t slot;
    int32_t d = ids_find(c, fs_table(c, f), a->mask, a->used, a->hash, &slot);
    if (d == DEAD && (d = new_state(c, f, slot)) < 0)
        return -2;
    return d;
}

/* The DFA state of NFA state t's closure (as a run's target), remembered per t. -2 on error. */
static inline int32_t closure_state(Ctx *c, int32_t t) {
    if (c->clo_state[t] == UNKNOWN) {
        int32_t d = intern_fset(c, c->clo[t]);
        if (d == -2)
            return -2;
        c->clo_state[t] = d;
    }
    return c->clo_state[t];
}

/* `_intern` of the union of the closures of ts[0..k) (`frozenset().union(*here)`). -2 on error. */
static int32_t intern_union(Ctx *c, const int32_t *ts, size_t k) {
    if (ps_reset(&c->tmp) < 0)
        return -2;
    for (size_t j = 0; j < k; j++) {
        const FSet *o = &c->fsets[c->clo[ts[j]]];
        if (ps_merge(&c->tmp, fs_table(c, c->clo[ts[j]]), o->mask, o->used) < 0)
            return -2;
    }
    if (c->tmp.fill == 0)
        return DEAD;
    uint64_t h = 0;
    for (size_t i = 0; i <= c->tmp.mask; i++)
        if (c->tmp.t[i] != EMPTY)
            h += mix((uint64_t)c->tmp.t[i]);
    size_t slot;
    int32_t d = ids_find(c, c->tmp.t, c->tmp.mask, c->tmp.fill, h, &slot);
    if (d != DEAD)
        return d;
    int32_t f = fs_commit(c, c->tmp.t, c->tmp.mask, c->tmp.fill);
    if (f < 0 || (d = new_state(c, f, slot)) < 0)
        return -2;
    return d;
}

static int32_t symbol_class(Ctx *c, long sym) {
    if (c->classes[sym] == UNKNOWN) {
        long k;
        if (read_int(c->classes_in[sym], 0, c->n_classes, &k) < 0)
            return -1;
        c->classes[sym] = (int32_t)k;
    }
    return c->classes[sym];
}

/* `_prepare`: NFA state s's runs (edge order), whether two share a class, and the work of a row of s
 * alone (each run's width, and the size of each distinct target's closure). 0, or -1 on error. */
static int prepare(Ctx *c, int32_t s) {
    PyObject *edges = c->edges[s];
    Py_ssize_t m = PySequence_Fast_GET_SIZE(edges);
    PyObject **items = PySequence_Fast_ITEMS(edges);
    if (c->n_runs + (size_t)m > c->cap_runs) {
        size_t cap = c->cap_runs ? c->cap_runs : 64;
        while (cap < c->n_runs + (size_t)m)
            cap *= 2;
        Run *r = PyMem_Realloc(c->runs, cap * sizeof(Run));
        if (r == NULL) {
            PyErr_NoMemory();
            return -1;
        }
        c->runs = r;
        c->cap_runs = cap;
    }
    uint32_t gc = ++c->gen; /* one generation for both the class and the target marks */
    int overlap = 0;
    int64_t work = 0;
    size_t off = c->n_runs;
    for (Py_ssize_t j = 0; j < m; j++) {
        PyObject *e = items[j];
        if (!(PyTuple_Check(e) || PyList_Check(e)) || PySequence_Fast_GET_SIZE(e) != 3) {
            PyErr_SetString(PyExc_TypeError, "subset_c: an edge is a (lo, hi, target) tuple");
            return -1;
        }
        PyObject **f = PySequence_Fast_ITEMS(e);
        long lo, hi, t;
        if (read_int(f[0], 0, c->n_symbols, &lo) < 0 || read_int(f[1], lo, c->n_symbols, &hi) < 0 ||
            read_int(f[2], 0, c->n, &t) < 0)
            return -1;
        int32_t a = symbol_class(c, lo), b = symbol_class(c, hi);
        if (a < 0 || b < 0)
            return -1;
        b += 1;
        if (a >= b) {
            PyErr_SetString(PyExc_ValueError, "subset_c: symbol classes must not decrease along a range");
            return -1;
        }
        int32_t target = closure(c, (int32_t)t);
        if (target < 0)
            return -1;
        for (int32_t k = a; k < b; k++) {
            overlap |= c->cstamp[k] == gc;
            c->cstamp[k] = gc;
        }
        work += b - a;
        if (c->tstamp[t] != gc) {
            c->tstamp[t] = gc;
            work += c->fsets[target].used;
        }
        c->runs[c->n_runs++] = (Run){a, b, (int32_t)t};
    }
    c->prep_off[s] = (int32_t)off;
    c->prep_len[s] = (int32_t)m;
    c->prep_overlap[s] = (uint8_t)overlap;
    c->prep_work[s] = work;
    return 0;
}

/* ---- a row whose runs overlap (`_overlapping_row`, `_coinciding_row`) ---- */

/* The per-row memo of `_overlapping_row`: a stretch's targets (the closures of its runs' NFA states, in
 * run order: the Python keys them by the closures' ids, one object per NFA state) -> its DFA state. */
static int memo_reset(Ctx *c, size_t expected) {
    size_t cap = 16;
    while (cap < 2 * expected)
        cap *= 2;
    if (cap > c->memo_cap) {
        int32_t *tab = PyMem_Realloc(c->memo_tab, cap * sizeof(int32_t));
        if (tab == NULL) {
            PyErr_NoMemory();
            return -1;
        }
        c->memo_tab = tab;
        c->memo_cap = cap;
    }
    memset(c->memo_tab, 0xff, c->memo_cap * sizeof(int32_t));
    c->memo_keys.n = c->memo_off.n = c->memo_len.n = c->memo_state.n = 0;
    return 0;
}

/* The DFA state of a stretch with targets ts[0..k): memoized, else interned, adding the work of
 * building its target (its size). -2 on error. */
static int32_t stretch_state(Ctx *c, const int32_t *ts, size_t k, int64_t *work) {
    uint64_t h = k;
    for (size_t j = 0; j < k; j++)
        h = mix(h ^ (uint64_t)ts[j]);
    size_t m = c->memo_cap - 1, i = (size_t)h & m;
    for (;; i = (i + 1) & m) {
        int32_t e = c->memo_tab[i];
        if (e < 0)
            break;
        if ((size_t)c->memo_len.v[e] == k &&
            memcmp(c->memo_keys.v + c->memo_off.v[e], ts, k * sizeof(int32_t)) == 0)
            return c->memo_state.v[e];
    }
    int32_t d;
    if (k == 1) {
        *work += c->fsets[c->clo[ts[0]]].used;
        d = closure_state(c, ts[0]);
    } else {
        d = intern_union(c, ts, k);
        *work += (int64_t)c->tmp.fill;
    }
    if (d == -2)
        return -2;
    int32_t e = (int32_t)c->memo_off.n;
    if (iv_push(&c->memo_off, (int32_t)c->memo_keys.n) < 0 || iv_push(&c->memo_len, (int32_t)k) < 0 ||
        iv_push(&c->memo_state, d) < 0 || iv_reserve(&c->memo_keys, k) < 0)
        return -2;
    memcpy(c->memo_keys.v + c->memo_keys.n, ts, k * sizeof(int32_t));
    c->memo_keys.n += k;
    c->memo_tab[i] = e; /* (the probe above stopped at this free slot; the table stays at most half full) */
    return d;
}


static inline void fill_row(int64_t *row, int32_t a, int32_t b, int32_t d) {
    for (int32_t k = a; k < b; k++)
        row[k] = d;
}

/* One stretch of a row: classes [a, b) to the union of the targets ts[0..k): the work of its (class, run)
 * pairs and, when new to the row, of its target; its cells. 0, or -1 on error. */
static int stretch(Ctx *c, int32_t a, int32_t b, const int32_t *ts, size_t k, int64_t *row, int64_t *work) {
    *work += (int64_t)(b - a) * (int64_t)k;
    int32_t d = stretch_state(c, ts, k, work);
    if (d == -2)
        return -1;
    if (d != DEAD)
        fill_row(row, a, b, d);
    return 0;
}

/* `_coinciding_row`: runs overlap only where their ranges coincide (the distinct ranges are disjoint), each
 * distinct range one stretch, in first-run order. 1 when done, 0 when two ranges partly overlap (then the
 * general way, `overlapping_row`), -1 on error. */
static int coinciding_row(Ctx *c, const Run *items, size_t n_items, int64_t *row, int64_t *work) {
    uint32_t g = ++c->gen;
    c->group_of.n = c->order.n = 0; /* order: each group's first run */
    if (iv_reserve(&c->group_of, n_items) < 0)
        return -1;
    for (size_t n = 0; n < n_items; n++) {
        int32_t a = items[n].a, b = items[n].b, grp;
        if (c->cstamp2[a] == g) { /* a distinct range starts here: this one again, or a partial overlap */
            grp = c->cgroup[a];
            if (items[c->order.v[grp]].b != b)
                return 0;
        } else {
            for (int32_t k = a; k < b; k++)
                if (c->cstamp[k] == g)
                    return 0;
            for (int32_t k = a; k < b; k++)
                c->cstamp[k] = g;
            c->cstamp2[a] = g;
            grp = c->cgroup[a] = (int32_t)c->order.n;
            if (iv_push(&c->order, (int32_t)n) < 0)
                return -1;
        }
        c->group_of.v[c->group_of.n++] = grp;
    }
    /* each group's targets in run order: counted, then placed */
    size_t n_groups = c->order.n;
    c->part_off.n = 0;
    if (iv_reserve(&c->part_off, n_groups + 1) < 0 || iv_reserve(&c->part_t, n_items) < 0)
        return -1;
    int32_t *off = c->part_off.v;
    memset(off, 0, (n_groups + 1) * sizeof(int32_t));
    for (size_t n = 0; n < n_items; n++)
        off[c->group_of.v[n] + 1]++;
    for (size_t j = 0; j < n_groups; j++)
        off[j + 1] += off[j];
    if (iv_reserve(&c->first, n_groups) < 0) /* first: the next free place in each group */
        return -1;
    memcpy(c->first.v, off, n_groups * sizeof(int32_t));
    for (size_t n = 0; n < n_items; n++)
        c->part_t.v[c->first.v[c->group_of.v[n]]++] = items[n].t;
    if (memo_reset(c, n_groups) < 0)
        return -1;
    for (size_t j = 0; j < n_groups; j++) {
        const Run *r = &items[c->order.v[j]];
        if (stretch(c, r->a, r->b, c->part_t.v + off[j], (size_t)(off[j + 1] - off[j]), row, work) < 0)
            return -1;
    }
    return 1;
}

/* `_overlapping_row` when ranges partly overlap: each stretch between consecutive run ends goes to the union
 * of the runs over it, stretches taken in the order of their first run (then of their classes), as a
 * class-by-class scan would meet them. 0, or -1 on error. */
static int overlapping_row(Ctx *c, const Run *items, size_t n_items, int64_t *row, int64_t *work) {
    uint32_t g = ++c->gen;
    for (size_t n = 0; n < n_items; n++)
        c->cstamp2[items[n].a] = c->cstamp2[items[n].b] = g;
    c->cuts.n = 0;
    for (int32_t x = 0; x <= c->n_classes; x++) { /* the cut points in order; cgroup[x]: x's index */
        if (c->cstamp2[x] == g) {
            c->cgroup[x] = (int32_t)c->cuts.n;
            if (iv_push(&c->cuts, x) < 0)
                return -1;
        }
    }
    size_t n_parts = c->cuts.n - 1;
    if (iv_reserve(&c->part_off, n_parts + 1) < 0 || iv_reserve(&c->first, n_parts) < 0)
        return -1;
    int32_t *off = c->part_off.v;
    memset(off, 0, (n_parts + 1) * sizeof(int32_t));
    c->order.n = 0; /* the stretches as runs first reach them: by (first run, class) */
    for (size_t n = 0; n < n_items; n++) {
        for (int32_t j = c->cgroup[items[n].a]; j < c->cgroup[items[n].b]; j++) {
            if (off[j + 1]++ == 0 && iv_push(&c->order, j) < 0)
                return -1;
        }
    }
    for (size_t j = 0; j < n_parts; j++)
        off[j + 1] += off[j];
    if (iv_reserve(&c->part_t, (size_t)off[n_parts]) < 0)
        return -1;
    memcpy(c->first.v, off, n_parts * sizeof(int32_t));
    for (size_t n = 0; n < n_items; n++)
        for (int32_t j = c->cgroup[items[n].a]; j < c->cgroup[items[n].b]; j++)
            c->part_t.v[c->first.v[j]++] = items[n].t;
    if (memo_reset(c, c->order.n) < 0)
        return -1;
    for (size_t q = 0; q < c->order.n; q++) {
        int32_t j = c->order.v[q];
        if (stretch(c, c->cuts.v[j], c->cuts.v[j + 1], c->part_t.v + off[j], (size_t)(off[j + 1] - off[j]),
                    row, work) < 0)
            return -1;
    }
    return 0;
}

/* ---- one row, and the whole construction ---- */

static int reserve_items(Ctx *c, size_t n) {
    if (n <= c->cap_items)
        return 0;
    size_t cap = c->cap_items ? c->cap_items : 64;
    while (cap < n)
        cap *= 2;
    Run *r = PyMem_Realloc(c->items, cap * sizeof(Run));
    if (r == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    c->items = r;
    c->cap_items = cap;
    return 0;
}

/* Row i (DFA state i): its NFA states in the frozenset's order, their runs in edge order; each run to its
 * target's state when no two runs share a class, else the overlapping way. Adds the row's work. */
static int row(Ctx *c, size_t i, int64_t *work) {
    int32_t f = c->sets.v[i];
    /* the subset's states, copied: preparing them makes closures, which may move the pool */
    c->subset.n = 0;
    const FSet *fs = &c->fsets[f];
    if (iv_reserve(&c->subset, fs->used) < 0)
        return -1;
    const int32_t *t = fs_table(c, f);
    for (size_t k = 0; k <= fs->mask; k++)
        if (t[k] != EMPTY)
            c->subset.v[c->subset.n++] = t[k];
    for (size_t k = 0; k < c->subset.n; k++)
        if (c->prep_off[c->subset.v[k]] == UNKNOWN && prepare(c, c->subset.v[k]) < 0)
            return -1;
    int64_t *out = c->trans + i * (size_t)c->n_classes;
    for (int32_t k = 0; k < c->n_classes; k++)
        out[k] = DEAD;
    const Run *items;
    size_t n_items;
    int overlap;
    int64_t own;
    if (c->subset.n == 1) { /* the usual case (a chain of one state per byte): all prepared */
        int32_t s = c->subset.v[0];
        items = c->runs + c->prep_off[s];
        n_items = (size_t)c->prep_len[s];
        overlap = c->prep_overlap[s];
        own = c->prep_work[s];
    } else { /* the runs of all, and their work: each run's width, each distinct target's size */
        n_items = 0;
        for (size_t k = 0; k < c->subset.n; k++)
            n_items += (size_t)c->prep_len[c->subset.v[k]];
        if (reserve_items(c, n_items) < 0)
            return -1;
        uint32_t g = ++c->gen;
        overlap = 0;
        own = 0;
        size_t n = 0;
        for (size_t k = 0; k < c->subset.n; k++) {
            int32_t s = c->subset.v[k];
            const Run *r = c->runs + c->prep_off[s];
            for (int32_t j = 0; j < c->prep_len[s]; j++) {
                c->items[n++] = r[j];
                for (int32_t x = r[j].a; x < r[j].b; x++) {
                    overlap |= c->cstamp[x] == g;
                    c->cstamp[x] = g;
                }
                own += r[j].b - r[j].a;
                if (c->tstamp[r[j].t] != g) {
                    c->tstamp[r[j].t] = g;
                    own += c->fsets[c->clo[r[j].t]].used;
                }
            }
        }
        items = c->items;
    }
    if (!overlap) {
        *work += own;
        for (size_t n = 0; n < n_items; n++) {
            int32_t d = closure_state(c, items[n].t);
            if (d == -2)
                return -1;
            if (d != DEAD)
                fill_row(out, items[n].a, items[n].b, d);
        }
        return 0;
    }
    int done = coinciding_row(c, items, n_items, out, work);
    if (done < 0)
        return -1;
    return done ? 0 : overlapping_row(c, items, n_items, out, work);
}

static int read_limit(PyObject *o, long long *out) {
    int overflow;
    long long v = PyLong_AsLongLongAndOverflow(o, &overflow);
    if (v == -1 && PyErr_Occurred())
        return -1;
    *out = overflow > 0 ? LLONG_MAX : overflow < 0 ? LLONG_MIN : v;
    return 0;
}

static int is_seq(PyObject *o) { return PyList_Check(o) || PyTuple_Check(o); }

static void *zalloc(size_t n, size_t size, int fill) {
    void *p = PyMem_Malloc(n ? n * size : 1);
    if (p != NULL)
        memset(p, fill, n * size);
    return p;
}

static int check_lists(PyObject *eps, PyObject *edges) {
    if (!PyList_Check(eps) || !PyList_Check(edges) || PyList_GET_SIZE(eps) != PyList_GET_SIZE(edges)) {
        PyErr_SetString(PyExc_TypeError, "subset_c: eps and edges are lists of one entry per NFA state");
        return -1;
    }
    return 0;
}

/* Check the input's shape and make the per-state and per-class arrays; the symbol classes are read from
 * `classes` (a list, as needed) or, when NULL, were made already (`rule_classes`). 0, or -1 with an
 * exception set. */
static int ctx_init(Ctx *c, PyObject *eps, PyObject *edges, Py_ssize_t start, Py_ssize_t accept,
                    PyObject *classes, Py_ssize_t n_classes) {
    if (check_lists(eps, edges) < 0)
        return -1;
    if (classes != NULL && !is_seq(classes)) {
        PyErr_SetString(PyExc_TypeError, "subset_c: the symbol classes are a list");
        return -1;
    }
    Py_ssize_t n = PyList_GET_SIZE(eps);
    if (n >= INT32_MAX || n_classes < 0 || n_classes >= INT32_MAX / 2 || start < 0 || start >= n ||
        accept < 0 || accept >= n) {
        PyErr_SetString(PyExc_ValueError, "subset_c: start, accept or the class count out of range");
        return -1;
    }
    c->n = n;
    c->eps = PySequence_Fast_ITEMS(eps);
    c->edges = PySequence_Fast_ITEMS(edges);
    if (classes != NULL) {
        c->classes_in = PySequence_Fast_ITEMS(classes);
        c->n_symbols = PySequence_Fast_GET_SIZE(classes);
        c->classes = zalloc((size_t)c->n_symbols, sizeof(int32_t), 0xff); /* (all -1) */
        if (c->classes == NULL) {
            PyErr_NoMemory();
            return -1;
        }
        for (Py_ssize_t k = 0; k < c->n_symbols; k++)
            c->classes[k] = UNKNOWN;
    }
    c->n_classes = (int32_t)n_classes;
    c->accept = (int32_t)accept;
    size_t nn = (size_t)n, nc = (size_t)n_classes + 1;
    c->important = zalloc(nn, 1, 0);
    c->clo = zalloc(nn, sizeof(int32_t), 0);
    c->clo_state = zalloc(nn, sizeof(int32_t), 0);
    c->prep_off = zalloc(nn, sizeof(int32_t), 0);
    c->prep_len = zalloc(nn, sizeof(int32_t), 0);
    c->prep_overlap = zalloc(nn, 1, 0);
    c->prep_work = zalloc(nn, sizeof(int64_t), 0);
    c->vstamp = zalloc(nn, sizeof(uint32_t), 0);
    c->tstamp = zalloc(nn, sizeof(uint32_t), 0);
    c->cstamp = zalloc(nc, sizeof(uint32_t), 0);
    c->cstamp2 = zalloc(nc, sizeof(uint32_t), 0);
    c->cgroup = zalloc(nc, sizeof(int32_t), 0);
    c->ids_cap = 16;
    c->ids = zalloc(c->ids_cap, sizeof(int32_t), 0xff);
    if (!c->important || !c->clo || !c->clo_state || !c->prep_off || !c->prep_len || !c->prep_overlap ||
        !c->prep_work || !c->vstamp || !c->tstamp || !c->cstamp || !c->cstamp2 || !c->cgroup || !c->ids) {
        PyErr_NoMemory();
        return -1;
    }
    for (size_t s = 0; s < nn; s++) {
        if (!is_seq(c->eps[s]) || !is_seq(c->edges[s])) {
            PyErr_SetString(PyExc_TypeError, "subset_c: each state's eps and edges are lists");
            return -1;
        }
        c->important[s] = PySequence_Fast_GET_SIZE(c->edges[s]) > 0 || (Py_ssize_t)s == accept;
        c->clo[s] = c->clo_state[s] = c->prep_off[s] = UNKNOWN;
    }
    int32_t empty[SET_MINSIZE];
    memset(empty, 0xff, sizeof(empty));
    c->empty_fset = fs_commit(c, empty, SET_MINSIZE - 1, 0);
    return c->empty_fset < 0 ? -1 : 0;
}

/* The construction's loop: rows in order, the deadline every 64 rows, the limits after each row.
 * 1 when finished, 0 when a limit was passed, -1 on error. */
static int construct(Ctx *c, Py_ssize_t start, long long max_states, long long max_work, PyObject *check,
                     PyObject *message) {
    int32_t f0 = closure(c, (int32_t)start);
    if (f0 < 0)
        return -1;
    size_t slot;
    const FSet *a = &c->fsets[f0];
    ids_find(c, fs_table(c, f0), a->mask, a->used, a->hash, &slot); /* (empty table: a free slot) */
    if (new_state(c, f0, slot) < 0) /* the start is a state even when empty */
        return -1;
    int64_t work = 0;
    for (size_t i = 0; i < c->sets.n; i++) {
        if (!(i & 63)) {
            PyObject *r = PyObject_CallOneArg(check, message);
            if (r == NULL)
                return -1;
            Py_DECREF(r);
        }
        size_t need = (i + 1) * (size_t)c->n_classes;
        if (need > c->trans_cap) {
            size_t cap = c->trans_cap ? c->trans_cap : 1024;
            while (cap < need)
                cap *= 2;
            int64_t *t = PyMem_Realloc(c->trans, cap * sizeof(int64_t));
            if (t == NULL) {
                PyErr_NoMemory();
                return -1;
            }
            c->trans = t;
            c->trans_cap = cap;
        }
        if (row(c, i, &work) < 0)
            return -1;
        if ((long long)c->sets.n > max_states || work > max_work)
            return 0;
    }
    return 1;
}

/* The result: (n_states, table, accepting), or (n_states, None, None) when a limit was passed (status 0). */
static PyObject *result_of(Ctx *c, int status) {
    size_t n = c->sets.n;
    if (status == 0)
        return Py_BuildValue("nOO", (Py_ssize_t)n, Py_None, Py_None);
    PyObject *result = NULL;
    PyObject *table = PyByteArray_FromStringAndSize((const char *)c->trans,
                                                    (Py_ssize_t)(n * (size_t)c->n_classes * sizeof(int64_t)));
    PyObject *accepting = PyByteArray_FromStringAndSize(NULL, (Py_ssize_t)n);
    if (table != NULL && accepting != NULL) {
        char *acc = PyByteArray_AS_STRING(accepting);
        for (size_t d = 0; d < n; d++) {
            const FSet *fs = &c->fsets[c->sets.v[d]];
            acc[d] = (char)table_has(fs_table(c, c->sets.v[d]), fs->mask, c->accept);
        }
        result = Py_BuildValue("nOO", (Py_ssize_t)n, table, accepting);
    }
    Py_XDECREF(table);
    Py_XDECREF(accepting);
    return result;
}

static PyObject *subset_table(PyObject *self, PyObject *args) {
    (void)self;
    PyObject *eps, *edges, *classes, *max_states_o, *max_work_o, *check, *message;
    Py_ssize_t start, accept, n_classes;
    if (!PyArg_ParseTuple(args, "OOnnOnOOOO", &eps, &edges, &start, &accept, &classes, &n_classes,
                          &max_states_o, &max_work_o, &check, &message))
        return NULL;
    long long max_states, max_work;
    if (read_limit(max_states_o, &max_states) < 0 || read_limit(max_work_o, &max_work) < 0)
        return NULL;
    Ctx c;
    memset(&c, 0, sizeof(c));
    PyObject *result = NULL;
    if (ctx_init(&c, eps, edges, start, accept, classes, n_classes) == 0) {
        int status = construct(&c, start, max_states, max_work, check, message);
        if (status >= 0)
            result = result_of(&c, status);
    }
    ctx_free(&c);
    return result;
}

/* `_rule_dfa`'s symbol classes, made from all the edges (as its Python fallback, `dfa.rule_subset_table`,
 * does): bytes cut wherever an edge's range starts or ends, then one class per callee (symbol 256 + r) in
 * the order of `callees` (sorted), other symbols class 0. Fills c->classes (every symbol) and c->n_symbols;
 * returns the byte classes' first bytes as a list (the number of classes is its length plus the callees'),
 * or NULL. */
static PyObject *rule_classes(Ctx *c, PyObject *edges, PyObject *callees) {
    if (!PyList_Check(callees)) {
        PyErr_SetString(PyExc_TypeError, "subset_c: callees is a list");
        return NULL;
    }
    Py_ssize_t n_callees = PyList_GET_SIZE(callees);
    long last = -1;
    for (Py_ssize_t k = 0; k < n_callees; k++) /* sorted, distinct */
        if (read_int(PyList_GET_ITEM(callees, k), last + 1, INT32_MAX - 512, &last) < 0)
            return NULL;
    c->n_symbols = 256 + (last + 1);
    uint8_t cut[256] = {1}; /* a class starts at byte 0 */
    Py_ssize_t n = PyList_GET_SIZE(edges);
    for (Py_ssize_t s = 0; s < n; s++) {
        PyObject *out = PyList_GET_ITEM(edges, s);
        if (!is_seq(out)) {
            PyErr_SetString(PyExc_TypeError, "subset_c: each state's edges are a list");
            return NULL;
        }
        Py_ssize_t m = PySequence_Fast_GET_SIZE(out);
        PyObject **items = PySequence_Fast_ITEMS(out);
        for (Py_ssize_t j = 0; j < m; j++) {
            PyObject *e = items[j];
            if (!(PyTuple_Check(e) || PyList_Check(e)) || PySequence_Fast_GET_SIZE(e) != 3) {
                PyErr_SetString(PyExc_TypeError, "subset_c: an edge is a (lo, hi, target) tuple");
                return NULL;
            }
            long lo, hi;
            if (read_int(PySequence_Fast_ITEMS(e)[0], 0, c->n_symbols, &lo) < 0 ||
                read_int(PySequence_Fast_ITEMS(e)[1], lo, c->n_symbols, &hi) < 0)
                return NULL;
            if (lo < 256)
                cut[lo] = 1;
            if (hi + 1 < 256)
                cut[hi + 1] = 1;
        }
    }
    c->classes = zalloc((size_t)c->n_symbols, sizeof(int32_t), 0);
    PyObject *starts = PyList_New(0);
    if (c->classes == NULL || starts == NULL) {
        Py_XDECREF(starts);
        return c->classes == NULL ? PyErr_NoMemory() : NULL;
    }
    int32_t k = -1;
    for (int b = 0; b < 256; b++) {
        if (cut[b]) {
            k++;
            PyObject *x = PyLong_FromLong(b);
            if (x == NULL || PyList_Append(starts, x) < 0) {
                Py_XDECREF(x);
                Py_DECREF(starts);
                return NULL;
            }
            Py_DECREF(x);
        }
        c->classes[b] = k;
    }
    for (Py_ssize_t j = 0; j < n_callees; j++)
        c->classes[256 + PyLong_AsLong(PyList_GET_ITEM(callees, j))] = k + 1 + (int32_t)j;
    return starts;
}

static PyObject *rule_table(PyObject *self, PyObject *args) {
    (void)self;
    PyObject *eps, *edges, *callees, *max_states_o, *max_work_o, *check, *message;
    Py_ssize_t start, accept;
    if (!PyArg_ParseTuple(args, "OOnnOOOOO", &eps, &edges, &start, &accept, &callees, &max_states_o,
                          &max_work_o, &check, &message))
        return NULL;
    long long max_states, max_work;
    if (read_limit(max_states_o, &max_states) < 0 || read_limit(max_work_o, &max_work) < 0 ||
        check_lists(eps, edges) < 0)
        return NULL;
    Ctx c;
    memset(&c, 0, sizeof(c));
    PyObject *result = NULL, *starts = rule_classes(&c, edges, callees);
    if (starts != NULL &&
        ctx_init(&c, eps, edges, start, accept, NULL, PyList_GET_SIZE(starts) + PyList_GET_SIZE(callees)) == 0) {
        int status = construct(&c, start, max_states, max_work, check, message);
        PyObject *built = status >= 0 ? result_of(&c, status) : NULL;
        if (built != NULL) {
            result = Py_BuildValue("OO", built, starts);
            Py_DECREF(built);
        }
    }
    Py_XDECREF(starts);
    ctx_free(&c);
    return result;
}

static PyMethodDef methods[] = {
    {"subset_table", subset_table, METH_VARARGS,
     "subset_table(eps, edges, start, accept, symbol_class, n_classes, max_states, max_work, check, message)"
     " -> (n_states, table, accepting): dfa.subset_construction's table (int64 bytes, n_states x n_classes)"
     " and accepting (bool bytes), or (n_states, None, None) once a limit is passed."},
    {"rule_table", rule_table, METH_VARARGS,
     "rule_table(eps, edges, start, accept, callees, max_states, max_work, check, message)"
     " -> ((n_states, table, accepting), byte class starts): subset_table over a grammar rule's own classes"
     " (bytes cut where edges start or end, then one per callee, symbol 256 + r, in the sorted callees' order)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "subset_c", NULL, -1, methods};

PyMODINIT_FUNC PyInit_subset_c(void) { return PyModule_Create(&module); }
