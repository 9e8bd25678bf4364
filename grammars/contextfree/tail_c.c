/* rtn.py's `_TailBuilder` (a rule body's NFA built right to left, repeated tails shared) compiled; and
 * `_spread`, the rule's DFA over bytes written straight into the RTN's table, and `_unroll_lexeme`, a
 * lexeme's (state, counter) pairs written so too (both at the end of this file).
 *
 * The same NFA as the Python, which stays the fallback and the tests' oracle: the same states in the same
 * order, each state's epsilon targets and (lo, hi, target) edges in the same order, the same callees and
 * `maybe_dead`, and the same sharing: one entry state per (node object, state after it), as the Python's
 * memo keyed by (id(node), k). Every step below is the Python method of the same name, step for step; an
 * edge or epsilon target is recorded in the order the Python appends it, and each state's lists are made
 * from those records at the end (a stable bucketing by state keeps each list's order).
 *
 * The node classes and `utf8_sequences` (called back) come in as arguments (`kinds`), so that this module
 * imports nothing; `all_coreachable` is computed here from the automaton's edges as they are copied in, and
 * kept on the node as the Python keeps it. A node is matched by its exact type, as the
 * Python's `type(node) is Concat`. The recursion counts against Python's recursion limit
 * (Py_EnterRecursiveCall), so a body nested too deep raises RecursionError as the Python does (the caller
 * then checks the nesting). The GIL is held throughout.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

typedef struct {
    int32_t s, lo, hi, t;
} Edge;

typedef struct {
    int32_t s, t;
} Eps;

typedef struct {
    uintptr_t node;
    int32_t k, v; /* v < 0: an empty slot */
} Slot;

typedef struct {
    int32_t len; /* 1..3 byte ranges */
    uint8_t r[3][2];
    int32_t state;
} Suffix;

typedef struct {
    PyTypeObject *concat, *charset, *call, *alt, *repeat, *automaton;
    PyObject *utf8_sequences, *index;
    int32_t n; /* states so far */
    Edge *edges;
    size_t n_edges, cap_edges;
    Eps *eps;
    size_t n_eps, cap_eps;
    Slot *memo;
    size_t memo_used, memo_cap; /* cap a power of two, at most half full */
    int32_t *callees;
    size_t n_callees, cap_callees;
    Suffix *suffixes;
    size_t cap_suffixes;
    int maybe_dead;
} B;

static PyObject *s_items, *s_ranges, *s_rule, *s_item, *s_min, *s_max, *s_n, *s_start, *s_accepting,
    *s_edges, *s_kept;

static void *grow(void *p, size_t *cap, size_t need, size_t size) {
    if (need <= *cap)
        return p;
    size_t c = *cap ? *cap : 64;
    while (c < need)
        c *= 2;
    void *q = PyMem_Realloc(p, c * size);
    if (q == NULL) {
        PyErr_NoMemory();
        return NULL;
    }
    *cap = c;
    return q;
}

static int add_edge(B *b, int32_t s, long lo, long hi, int32_t t) {
    if (b->n_edges == b->cap_edges) {
        Edge *e = grow(b->edges, &b->cap_edges, b->n_edges + 1, sizeof(Edge));
        if (e == NULL)
            return -1;
        b->edges = e;
    }
    b->edges[b->n_edges++] = (Edge){s, (int32_t)lo, (int32_t)hi, t};
    return 0;
}

static int add_eps(B *b, int32_t s, int32_t t) {
    if (b->n_eps == b->cap_eps) {
        Eps *e = grow(b->eps, &b->cap_eps, b->n_eps + 1, sizeof(Eps));
        if (e == NULL)
            return -1;
        b->eps = e;
    }
    b->eps[b->n_eps++] = (Eps){s, t};
    return 0;
}

static int32_t new_state(B *b) {
    if (b->n == INT32_MAX) {
        PyErr_SetString(PyExc_OverflowError, "tail_c: too many NFA states");
        return -1;
    }
    return b->n++;
}

/* ---- the memo: (node, k) -> entry state ---- */

static inline size_t memo_hash(uintptr_t node, int32_t k) {
    uint64_t z = (uint64_t)node * 0x9e3779b97f4a7c15ULL ^ (uint64_t)(uint32_t)k * 0xbf58476d1ce4e5b9ULL;
    return (size_t)(z ^ (z >> 29));
}

static int32_t memo_get(const B *b, uintptr_t node, int32_t k) {
    size_t m = b->memo_cap - 1;
    for (size_t i = memo_hash(node, k) & m;; i = (i + 1) & m) {
        const Slot *x = &b->memo[i];
        if (x->v < 0)
            return -1;
        if (x->node == node && x->k == k)
            return x->v;
    }
}

static void memo_put_clean(Slot *tab, size_t cap, uintptr_t node, int32_t k, int32_t v) {
    size_t m = cap - 1, i = memo_hash(node, k) & m;
    while (tab[i].v >= 0 && !(tab[i].node == node && tab[i].k == k))
        i = (i + 1) & m;
    tab[i] = (Slot){node, k, v};
}

static int memo_put(B *b, uintptr_t node, int32_t k, int32_t v) {
    if (2 * (b->memo_used + 1) > b->memo_cap) {
        size_t cap = 2 * b->memo_cap;
        Slot *tab = PyMem_Malloc(cap * sizeof(Slot));
        if (tab == NULL) {
            PyErr_NoMemory();
            return -1;
        }
        for (size_t i = 0; i < cap; i++)
            tab[i].v = -1;
        for (size_t i = 0; i < b->memo_cap; i++)
            if (b->memo[i].v >= 0)
                memo_put_clean(tab, cap, b->memo[i].node, b->memo[i].k, b->memo[i].v);
        PyMem_Free(b->memo);
        b->memo = tab;
        b->memo_cap = cap;
    }
    b->memo_used++; /* (a key is put once: after its build, which cannot meet it again) */
    memo_put_clean(b->memo, b->memo_cap, node, k, v);
    return 0;
}

/* ---- reading the nodes ---- */

static int as_int(PyObject *o, long lo, long hi, long *out) {
    long v = PyLong_AsLong(o);
    if (v == -1 && PyErr_Occurred())
        return -1;
    if (v < lo || v > hi) {
        PyErr_Format(PyExc_ValueError, "tail_c: %ld out of range [%ld, %ld]", v, lo, hi);
        return -1;
    }
    *out = v;
    return 0;
}

/* (lo, hi) of a pair object, each in [0, top]. */
static int pair(PyObject *p, long top, long *lo, long *hi) {
    if (!PyTuple_Check(p) || PyTuple_GET_SIZE(p) != 2) {
        PyErr_SetString(PyExc_TypeError, "tail_c: a range is a (lo, hi) tuple");
        return -1;
    }
    return as_int(PyTuple_GET_ITEM(p, 0), 0, top, lo) < 0 || as_int(PyTuple_GET_ITEM(p, 1), 0, top, hi) < 0
               ? -1
               : 0;
}

/* A sequence attribute (a node's items, ranges, edges) as a list or tuple (PySequence_Fast: an automaton's
 * edges may be a lazy sequence), a new reference or NULL. */
static PyObject *seq_attr(PyObject *node, PyObject *name) {
    PyObject *t = PyObject_GetAttr(node, name);
    if (t == NULL || PyTuple_CheckExact(t) || PyList_CheckExact(t))
        return t;
    PyObject *fast = PySequence_Fast(t, "tail_c: a node's items, ranges and edges are sequences");
    Py_DECREF(t);
    return fast;
}

/* ---- the builder ---- */

static int32_t into(B *b, PyObject *node, int32_t k);

/* `_ascii`: one state, one edge per range (ASCII ranges, at least one). */
static int32_t ascii(B *b, PyObject *ranges, int32_t k) {
    int32_t s = new_state(b);
    if (s < 0)
        return -1;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(ranges);
    for (Py_ssize_t j = 0; j < n; j++) {
        long lo, hi;
        if (pair(PySequence_Fast_GET_ITEM(ranges, j), 0x7f, &lo, &hi) < 0 || add_edge(b, s, lo, hi, k) < 0)
            return -1;
    }
    return s;
}

/* Whether `_charset` takes the ASCII path: ranges non-empty, the last one ending below 0x80. */
static int is_ascii(PyObject *ranges, int *out) {
    Py_ssize_t n = PySequence_Fast_GET_SIZE(ranges);
    *out = 0;
    if (n == 0)
        return 0;
    long lo, hi;
    if (pair(PySequence_Fast_GET_ITEM(ranges, n - 1), 0x10ffff, &lo, &hi) < 0)
        return -1;
    *out = hi < 0x80;
    return 0;
}

/* The state reading byte-range sequence seq's ranges from i on, then k: found by suffix or made. */
static int32_t suffix_state(B *b, size_t *n_suffixes, const uint8_t (*seq)[2], int32_t len, int32_t i,
                            int32_t nxt) {
    int32_t m = len - i;
    for (size_t j = 0; j < *n_suffixes; j++) {
        const Suffix *x = &b->suffixes[j];
        if (x->len == m && memcmp(x->r, seq[i], (size_t)m * 2) == 0)
            return x->state;
    }
    Suffix *sx = grow(b->suffixes, &b->cap_suffixes, *n_suffixes + 1, sizeof(Suffix));
    if (sx == NULL)
        return -1;
    b->suffixes = sx;
    int32_t hit = new_state(b);
    if (hit < 0 || add_edge(b, hit, seq[i][0], seq[i][1], nxt) < 0)
        return -1;
    Suffix *x = &b->suffixes[(*n_suffixes)++];
    x->len = m;
    memcpy(x->r, seq[i], (size_t)m * 2);
    x->state = hit;
    return hit;
}

/* `_charset` past the ASCII path: the UTF-8 sequences (Python's `utf8_sequences`), their tails shared. */
static int32_t utf8_charset(B *b, PyObject *ranges, int32_t k) {
    int32_t s = new_state(b);
    if (s < 0)
        return -1;
    PyObject *seqs = PyObject_CallOneArg(b->utf8_sequences, ranges);
    if (seqs == NULL)
        return -1;
    int32_t result = -1;
    if (!PyTuple_Check(seqs)) {
        PyErr_SetString(PyExc_TypeError, "tail_c: utf8_sequences gives a tuple");
        goto done;
    }
    size_t n_suffixes = 0; /* by_suffix, less its () -> k */
    int any = 0;
    for (Py_ssize_t j = 0; j < PyTuple_GET_SIZE(seqs); j++) {
        PyObject *seq = PyTuple_GET_ITEM(seqs, j);
        if (!PyTuple_Check(seq) || PyTuple_GET_SIZE(seq) < 1 || PyTuple_GET_SIZE(seq) > 4) {
            PyErr_SetString(PyExc_TypeError, "tail_c: a UTF-8 sequence is a tuple of 1 to 4 ranges");
            goto done;
        }
        int32_t len = (int32_t)PyTuple_GET_SIZE(seq);
        uint8_t r[4][2];
        for (int32_t i = 0; i < len; i++) {
            long lo, hi;
            if (pair(PyTuple_GET_ITEM(seq, i), 0xff, &lo, &hi) < 0)
                goto done;
            r[i][0] = (uint8_t)lo, r[i][1] = (uint8_t)hi;
        }
        int32_t nxt = k;
        for (int32_t i = len - 1; i > 0; i--)
            if ((nxt = suffix_state(b, &n_suffixes, (const uint8_t(*)[2])r, len, i, nxt)) < 0)
                goto done;
        if (add_edge(b, s, r[0][0], r[0][1], nxt) < 0)
            goto done;
        any = 1;
    }
    if (!any) /* no ranges, or only code points without UTF-8 (surrogates) */
        b->maybe_dead = 1;
    result = s;
done:
    Py_DECREF(seqs);
    return result;
}

static int32_t charset(B *b, PyObject *node, int32_t k) {
    PyObject *ranges = seq_attr(node, s_ranges);
    if (ranges == NULL)
        return -1;
    int a;
    int32_t s = is_ascii(ranges, &a) < 0 ? -1 : a ? ascii(b, ranges, k) : utf8_charset(b, ranges, k);
    Py_DECREF(ranges);
    return s;
}

static int32_t call(B *b, PyObject *node, int32_t k) {
    int32_t s = new_state(b);
    if (s < 0)
        return -1;
    PyObject *rule = PyObject_GetAttr(node, s_rule);
    if (rule == NULL)
        return -1;
    PyObject *r_obj = PyDict_GetItemWithError(b->index, rule); /* borrowed */
    if (r_obj == NULL) {
        if (!PyErr_Occurred())
            PyErr_SetObject(PyExc_KeyError, rule);
        Py_DECREF(rule);
        return -1;
    }
    Py_DECREF(rule);
    long r;
    if (as_int(r_obj, 0, INT32_MAX - 256, &r) < 0 || add_edge(b, s, 256 + r, 256 + r, k) < 0)
        return -1;
    int32_t *c = grow(b->callees, &b->cap_callees, b->n_callees + 1, sizeof(int32_t));
    if (c == NULL)
        return -1;
    b->callees = c;
    b->callees[b->n_callees++] = (int32_t)r;
    return s;
}

/* A Concat's items, last first, each into the state the next one starts (through the memo). */
static int32_t concat(B *b, PyObject *node, int32_t k) {
    PyObject *items = seq_attr(node, s_items);
    if (items == NULL)
        return -1;
    for (Py_ssize_t j = PySequence_Fast_GET_SIZE(items) - 1; j >= 0 && k >= 0; j--)
        k = into(b, PySequence_Fast_GET_ITEM(items, j), k);
    Py_DECREF(items);
    return k;
}

static int32_t alt(B *b, PyObject *node, int32_t k) {
    int32_t s = new_state(b);
    if (s < 0)
        return -1;
    PyObject *items = seq_attr(node, s_items);
    if (items == NULL)
        return -1;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(items);
    if (n == 0)
        b->maybe_dead = 1;
    int32_t stack_buf[16], *heads = n <= 16 ? stack_buf : PyMem_Malloc((size_t)n * sizeof(int32_t));
    int32_t result = s;
    if (heads == NULL) {
        PyErr_NoMemory();
        result = -1;
    }
    for (Py_ssize_t j = 0; j < n && result >= 0; j++) /* all the items first, as the Python's list */
        if ((heads[j] = into(b, PySequence_Fast_GET_ITEM(items, j), k)) < 0)
            result = -1;
    for (Py_ssize_t j = 0; j < n && result >= 0; j++)
        if (add_eps(b, s, heads[j]) < 0)
            result = -1;
    if (heads != stack_buf)
        PyMem_Free(heads);
    Py_DECREF(items);
    return result;
}

static int32_t repeat(B *b, PyObject *node, int32_t k) {
    PyObject *item = PyObject_GetAttr(node, s_item);
    if (item == NULL)
        return -1;
    PyObject *min_o = PyObject_GetAttr(node, s_min), *max_o = PyObject_GetAttr(node, s_max);
    long lo = 0, hi = 0;
    int32_t t = -1;
    if (min_o == NULL || max_o == NULL || as_int(min_o, 0, INT32_MAX, &lo) < 0 ||
        (max_o != Py_None && as_int(max_o, 0, INT32_MAX, &hi) < 0))
        goto done;
    if (max_o == Py_None) { /* the star's hub: the item, back to the hub, or on */
        if ((t = new_state(b)) < 0)
            goto done;
        int32_t a = into(b, item, t);
        if (a < 0 || add_eps(b, t, a) < 0 || add_eps(b, t, k) < 0) {
            t = -1;
            goto done;
        }
    } else { /* up to max - min optional items, each skippable */
        t = k;
        for (long j = 0; j < hi - lo; j++) {
            int32_t o = new_state(b), a = o < 0 ? -1 : into(b, item, t);
            if (a < 0 || add_eps(b, o, a) < 0 || add_eps(b, o, t) < 0) {
                t = -1;
                goto done;
            }
            t = o;
        }
    }
    for (long j = 0; j < lo && t >= 0; j++)
        t = into(b, item, t);
done:
    Py_DECREF(item);
    Py_XDECREF(min_o);
    Py_XDECREF(max_o);
    return t;
}

/* rtn.py's `all_coreachable`: whether every state of the automaton (states base.., its edges the records
 * from e0 on, its accepting states those with an epsilon record from p0 on) reaches an accepting one. 1, 0,
 * or -1 on error. */
static int coreachable(const B *b, int32_t base, int32_t n, size_t e0, size_t p0) {
    int32_t *off = PyMem_Calloc((size_t)n + 1, sizeof(int32_t)), *src = NULL, *stack = NULL;
    uint8_t *seen = PyMem_Calloc((size_t)n + 1, 1);
    int result = -1;
    size_t m = b->n_edges - e0;
    if (off == NULL || seen == NULL || (src = PyMem_Malloc((m + 1) * sizeof(int32_t))) == NULL ||
        (stack = PyMem_Malloc(((size_t)n + 1) * sizeof(int32_t))) == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    for (size_t i = e0; i < b->n_edges; i++) /* the edges reversed: sources by target */
        off[b->edges[i].t - base + 1]++;
    for (int32_t s = 0; s < n; s++)
        off[s + 1] += off[s];
    for (size_t i = e0; i < b->n_edges; i++)
        src[off[b->edges[i].t - base]++] = b->edges[i].s - base;
    for (int32_t s = n; s > 0; s--) /* (each offset moved to its successor's start: back one) */
        off[s] = off[s - 1];
    off[0] = 0;
    size_t top = 0, reached = 0;
    for (size_t i = p0; i < b->n_eps; i++) {
        int32_t a = b->eps[i].s - base;
        if (!seen[a])
            seen[a] = 1, stack[top++] = a, reached++;
    }
    while (top) {
        int32_t d = stack[--top];
        for (int32_t j = off[d]; j < off[d + 1]; j++)
            if (!seen[src[j]])
                seen[src[j]] = 1, stack[top++] = src[j], reached++;
    }
    result = reached == (size_t)n;
done:
    PyMem_Free(off);
    PyMem_Free(src);
    PyMem_Free(stack);
    PyMem_Free(seen);
    return result;
}

/* `all_coreachable`, kept on the node as the Python keeps it (`_all_coreachable` in its __dict__, which
 * either may have set): a schema's rules share their key automata. 1, 0, or -1 on error. */
static int kept_coreachable(const B *b, PyObject *node, int32_t base, int32_t n, size_t e0, size_t p0) {
    PyObject *dict = PyObject_GenericGetDict(node, NULL);
    if (dict == NULL)
        return -1;
    PyObject *kept = PyDict_GetItemWithError(dict, s_kept); /* borrowed */
    int ok;
    if (kept != NULL) {
        ok = PyObject_IsTrue(kept);
    } else if (PyErr_Occurred() || (ok = coreachable(b, base, n, e0, p0)) < 0) {
        ok = -1;
    } else if (PyDict_SetItem(dict, s_kept, ok ? Py_True : Py_False) < 0) {
        ok = -1;
    }
    Py_DECREF(dict);
    return ok;
}

/* `_automaton`: the automaton's states copied in, its accepting states on to k. */
static int32_t automaton(B *b, PyObject *node, int32_t k) {
    PyObject *n_o = PyObject_GetAttr(node, s_n), *start_o = NULL, *acc = NULL, *edges = NULL, *it = NULL;
    int32_t result = -1;
    long n, start;
    if (n_o == NULL || as_int(n_o, 0, INT32_MAX - 1 - b->n, &n) < 0)
        goto done;
    int32_t base = b->n;
    b->n += (int32_t)n;
    size_t e0 = b->n_edges, p0 = b->n_eps;
    if ((start_o = PyObject_GetAttr(node, s_start)) == NULL || as_int(start_o, 0, n - 1, &start) < 0 ||
        (edges = seq_attr(node, s_edges)) == NULL)
        goto done;
    for (Py_ssize_t j = 0; j < PySequence_Fast_GET_SIZE(edges); j++) {
        PyObject *e = PySequence_Fast_GET_ITEM(edges, j);
        long s, lo, hi, d;
        if (!PyTuple_Check(e) || PyTuple_GET_SIZE(e) != 4) {
            PyErr_SetString(PyExc_TypeError, "tail_c: an automaton's edge is a (src, lo, hi, dst) tuple");
            goto done;
        }
        if (as_int(PyTuple_GET_ITEM(e, 0), 0, n - 1, &s) < 0 || as_int(PyTuple_GET_ITEM(e, 1), 0, 255, &lo) < 0 ||
            as_int(PyTuple_GET_ITEM(e, 2), 0, 255, &hi) < 0 || as_int(PyTuple_GET_ITEM(e, 3), 0, n - 1, &d) < 0 ||
            add_edge(b, base + (int32_t)s, lo, hi, base + (int32_t)d) < 0)
            goto done;
    }
    if ((acc = PyObject_GetAttr(node, s_accepting)) == NULL || (it = PyObject_GetIter(acc)) == NULL)
        goto done;
    PyObject *a_o;
    while ((a_o = PyIter_Next(it)) != NULL) {
        long a;
        int bad = as_int(a_o, 0, n - 1, &a) < 0 || add_eps(b, base + (int32_t)a, k) < 0;
        Py_DECREF(a_o);
        if (bad)
            goto done;
    }
    if (PyErr_Occurred())
        goto done;
    int ok = kept_coreachable(b, node, base, (int32_t)n, e0, p0);
    if (ok < 0)
        goto done;
    if (!ok)
        b->maybe_dead = 1;
    result = base + (int32_t)start;
done:
    Py_XDECREF(n_o);
    Py_XDECREF(start_o);
    Py_XDECREF(edges);
    Py_XDECREF(acc);
    Py_XDECREF(it);
    return result;
}

/* `_into`: a state reading `node`, then on from state k (no memo). */
static int32_t build(B *b, PyObject *node, int32_t k) {
    PyTypeObject *kind = Py_TYPE(node);
    if (kind == b->concat)
        return concat(b, node, k);
    if (kind == b->charset)
        return charset(b, node, k);
    if (kind == b->call)
        return call(b, node, k);
    if (kind == b->alt)
        return alt(b, node, k);
    if (kind == b->repeat)
        return repeat(b, node, k);
    if (kind == b->automaton)
        return automaton(b, node, k);
    PyErr_SetObject(PyExc_TypeError, node);
    return -1;
}

/* `into`: the memo's state for (node, k), built on a miss. */
static int32_t into(B *b, PyObject *node, int32_t k) {
    int32_t hit = memo_get(b, (uintptr_t)node, k);
    if (hit >= 0)
        return hit;
    if (Py_EnterRecursiveCall(" while building a rule's NFA"))
        return -1;
    hit = build(b, node, k);
    Py_LeaveRecursiveCall();
    if (hit < 0 || memo_put(b, (uintptr_t)node, k, hit) < 0)
        return -1;
    return hit;
}

/* ---- the result as the Python's lists ---- */

static int cmp_int32(const void *x, const void *y) {
    int32_t a = *(const int32_t *)x, c = *(const int32_t *)y;
    return (a > c) - (a < c);
}

/* Per state, where its records start among all of that kind (`state_of`: the records' state fields, their
 * first member, `stride` int32s apart), counted first: records then go to their state in order. */
static int32_t *bucket_starts(int32_t n, size_t count, const int32_t *state_of, size_t stride) {
    int32_t *off = PyMem_Calloc((size_t)n + 1, sizeof(int32_t));
    if (off == NULL) {
        PyErr_NoMemory();
        return NULL;
    }
    for (size_t i = 0; i < count; i++)
        off[state_of[i * stride] + 1]++;
    for (int32_t s = 0; s < n; s++)
        off[s + 1] += off[s];
    return off;
}

/* The state numbers as ints, made once each (an edge list holds most of them several times). */
static PyObject **state_ints(int32_t n) {
    PyObject **ints = PyMem_Calloc((size_t)n + 1, sizeof(PyObject *));
    if (ints == NULL) {
        PyErr_NoMemory();
        return NULL;
    }
    for (int32_t s = 0; s < n; s++)
        if ((ints[s] = PyLong_FromLong(s)) == NULL)
            return ints; /* (the caller sees the error; free_ints stops at the NULL) */
    return ints;
}

static void free_ints(PyObject **ints, int32_t n) {
    for (int32_t s = 0; ints != NULL && s < n && ints[s] != NULL; s++)
        Py_DECREF(ints[s]);
    PyMem_Free(ints);
}

/* A list of n empty-slotted lists, one per state, sized by `off` (NULL on error). */
static PyObject *state_lists(int32_t n, const int32_t *off) {
    PyObject *out = PyList_New(n);
    for (int32_t s = 0; out != NULL && s < n; s++) {
        PyObject *l = PyList_New(off[s + 1] - off[s]);
        if (l == NULL)
            Py_CLEAR(out);
        else
            PyList_SET_ITEM(out, s, l);
    }
    return out;
}

static PyObject *eps_lists(const B *b, PyObject **ints) {
    int32_t *off = bucket_starts(b->n, b->n_eps, (const int32_t *)b->eps, sizeof(Eps) / sizeof(int32_t));
    PyObject *out = off == NULL ? NULL : state_lists(b->n, off);
    if (out != NULL) /* from here: each state's list filled so far */
        memset(off, 0, ((size_t)b->n + 1) * sizeof(int32_t));
    for (size_t i = 0; out != NULL && i < b->n_eps; i++) {
        int32_t s = b->eps[i].s;
        Py_INCREF(ints[b->eps[i].t]);
        PyList_SET_ITEM(PyList_GET_ITEM(out, s), off[s]++, ints[b->eps[i].t]);
    }
    PyMem_Free(off);
    return out;
}

static PyObject *edge_lists(const B *b, PyObject **ints) {
    int32_t *off = bucket_starts(b->n, b->n_edges, (const int32_t *)b->edges, sizeof(Edge) / sizeof(int32_t));
    PyObject *out = off == NULL ? NULL : state_lists(b->n, off);
    if (out != NULL) /* from here: each state's list filled so far */
        memset(off, 0, ((size_t)b->n + 1) * sizeof(int32_t));
    for (size_t i = 0; out != NULL && i < b->n_edges; i++) {
        const Edge *e = &b->edges[i];
        PyObject *t = PyTuple_New(3), *lo = t == NULL ? NULL : PyLong_FromLong(e->lo);
        PyObject *hi = lo == NULL ? NULL : e->hi == e->lo ? Py_NewRef(lo) : PyLong_FromLong(e->hi);
        if (hi == NULL) {
            Py_XDECREF(lo);
            Py_XDECREF(t);
            Py_CLEAR(out);
            break;
        }
        PyTuple_SET_ITEM(t, 0, lo);
        PyTuple_SET_ITEM(t, 1, hi);
        PyTuple_SET_ITEM(t, 2, Py_NewRef(ints[e->t]));
        PyList_SET_ITEM(PyList_GET_ITEM(out, e->s), off[e->s]++, t);
    }
    PyMem_Free(off);
    return out;
}

/* The callees, sorted and distinct, as a list. */
static PyObject *callee_list(B *b) {
    qsort(b->callees, b->n_callees, sizeof(int32_t), cmp_int32);
    PyObject *out = PyList_New(0);
    for (size_t i = 0; out != NULL && i < b->n_callees; i++) {
        if (i && b->callees[i] == b->callees[i - 1])
            continue;
        PyObject *x = PyLong_FromLong(b->callees[i]);
        if (x == NULL || PyList_Append(out, x) < 0)
            Py_CLEAR(out);
        Py_XDECREF(x);
    }
    return out;
}

static int read_kinds(B *b, PyObject *kinds) {
    PyTypeObject **types[] = {&b->concat, &b->charset, &b->call, &b->alt, &b->repeat, &b->automaton};
    if (!PyTuple_Check(kinds) || PyTuple_GET_SIZE(kinds) != 7) {
        PyErr_SetString(PyExc_TypeError,
                        "tail_c: kinds is (Concat, CharSet, Call, Alt, Repeat, Automaton, utf8_sequences)");
        return -1;
    }
    for (int i = 0; i < 6; i++) {
        PyObject *t = PyTuple_GET_ITEM(kinds, i);
        if (!PyType_Check(t)) {
            PyErr_SetString(PyExc_TypeError, "tail_c: the node kinds are classes");
            return -1;
        }
        *types[i] = (PyTypeObject *)t;
    }
    b->utf8_sequences = PyTuple_GET_ITEM(kinds, 6);
    return 0;
}

static PyObject *tail_nfa(PyObject *self, PyObject *args) {
    (void)self;
    PyObject *body, *index, *kinds;
    if (!PyArg_ParseTuple(args, "OO!O", &body, &PyDict_Type, &index, &kinds))
        return NULL;
    B b;
    memset(&b, 0, sizeof(b));
    b.index = index;
    PyObject *result = NULL, *eps = NULL, *edges = NULL, *callees = NULL, **ints = NULL;
    if (read_kinds(&b, kinds) < 0)
        return NULL;
    b.memo_cap = 64;
    b.memo = PyMem_Malloc(b.memo_cap * sizeof(Slot));
    if (b.memo == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    for (size_t i = 0; i < b.memo_cap; i++)
        b.memo[i].v = -1;
    int32_t accept = new_state(&b);
    int32_t start = into(&b, body, accept);
    if (start < 0)
        goto done;
    ints = state_ints(b.n);
    if (ints == NULL || PyErr_Occurred() || (eps = eps_lists(&b, ints)) == NULL ||
        (edges = edge_lists(&b, ints)) == NULL || (callees = callee_list(&b)) == NULL)
        goto done;
    result = Py_BuildValue("OOiiOO", eps, edges, (int)start, (int)accept, callees,
                           b.maybe_dead ? Py_True : Py_False);
done:
    free_ints(ints, b.n);
    Py_XDECREF(eps);
    Py_XDECREF(edges);
    Py_XDECREF(callees);
    PyMem_Free(b.edges);
    PyMem_Free(b.eps);
    PyMem_Free(b.memo);
    PyMem_Free(b.callees);
    PyMem_Free(b.suffixes);
    return result;
}

/* ---- a rule's DFA spread over bytes (`rtn._spread`, offset, written in place) ---- */

static int int_list(PyObject *o, const char *what) {
    if (!PyList_Check(o)) {
        PyErr_Format(PyExc_TypeError, "tail_c: %s is a list", what);
        return -1;
    }
    return 0;
}

/* `_spread` of a rule's class table (int64 [n, classes + callees], C order), its states numbered from lo:
 * each state's row of 256 bytes written into `out` (int32 [n, 256], C order: the RTN table's rows lo..),
 * every target plus lo (DEAD stays -1). Returns (has_bytes, calls): per state, whether it has a byte edge,
 * and its call edges as a tuple of (callee, lo + target), in callee order (`RTN._build`'s lists). */
static PyObject *spread(PyObject *self, PyObject *args) {
    (void)self;
    PyObject *table_o, *starts, *callees, *out_o;
    Py_ssize_t lo;
    if (!PyArg_ParseTuple(args, "OOOnO", &table_o, &starts, &callees, &lo, &out_o))
        return NULL;
    if (int_list(starts, "starts") < 0 || int_list(callees, "callees") < 0)
        return NULL;
    Py_ssize_t n_classes = PyList_GET_SIZE(starts), n_callees = PyList_GET_SIZE(callees);
    Py_buffer tb, ob;
    if (PyObject_GetBuffer(table_o, &tb, PyBUF_C_CONTIGUOUS) < 0)
        return NULL;
    if (PyObject_GetBuffer(out_o, &ob, PyBUF_C_CONTIGUOUS | PyBUF_WRITABLE) < 0) {
        PyBuffer_Release(&tb);
        return NULL;
    }
    PyObject *has = NULL, *calls = NULL, *result = NULL;
    Py_ssize_t cols = n_classes + n_callees, n = cols ? tb.len / (Py_ssize_t)(cols * sizeof(int64_t)) : 0;
    int32_t first[257]; /* each class's first byte, then 256 */
    if (n_classes < 1 || n_classes > 256 || tb.itemsize != sizeof(int64_t) ||
        tb.len != n * cols * (Py_ssize_t)sizeof(int64_t) || ob.itemsize != sizeof(int32_t) ||
        ob.len != n * 256 * (Py_ssize_t)sizeof(int32_t) || lo < 0 || lo > INT32_MAX - n) {
        PyErr_SetString(PyExc_ValueError, "tail_c: spread's table, classes and rows do not fit together");
        goto done;
    }
    for (Py_ssize_t c = 0; c < n_classes; c++) {
        long x;
        if (as_int(PyList_GET_ITEM(starts, c), c ? first[c - 1] + 1 : 0, c ? 255 : 0, &x) < 0)
            goto done;
        first[c] = (int32_t)x;
    }
    first[n_classes] = 256;
    has = PyList_New(n);
    calls = PyList_New(n);
    if (has == NULL || calls == NULL)
        goto done;
    const int64_t *t = tb.buf;
    int32_t *o = ob.buf;
    for (Py_ssize_t s = 0; s < n; s++) {
        const int64_t *row = t + s * cols;
        int32_t *dst = o + s * 256;
        int any = 0;
        for (Py_ssize_t c = 0; c < n_classes; c++) {
            int64_t d = row[c];
            int32_t v = d >= 0 ? (int32_t)(d + lo) : -1;
            any |= d >= 0;
            for (int32_t b = first[c]; b < first[c + 1]; b++)
                dst[b] = v;
        }
        PyList_SET_ITEM(has, s, Py_NewRef(any ? Py_True : Py_False));
        Py_ssize_t k = 0;
        for (Py_ssize_t c = 0; c < n_callees; c++)
            k += row[n_classes + c] >= 0;
        PyObject *edges = PyTuple_New(k);
        if (edges == NULL)
            goto done;
        PyList_SET_ITEM(calls, s, edges);
        k = 0;
        for (Py_ssize_t c = 0; c < n_callees; c++) {
            int64_t d = row[n_classes + c];
            if (d < 0)
                continue;
            PyObject *e = Py_BuildValue("(On)", PyList_GET_ITEM(callees, c), (Py_ssize_t)(d + lo));
            if (e == NULL)
                goto done;
            PyTuple_SET_ITEM(edges, k++, e);
        }
    }
    result = PyTuple_Pack(2, has, calls);
done:
    Py_XDECREF(has);
    Py_XDECREF(calls);
    PyBuffer_Release(&tb);
    PyBuffer_Release(&ob);
    return result;
}

/* ---- a lexeme's counted DFA unrolled (`rtn._unroll_lexeme`, offset, written in place) ---- */

/* A read-only C-contiguous buffer of n items of `size` bytes (or of any count when n < 0). 0 or -1. */
static int get_array(PyObject *o, Py_buffer *v, Py_ssize_t size, Py_ssize_t n, const char *what) {
    if (PyObject_GetBuffer(o, v, PyBUF_C_CONTIGUOUS) < 0)
        return -1;
    if (v->itemsize != size || (n >= 0 && v->len != n * size)) {
        PyErr_Format(PyExc_ValueError, "tail_c: unroll's %s has the wrong size", what);
        PyBuffer_Release(v);
        v->obj = NULL;
        return -1;
    }
    return 0;
}

/* `_unroll_lexeme` with its pairs numbered from lo: pair (q, c) is state lo + base[q] + c (base: the
 * running sum of `widths`), its byte row written into `out` (int32 [m, 256], C order: the RTN table's rows
 * lo..), every target plus lo. Inputs as `_unroll_lexeme` reads them: transitions (int32 [n, 256]),
 * accepting (bool [n]), seg (int64 [n], -1 outside segments), tick (bool [n, 256], or None), bounds (int64
 * [segments, 2]), lives (per state, its live table as bool [width], None outside segments), widths (int64
 * [n]). Returns (accepting, q_of, c_of, has_bytes): bytes (bool [m], int32 [m], int32 [m]) and a list. */
static PyObject *unroll(PyObject *self, PyObject *args) {
    (void)self;
    PyObject *trans_o, *acc_o, *seg_o, *tick_o, *bounds_o, *lives, *widths_o, *out_o;
    Py_ssize_t lo;
    if (!PyArg_ParseTuple(args, "OOOOOO!OnO", &trans_o, &acc_o, &seg_o, &tick_o, &bounds_o, &PyList_Type, &lives,
                          &widths_o, &lo, &out_o))
        return NULL;
    Py_ssize_t n = PyList_GET_SIZE(lives);
    Py_buffer tb = {0}, ab = {0}, sb = {0}, kb = {0}, bb = {0}, wb = {0}, ob = {0};
    Py_buffer *lb = PyMem_Calloc((size_t)n + 1, sizeof(Py_buffer));
    int64_t *base = PyMem_Calloc((size_t)n + 1, sizeof(int64_t));
    PyObject *result = NULL, *acc = NULL, *q_of = NULL, *c_of = NULL, *has = NULL;
    if (lb == NULL || base == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    if (get_array(trans_o, &tb, 4, n * 256, "transitions") < 0 || get_array(acc_o, &ab, 1, n, "accepting") < 0 ||
        get_array(seg_o, &sb, 8, n, "seg") < 0 ||
        (tick_o != Py_None && get_array(tick_o, &kb, 1, n * 256, "tick") < 0) ||
        get_array(bounds_o, &bb, 8, -1, "bounds") < 0 || get_array(widths_o, &wb, 8, n, "widths") < 0)
        goto done;
    const int32_t *trans = tb.buf;
    const uint8_t *accepting = ab.buf, *tick = tick_o != Py_None ? kb.buf : NULL;
    const int64_t *seg = sb.buf, *bounds = bb.buf, *width = wb.buf;
    Py_ssize_t n_segs = bb.len / 16;
    for (Py_ssize_t q = 0; q < n; q++) {
        if (seg[q] >= n_segs || width[q] < (seg[q] >= 0 ? 0 : 1) || width[q] > INT32_MAX) {
            PyErr_SetString(PyExc_ValueError, "tail_c: unroll's seg or widths out of range");
            goto done;
        }
        PyObject *l = PyList_GET_ITEM(lives, q);
        if ((seg[q] >= 0) != (l != Py_None)) {
            PyErr_SetString(PyExc_ValueError, "tail_c: unroll's lives are the segment states' tables");
            goto done;
        }
        if (l != Py_None && get_array(l, &lb[q], 1, width[q], "live table") < 0)
            goto done;
        base[q + 1] = base[q] + width[q];
    }
    Py_ssize_t m = (Py_ssize_t)base[n];
    if (PyObject_GetBuffer(out_o, &ob, PyBUF_C_CONTIGUOUS | PyBUF_WRITABLE) < 0) {
        ob.obj = NULL;
        goto done;
    }
    if (ob.itemsize != 4 || ob.len != m * 256 * 4 || lo < 0 || lo > INT32_MAX - m) {
        PyErr_SetString(PyExc_ValueError, "tail_c: unroll's rows do not fit the pairs");
        goto done;
    }
    for (Py_ssize_t j = 0; j < n * 256; j++)
        if (trans[j] >= n) {
            PyErr_SetString(PyExc_ValueError, "tail_c: unroll's transitions out of range");
            goto done;
        }
    acc = PyBytes_FromStringAndSize(NULL, m);
    q_of = PyBytes_FromStringAndSize(NULL, m * 4);
    c_of = PyBytes_FromStringAndSize(NULL, m * 4);
    has = PyList_New(m);
    if (acc == NULL || q_of == NULL || c_of == NULL || has == NULL)
        goto done;
    uint8_t *acc_out = (uint8_t *)PyBytes_AS_STRING(acc);
    int32_t *q_out = (int32_t *)PyBytes_AS_STRING(q_of), *c_out = (int32_t *)PyBytes_AS_STRING(c_of);
    int32_t *table = ob.buf;
    for (Py_ssize_t q = 0; q < n; q++) {
        int64_t s1 = seg[q], w = width[q], b_lo = s1 >= 0 ? bounds[2 * s1] : 0, b_hi = s1 >= 0 ? bounds[2 * s1 + 1] : 0;
        const uint8_t *live1 = s1 >= 0 ? lb[q].buf : NULL;
        for (int64_t c = 0; c < w; c++) {
            int64_t p = base[q] + c;
            int src_ok = live1 == NULL || live1[c] != 0, in_bounds = s1 < 0 || (b_lo <= c && c <= b_hi);
            acc_out[p] = accepting[q] ? (uint8_t)(src_ok && in_bounds) : 0;
            q_out[p] = (int32_t)q;
            c_out[p] = (int32_t)c;
            int32_t *row = table + p * 256;
            int any = 0;
            for (int b = 0; b < 256; b++) {
                int32_t nxt = trans[q * 256 + b], target = -1;
                if (nxt >= 0 && src_ok) {
                    int64_t s2 = seg[nxt], tk = tick != NULL ? tick[q * 256 + b] != 0 : 0;
                    int same = s1 >= 0 && s2 == s1;
                    int64_t counter = same ? c + tk : s2 >= 0 ? tk : 0;
                    int ok = same || in_bounds;
                    if (ok && s2 >= 0) { /* into a segment: the counter live there */
                        int64_t len = width[nxt];
                        const uint8_t *live2 = lb[nxt].buf;
                        ok = counter < len && live2[counter < len ? counter : len - 1] != 0;
                    }
                    if (ok)
                        target = (int32_t)(lo + base[nxt] + counter);
                }
                row[b] = target;
                any |= target >= 0;
            }
            PyList_SET_ITEM(has, p, Py_NewRef(any ? Py_True : Py_False));
        }
    }
    result = PyTuple_Pack(4, acc, q_of, c_of, has);
done:
    Py_XDECREF(acc);
    Py_XDECREF(q_of);
    Py_XDECREF(c_of);
    Py_XDECREF(has);
    Py_buffer *all[] = {&tb, &ab, &sb, &kb, &bb, &wb, &ob};
    for (size_t j = 0; j < sizeof(all) / sizeof(all[0]); j++)
        if (all[j]->obj != NULL)
            PyBuffer_Release(all[j]);
    for (Py_ssize_t q = 0; lb != NULL && q < n; q++)
        if (lb[q].obj != NULL)
            PyBuffer_Release(&lb[q]);
    PyMem_Free(lb);
    PyMem_Free(base);
    return result;
}

static PyMethodDef methods[] = {
    {"tail_nfa", tail_nfa, METH_VARARGS,
     "tail_nfa(body, index, kinds) -> (eps, edges, start, accept, callees, maybe_dead): rtn._TailBuilder's NFA"
     " of a rule body (accept is state 0, made first), callees sorted; kinds = (Concat, CharSet, Call, Alt,"
     " Repeat, Automaton, utf8_sequences)."},
    {"spread", spread, METH_VARARGS,
     "spread(table, starts, callees, lo, out) -> (has_bytes, calls): rtn._spread of a rule's class table (int64"
     " [n, classes + callees]) with its states numbered from lo, the byte rows written into out (int32 [n, 256])."},
    {"unroll", unroll, METH_VARARGS,
     "unroll(transitions, accepting, seg, tick, bounds, lives, widths, lo, out) -> (accepting, q_of, c_of,"
     " has_bytes): rtn._unroll_lexeme with its pairs numbered from lo, the byte rows written into out."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "tail_c", NULL, -1, methods};

PyMODINIT_FUNC PyInit_tail_c(void) {
    const char *names[] = {"items", "ranges",    "rule",  "item",           "min", "max",
                           "n",     "start",     "accepting", "edges", "_all_coreachable"};
    PyObject **slots[] = {&s_items, &s_ranges,    &s_rule,  &s_item, &s_min, &s_max,
                          &s_n,     &s_start,     &s_accepting, &s_edges, &s_kept};
    for (int i = 0; i < 11; i++)
        if ((*slots[i] = PyUnicode_InternFromString(names[i])) == NULL)
            return NULL;
    return PyModule_Create(&module);
}
