/* The Earley recognizer's step and closure (grammars/contextfree/earley.py) compiled.
 *
 * Same algorithm, same order: seeds in order, then a LIFO work list; so the sets it builds (their `items`
 * set, `scan` list and `waiting` dict of lists) equal the Python ones element for element and in the same
 * order. Membership is tested in a C hash table of (state, origin) pairs, so a Python tuple is made only
 * for a new item. The RTN's per-state lists are read as the Python lists they are (they grow in place
 * when `enter` builds a rule, which is called back here the first time a rule is predicted).
 *
 * tables = (has_bytes, accepting, calls, rule_of, starts, nullable, enter): the Recognizer's lists.
 * A set comes back as (items, scan, waiting, accept).
 *
 * Also here: the simulation of uncertain tokens (cfg_matcher's `_simulate`), a mask's assembly from the
 * states' rows with their uncertain ranks less the mask (`compose`), and the mask cache's signature of a
 * chart (`signature`).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

typedef struct {
    long g, o;
} Item;

typedef struct {
    uint64_t *keys; /* key + 1 (0: empty) */
    size_t cap, n;
    Item *work;
    size_t nwork, capwork;
} Closure;

static PyObject *str_waiting, *str_scan;

static int cl_init(Closure *c) {
    c->cap = 64;
    c->n = 0;
    c->keys = PyMem_Calloc(c->cap, sizeof(uint64_t));
    c->capwork = 32;
    c->nwork = 0;
    c->work = PyMem_Malloc(c->capwork * sizeof(Item));
    if (c->keys == NULL || c->work == NULL) {
        PyMem_Free(c->keys);
        PyMem_Free(c->work);
        c->keys = NULL;
        c->work = NULL;
        PyErr_NoMemory();
        return -1;
    }
    return 0;
}

static void cl_free(Closure *c) {
    PyMem_Free(c->keys);
    PyMem_Free(c->work);
}

/* The tuple (a, b), untracked by the cyclic collector: it holds two ints, which is what the collector
 * itself would find before untracking it; tracked, the thousands of items made per mask count towards
 * its next collection (which then walks every live Earley set). */
static PyObject *pair(long a, long b) {
    PyObject *t = PyTuple_New(2);
    if (t == NULL)
        return NULL;
    PyObject *x = PyLong_FromLong(a), *y = PyLong_FromLong(b);
    if (x == NULL || y == NULL) {
        Py_XDECREF(x);
        Py_XDECREF(y);
        Py_DECREF(t);
        return NULL;
    }
    PyTuple_SET_ITEM(t, 0, x);
    PyTuple_SET_ITEM(t, 1, y);
    PyObject_GC_UnTrack(t);
    return t;
}

static inline size_t slot_of(uint64_t k, size_t mask) {
    k ^= k >> 29;
    k *= 0xbf58476d1ce4e5b9ULL;
    k ^= k >> 32;
    return (size_t)k & mask;
}

static int cl_grow(Closure *c) {
    size_t cap = c->cap * 2;
    uint64_t *keys = PyMem_Calloc(cap, sizeof(uint64_t));
    if (keys == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    for (size_t i = 0; i < c->cap; i++) {
        uint64_t k = c->keys[i];
        if (k) {
            size_t s = slot_of(k, cap - 1);
            while (keys[s])
                s = (s + 1) & (cap - 1);
            keys[s] = k;
        }
    }
    PyMem_Free(c->keys);
    c->keys = keys;
    c->cap = cap;
    return 0;
}

/* Add (g, o) if new: to the hash, the Python set `items` and the work list. 1: added, 0: present, -1: error. */
static int cl_add(Closure *c, PyObject *items, long g, long o) {
    uint64_t k = (((uint64_t)(uint32_t)g << 32) | (uint32_t)o) + 1;
    size_t mask = c->cap - 1, s = slot_of(k, mask);
    while (c->keys[s]) {
        if (c->keys[s] == k)
            return 0;
        s = (s + 1) & mask;
    }
    c->keys[s] = k;
    c->n++;
    if (items != NULL) { /* NULL: a simulation's set, kept in C only */
        PyObject *t = pair(g, o);
        if (t == NULL)
            return -1;
        int rc = PySet_Add(items, t);
        Py_DECREF(t);
        if (rc < 0)
            return -1;
    }
    if (c->nwork == c->capwork) {
        size_t cap = c->capwork * 2;
        Item *w = PyMem_Realloc(c->work, cap * sizeof(Item));
        if (w == NULL) {
            PyErr_NoMemory();
            return -1;
        }
        c->work = w;
        c->capwork = cap;
    }
    c->work[c->nwork].g = g;
    c->work[c->nwork].o = o;
    c->nwork++;
    if (2 * c->n > c->cap && cl_grow(c) < 0)
        return -1;
    return 1;
}

static int pair_of(PyObject *t, long *a, long *b) {
    if (!PyTuple_Check(t) || PyTuple_GET_SIZE(t) != 2) {
        PyErr_SetString(PyExc_TypeError, "expected a pair");
        return -1;
    }
    *a = PyLong_AsLong(PyTuple_GET_ITEM(t, 0));
    *b = PyLong_AsLong(PyTuple_GET_ITEM(t, 1));
    if ((*a == -1 || *b == -1) && PyErr_Occurred())
        return -1;
    return 0;
}

typedef struct {
    PyObject *has_bytes, *accepting, *calls, *rule_of, *starts, *nullable, *enter;
    int entered; /* `enter` was called: the RTN's byte table may have been replaced */
} Tables;

static int parse_tables(PyObject *t, Tables *tb) {
    if (!PyArg_ParseTuple(t, "O!O!O!O!O!OO;tables", &PyList_Type, &tb->has_bytes, &PyList_Type,
                          &tb->accepting, &PyList_Type, &tb->calls, &PyList_Type, &tb->rule_of,
                          &PyList_Type, &tb->starts, &tb->nullable, &tb->enter))
        return -1;
    tb->entered = 0;
    if (!PyList_Check(tb->nullable) && !PyTuple_Check(tb->nullable)) {
        PyErr_SetString(PyExc_TypeError, "tables: nullable must be a list or tuple");
        return -1;
    }
    return 0;
}

/* list[i] of a list or tuple (read each time: a list may grow, and move, when `enter` builds a rule) */
static PyObject *list_at(PyObject *list, long i) {
    if (i < 0 || i >= Py_SIZE(list)) {
        PyErr_Format(PyExc_IndexError, "index %ld out of range", i);
        return NULL;
    }
    return PyList_Check(list) ? PyList_GET_ITEM(list, i) : PyTuple_GET_ITEM(list, i);
}

static int truth_at(PyObject *list, long i) {
    PyObject *v = list_at(list, i);
    if (v == NULL)
        return -1;
    return PyObject_IsTrue(v);
}

static int long_at(PyObject *list, long i, long *out) {
    PyObject *v = list_at(list, i);
    if (v == NULL)
        return -1;
    *out = PyLong_AsLong(v);
    return (*out == -1 && PyErr_Occurred()) ? -1 : 0;
}

/* waiting.setdefault(callee, []).append((nxt, o)) */
static int add_waiting(PyObject *waiting, PyObject *callee, long nxt, long o) {
    PyObject *lst = PyDict_GetItemWithError(waiting, callee);
    if (lst == NULL) {
        if (PyErr_Occurred())
            return -1;
        lst = PyList_New(0);
        if (lst == NULL)
            return -1;
        int rc = PyDict_SetItem(waiting, callee, lst);
        Py_DECREF(lst);
        if (rc < 0)
            return -1;
    }
    PyObject *t = pair(nxt, o);
    if (t == NULL)
        return -1;
    int rc = PyList_Append(lst, t);
    Py_DECREF(t);
    return rc;
}

/* Rule r's start state, the rule built first (`enter`, noted in tb->entered) if no walk entered it before;
 * -1 with an exception set on error. */
static long enter_rule(Tables *tb, long r) {
    long start;
    if (long_at(tb->starts, r, &start) < 0)
        return -1;
    if (start >= 0)
        return start;
    tb->entered = 1;
    PyObject *s = PyObject_CallFunction(tb->enter, "l", r);
    if (s == NULL)
        return -1;
    start = PyLong_AsLong(s);
    Py_DECREF(s);
    if (start < 0 && !PyErr_Occurred())
        PyErr_SetString(PyExc_ValueError, "enter gave no state");
    return start < 0 ? -1 : start;
}

/* One call edge (callee, nxt) of item (g, o): the callee predicted here, stepped over if nullable. */
static int predict(Closure *c, Tables *tb, PyObject *items, PyObject *waiting, PyObject *edge, long o,
                   long pos) {
    if (!PyTuple_Check(edge) || PyTuple_GET_SIZE(edge) != 2) {
        PyErr_SetString(PyExc_TypeError, "a call edge must be a pair");
        return -1;
    }
    PyObject *callee = PyTuple_GET_ITEM(edge, 0);
    long r = PyLong_AsLong(callee), nxt = PyLong_AsLong(PyTuple_GET_ITEM(edge, 1)), start;
    if ((r == -1 || nxt == -1) && PyErr_Occurred())
        return -1;
    if (add_waiting(waiting, callee, nxt, o) < 0)
        return -1;
    if ((start = enter_rule(tb, r)) < 0 || cl_add(c, items, start, pos) < 0)
        return -1;
    int nl = truth_at(tb->nullable, r);
    if (nl < 0)
        return -1;
    if (nl && cl_add(c, items, nxt, o) < 0)
        return -1;
    return 0;
}

/* The callers waiting at chart[o] for rule r advance. */
static int complete(Closure *c, PyObject *items, PyObject *chart, long o, long r) {
    PyObject *set = PyList_GET_ITEM(chart, o);
    PyObject *waiting = PyObject_GetAttr(set, str_waiting);
    if (waiting == NULL)
        return -1;
    PyObject *key = PyLong_FromLong(r);
    if (key == NULL) {
        Py_DECREF(waiting);
        return -1;
    }
    PyObject *lst = PyDict_GetItemWithError(waiting, key);
    Py_DECREF(key);
    int rc = 0;
    if (lst != NULL) {
        Py_INCREF(lst);
        Py_ssize_t n = PyList_GET_SIZE(lst);
        for (Py_ssize_t i = 0; i < n && rc == 0; i++) {
            long g2, o2;
            if (pair_of(PyList_GET_ITEM(lst, i), &g2, &o2) < 0 || cl_add(c, items, g2, o2) < 0)
                rc = -1;
        }
        Py_DECREF(lst);
    } else if (PyErr_Occurred())
        rc = -1;
    Py_DECREF(waiting);
    return rc;
}

/* A finished set's containers leave the cyclic collector: they hold only ints and pairs of ints (the
 * waiting dict: int keys, lists of pairs) and are never changed again, so they cannot be part of a
 * cycle; tracked, every full collection walks every Earley set of every live chart. */
static void untrack_set(PyObject *items, PyObject *scan, PyObject *waiting) {
    PyObject *key, *value;
    Py_ssize_t pos = 0;
    while (PyDict_Next(waiting, &pos, &key, &value))
        if (PyObject_GC_IsTracked(value))
            PyObject_GC_UnTrack(value);
    PyObject_GC_UnTrack(waiting);
    PyObject_GC_UnTrack(scan);
    PyObject_GC_UnTrack(items);
}

/* Close the set at position len(chart) from the seeds already added to `c` (and `items`). */
static PyObject *run_closure(Closure *c, Tables *tb, PyObject *chart, PyObject *items) {
    long pos = (long)PyList_GET_SIZE(chart);
    int accept = 0;
    PyObject *scan = PyList_New(0), *waiting = PyDict_New();
    if (scan == NULL || waiting == NULL)
        goto fail;
    while (c->nwork) {
        Item it = c->work[--c->nwork];
        int hb = truth_at(tb->has_bytes, it.g);
        if (hb < 0)
            goto fail;
        if (hb) {
            PyObject *t = pair(it.g, it.o);
            if (t == NULL)
                goto fail;
            int rc = PyList_Append(scan, t);
            Py_DECREF(t);
            if (rc < 0)
                goto fail;
        }
        PyObject *edges = list_at(tb->calls, it.g);
        if (edges == NULL)
            goto fail;
        Py_INCREF(edges);
        Py_ssize_t ne = PyTuple_Check(edges) ? PyTuple_GET_SIZE(edges) : -1;
        if (ne < 0) {
            Py_DECREF(edges);
            PyErr_SetString(PyExc_TypeError, "calls[g] must be a tuple");
            goto fail;
        }
        for (Py_ssize_t i = 0; i < ne; i++) {
            if (predict(c, tb, items, waiting, PyTuple_GET_ITEM(edges, i), it.o, pos) < 0) {
                Py_DECREF(edges);
                goto fail;
            }
        }
        Py_DECREF(edges);
        int acc = truth_at(tb->accepting, it.g);
        if (acc < 0)
            goto fail;
        if (acc) {
            long r;
            if (long_at(tb->rule_of, it.g, &r) < 0)
                goto fail;
            if (r == 0 && it.o == 0)
                accept = 1;
            if (it.o == pos)
                continue; /* an empty completion: the caller already stepped over the nullable rule */
            if (it.o < 0 || it.o > pos) {
                PyErr_SetString(PyExc_IndexError, "origin out of the chart");
                goto fail;
            }
            if (complete(c, items, chart, it.o, r) < 0)
                goto fail;
        }
    }
    untrack_set(items, scan, waiting);
    return Py_BuildValue("(NNNO)", items, scan, waiting, accept ? Py_True : Py_False);
fail:
    Py_XDECREF(scan);
    Py_XDECREF(waiting);
    Py_DECREF(items);
    return NULL;
}

/* The set `out` (items, scan, waiting, accept) as an instance of `cls` (an ESet), left out of the cyclic
 * collector as its containers are (untrack_set): it holds them, its mask arrays and tensor, and its
 * contexts (ints), none of which can refer back to it; tracked, every set of every live chart is walked
 * by each collection of its generation (most of a young collection's objects). `cls` NULL: `out`. */
static PyObject *as_set(PyObject *out, PyObject *cls) {
    if (out == NULL || cls == NULL || out == Py_None)
        return out;
    PyObject *obj = PyObject_Call(cls, out, NULL);
    Py_DECREF(out);
    if (obj != NULL && PyObject_IS_GC(obj) && PyObject_GC_IsTracked(obj))
        PyObject_GC_UnTrack(obj);
    return obj;
}

/* close(chart, seeds, tables): the set after `chart` closed from the seed items (a list of pairs). */
static PyObject *earley_close(PyObject *module, PyObject *args) {
    PyObject *chart, *seeds, *tables, *cls = NULL;
    Tables tb;
    if (!PyArg_ParseTuple(args, "O!O!O|O", &PyList_Type, &chart, &PyList_Type, &seeds, &tables, &cls))
        return NULL;
    if (parse_tables(tables, &tb) < 0)
        return NULL;
    Closure c;
    if (cl_init(&c) < 0)
        return NULL;
    PyObject *items = PySet_New(NULL);
    if (items == NULL) {
        cl_free(&c);
        return NULL;
    }
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(seeds); i++) {
        long g, o;
        if (pair_of(PyList_GET_ITEM(seeds, i), &g, &o) < 0 || cl_add(&c, items, g, o) < 0) {
            Py_DECREF(items);
            cl_free(&c);
            return NULL;
        }
    }
    /* The work list pops from the end: the Python version adds all seeds first, then pops, as here. */
    PyObject *out = run_closure(&c, &tb, chart, items);
    cl_free(&c);
    return as_set(out, cls);
}

/* step(chart, byte, flat, tables): the set after reading `byte` at the end of `chart`, or None. */
static PyObject *earley_step(PyObject *module, PyObject *args) {
    PyObject *chart, *flat, *tables, *cls = NULL;
    int byte;
    Tables tb;
    if (!PyArg_ParseTuple(args, "O!iOO|O", &PyList_Type, &chart, &byte, &flat, &tables, &cls))
        return NULL;
    if (byte < 0 || byte > 255) {
        PyErr_SetString(PyExc_ValueError, "byte out of range");
        return NULL;
    }
    if (parse_tables(tables, &tb) < 0)
        return NULL;
    Py_ssize_t n = PyList_GET_SIZE(chart);
    if (n == 0) {
        PyErr_SetString(PyExc_ValueError, "empty chart");
        return NULL;
    }
    PyObject *scan = PyObject_GetAttr(PyList_GET_ITEM(chart, n - 1), str_scan);
    if (scan == NULL)
        return NULL;
    if (!PyList_Check(scan)) {
        Py_DECREF(scan);
        PyErr_SetString(PyExc_TypeError, "scan must be a list");
        return NULL;
    }
    Py_buffer tab;
    if (PyObject_GetBuffer(flat, &tab, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT) < 0) {
        Py_DECREF(scan);
        return NULL;
    }
    if (tab.itemsize != 4) {
        PyBuffer_Release(&tab);
        Py_DECREF(scan);
        PyErr_SetString(PyExc_TypeError, "flat must hold int32");
        return NULL;
    }
    const int32_t *tv = (const int32_t *)tab.buf;
    Py_ssize_t tn = tab.len / 4;
    Closure c = {0};
    PyObject *items = NULL;
    int seeded = 0;
    if (cl_init(&c) < 0)
        goto fail;
    items = PySet_New(NULL);
    if (items == NULL)
        goto fail;
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(scan); i++) {
        long g, o;
        if (pair_of(PyList_GET_ITEM(scan, i), &g, &o) < 0)
            goto fail;
        Py_ssize_t at = ((Py_ssize_t)g << 8) | byte;
        if (g < 0 || at >= tn) {
            PyErr_SetString(PyExc_IndexError, "state out of the byte table");
            goto fail;
        }
        long nxt = tv[at];
        if (nxt >= 0) {
            seeded = 1;
            if (cl_add(&c, items, nxt, o) < 0)
                goto fail;
        }
    }
    PyBuffer_Release(&tab);
    Py_DECREF(scan);
    if (!seeded) {
        Py_DECREF(items);
        cl_free(&c);
        Py_RETURN_NONE;
    }
    PyObject *out = run_closure(&c, &tb, chart, items);
    cl_free(&c);
    return as_set(out, cls);
fail:
    PyBuffer_Release(&tab);
    Py_DECREF(scan);
    Py_XDECREF(items);
    if (c.keys != NULL || c.work != NULL)
        cl_free(&c);
    return NULL;
}

/* ---- The simulation of uncertain tokens (cfg_matcher's `_simulate`), its sets kept in C ----
 *
 * The sets it builds past the chart are never seen outside (only whether a token's bytes are taken), so
 * they are plain arrays: their scanning items, their waiting callers (sorted by callee, stably, for the
 * completions that look back into them) and their distinct scanning states. A completion that reaches
 * back into the chart reads the Python set's `waiting` there. Same order of work as the Python closure,
 * so `enter` builds the same rules in the same order. */

typedef struct {
    long callee, nxt, o, idx;
} Wait;

typedef struct {
    Item *scan;
    size_t nscan, capscan;
    Wait *wait;
    size_t nwait, capwait;
    long *heads;
    size_t nheads, capheads;
    signed char viable[256]; /* per byte: some head takes it (1), none (0), not asked yet (-1) */
} NSet;

static int grow(void **p, size_t *cap, size_t need, size_t elem) {
    if (need <= *cap)
        return 0;
    size_t c = *cap ? *cap : 16;
    while (c < need)
        c *= 2;
    void *q = PyMem_Realloc(*p, c * elem);
    if (q == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    *p = q;
    *cap = c;
    return 0;
}

typedef struct {
    PyObject *chart, *rtn;
    long base;  /* len(chart): sets[k] is at position base + k */
    NSet *sets; /* allocated up to capsets (zeroed), reused across tokens */
    size_t capsets;
    Py_buffer flat;
    int have_flat;
    const int32_t *tv;
    Py_ssize_t tn;
} Sim;

static int sim_flat(Sim *sm) {
    if (sm->have_flat) {
        PyBuffer_Release(&sm->flat);
        sm->have_flat = 0;
    }
    PyObject *flat = PyObject_GetAttrString(sm->rtn, "flat");
    if (flat == NULL)
        return -1;
    int rc = PyObject_GetBuffer(flat, &sm->flat, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT);
    Py_DECREF(flat);
    if (rc < 0)
        return -1;
    sm->have_flat = 1;
    if (sm->flat.itemsize != 4) {
        PyErr_SetString(PyExc_TypeError, "flat must hold int32");
        return -1;
    }
    sm->tv = (const int32_t *)sm->flat.buf;
    sm->tn = sm->flat.len / 4;
    return 0;
}

/* The byte table's edge from state g on `byte` into *out (-1: none). A state past the table: a rule was
 * built since it was read (by `enter` here, or on another thread while `enter` waited for the RTN's lock),
 * so the table is read again, as the Python loop reads `rtn.flat`. 0, or -1 on error. */
static inline int edge(Sim *sm, long g, int byte, long *out) {
    Py_ssize_t at = ((Py_ssize_t)g << 8) | byte;
    if (at >= sm->tn && g >= 0 && sim_flat(sm) < 0)
        return -1;
    if (g < 0 || at >= sm->tn) {
        PyErr_SetString(PyExc_IndexError, "state out of the byte table");
        return -1;
    }
    *out = sm->tv[at];
    return 0;
}

static int wait_cmp(const void *a, const void *b) {
    const Wait *x = a, *y = b;
    if (x->callee != y->callee)
        return x->callee < y->callee ? -1 : 1;
    return x->idx < y->idx ? -1 : x->idx > y->idx;
}

static int long_cmp(const void *a, const void *b) {
    long x = *(const long *)a, y = *(const long *)b;
    return x < y ? -1 : x > y;
}

/* The callers waiting for rule r in the C set `src` advance. */
static int complete_native(Closure *c, NSet *src, long r) {
    size_t lo = 0, hi = src->nwait;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (src->wait[mid].callee < r)
            lo = mid + 1;
        else
            hi = mid;
    }
    for (size_t i = lo; i < src->nwait && src->wait[i].callee == r; i++)
        if (cl_add(c, NULL, src->wait[i].nxt, src->wait[i].o) < 0)
            return -1;
    return 0;
}

/* run_closure for a simulation set: into `out`, at position pos (> every set of `sm` it reads). */
static int sim_close(Closure *c, Tables *tb, Sim *sm, NSet *out, long pos) {
    out->nscan = out->nwait = out->nheads = 0;
    memset(out->viable, -1, sizeof out->viable);
    while (c->nwork) {
        Item it = c->work[--c->nwork];
        int hb = truth_at(tb->has_bytes, it.g);
        if (hb < 0)
            return -1;
        if (hb) {
            if (grow((void **)&out->scan, &out->capscan, out->nscan + 1, sizeof(Item)) < 0)
                return -1;
            out->scan[out->nscan++] = it;
        }
        PyObject *edges = list_at(tb->calls, it.g);
        if (edges == NULL)
            return -1;
        if (!PyTuple_Check(edges)) {
            PyErr_SetString(PyExc_TypeError, "calls[g] must be a tuple");
            return -1;
        }
        Py_INCREF(edges);
        for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(edges); i++) {
            long r, nxt, start;
            int nl;
            if (pair_of(PyTuple_GET_ITEM(edges, i), &r, &nxt) < 0)
                goto edge_fail;
            if (grow((void **)&out->wait, &out->capwait, out->nwait + 1, sizeof(Wait)) < 0)
                goto edge_fail;
            out->wait[out->nwait] = (Wait){r, nxt, it.o, (long)out->nwait};
            out->nwait++;
            if ((start = enter_rule(tb, r)) < 0 || cl_add(c, NULL, start, pos) < 0)
                goto edge_fail;
            nl = truth_at(tb->nullable, r);
            if (nl < 0 || (nl && cl_add(c, NULL, nxt, it.o) < 0))
                goto edge_fail;
            continue;
        edge_fail:
            Py_DECREF(edges);
            return -1;
        }
        Py_DECREF(edges);
        int acc = truth_at(tb->accepting, it.g);
        if (acc < 0)
            return -1;
        if (acc) {
            long r;
            if (long_at(tb->rule_of, it.g, &r) < 0)
                return -1;
            if (it.o == pos)
                continue; /* an empty completion: the caller already stepped over the nullable rule */
            if (it.o < 0 || it.o > pos) {
                PyErr_SetString(PyExc_IndexError, "origin out of the chart");
                return -1;
            }
            int rc = it.o < sm->base ? complete(c, NULL, sm->chart, it.o, r)
                                     : complete_native(c, &sm->sets[it.o - sm->base], r);
            if (rc < 0)
                return -1;
        }
    }
    if (out->nwait > 1)
        qsort(out->wait, out->nwait, sizeof(Wait), wait_cmp);
    if (grow((void **)&out->heads, &out->capheads, out->nscan, sizeof(long)) < 0)
        return -1;
    for (size_t i = 0; i < out->nscan; i++)
        out->heads[i] = out->scan[i].g;
    size_t n = 0;
    if (out->nscan) {
        qsort(out->heads, out->nscan, sizeof(long), long_cmp);
        for (size_t i = 0; i < out->nscan; i++)
            if (n == 0 || out->heads[i] != out->heads[n - 1])
                out->heads[n++] = out->heads[i];
    }
    out->nheads = n;
    return 0;
}

/* A closure `c` made and seeded with the items `scan` step to on `byte`: 1, or 0 (none: `c` freed), or -1
 * (an error: `c` freed). */
static int sim_seed(Sim *sm, Closure *c, const Item *scan, size_t nscan, int byte) {
    if (cl_init(c) < 0)
        return -1;
    int seeded = 0;
    for (size_t i = 0; i < nscan; i++) {
        long nxt;
        if (edge(sm, scan[i].g, byte, &nxt) < 0)
            goto fail;
        if (nxt >= 0) {
            seeded = 1;
            if (cl_add(c, NULL, nxt, scan[i].o) < 0)
                goto fail;
        }
    }
    if (!seeded)
        cl_free(c);
    return seeded;
fail:
    cl_free(c);
    return -1;
}

/* The set after `byte` from the items `scan` into sets[k] (position base + k). 1: built, 0: dead. */
static int sim_step(Sim *sm, Tables *tb, const Item *scan, size_t nscan, int byte, size_t k) {
    if (k >= sm->capsets) {
        size_t old = sm->capsets;
        if (grow((void **)&sm->sets, &sm->capsets, k + 1, sizeof(NSet)) < 0)
            return -1;
        memset(sm->sets + old, 0, (sm->capsets - old) * sizeof(NSet)); /* no arrays yet */
    }
    Closure c;
    int seeded = sim_seed(sm, &c, scan, nscan, byte);
    if (seeded <= 0)
        return seeded;
    tb->entered = 0;
    int rc = sim_close(&c, tb, sm, &sm->sets[k], sm->base + (long)k);
    cl_free(&c);
    if (rc < 0)
        return -1;
    if (tb->entered && sim_flat(sm) < 0)
        return -1;
    return 1;
}

/* Recognizer.probe (earley.py) on the simulation's sets: whether `final` can follow `byte` after `scan`
 * (the set at position pos - 1), the set in between closed only as far as needed and not kept: 0 when no
 * item takes `byte`, 1 when some item takes `final`, 2 when none does, -1 on error. A rule predicted there is
 * built only when `first(r)` (ExactFirst) is None; otherwise `final` is taken there when it is one of its
 * first bytes. Items in `_close`'s order, as the Python probe visits them (the same rules built). */
static int sim_probe(Sim *sm, Tables *tb, const Item *scan, size_t nscan, int byte, int final, long pos,
                     PyObject *first) {
    Closure c;
    int out = sim_seed(sm, &c, scan, nscan, byte);
    if (out <= 0)
        return out;
    out = 2;
    tb->entered = 0;
    while (c.nwork && out == 2) {
        Item it = c.work[--c.nwork];
        int hb = truth_at(tb->has_bytes, it.g);
        if (hb < 0)
            goto fail;
        if (hb) {
            long nxt;
            if (edge(sm, it.g, final, &nxt) < 0)
                goto fail;
            if (nxt >= 0) {
                out = 1;
                break;
            }
        }
        PyObject *edges = list_at(tb->calls, it.g);
        if (edges == NULL)
            goto fail;
        if (!PyTuple_Check(edges)) {
            PyErr_SetString(PyExc_TypeError, "calls[g] must be a tuple");
            goto fail;
        }
        Py_INCREF(edges);
        for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(edges) && out == 2; i++) {
            long r, nxt, start;
            int nl;
            if (pair_of(PyTuple_GET_ITEM(edges, i), &r, &nxt) < 0 || long_at(tb->starts, r, &start) < 0)
                goto edge_fail;
            if (start < 0) {
                PyObject *bits = PyObject_CallFunction(first, "l", r);
                if (bits == NULL)
                    goto edge_fail;
                if (bits == Py_None) {
                    Py_DECREF(bits);
                    /* the table is read below, and the build may have moved it (its new rows below the old
                     * capacity are in the new buffer only): read it again now */
                    if ((start = enter_rule(tb, r)) < 0 || sim_flat(sm) < 0)
                        goto edge_fail;
                } else {
                    if (!PyBytes_Check(bits) || PyBytes_GET_SIZE(bits) != 32) {
                        Py_DECREF(bits);
                        PyErr_SetString(PyExc_TypeError, "first(r) must be 32 bytes or None");
                        goto edge_fail;
                    }
                    int hit = (((const unsigned char *)PyBytes_AS_STRING(bits))[final >> 3] >> (final & 7)) & 1;
                    Py_DECREF(bits);
                    if (hit) {
                        out = 1;
                        break;
                    }
                }
            }
            if (start >= 0 && cl_add(&c, NULL, start, pos) < 0)
                goto edge_fail;
            nl = truth_at(tb->nullable, r);
            if (nl < 0 || (nl && cl_add(&c, NULL, nxt, it.o) < 0))
                goto edge_fail;
            continue;
        edge_fail:
            Py_DECREF(edges);
            goto fail;
        }
        Py_DECREF(edges);
        if (out != 2)
            break;
        int acc = truth_at(tb->accepting, it.g);
        if (acc < 0)
            goto fail;
        if (acc && it.o != pos) { /* (an empty completion: the caller stepped over the nullable rule) */
            long r;
            if (long_at(tb->rule_of, it.g, &r) < 0)
                goto fail;
            if (it.o < 0 || it.o > pos) {
                PyErr_SetString(PyExc_IndexError, "origin out of the chart");
                goto fail;
            }
            int rc = it.o < sm->base ? complete(&c, NULL, sm->chart, it.o, r)
                                     : complete_native(&c, &sm->sets[it.o - sm->base], r);
            if (rc < 0)
                goto fail;
        }
    }
    cl_free(&c);
    if (tb->entered && sim_flat(sm) < 0)
        return -1;
    return out;
fail:
    cl_free(&c);
    return -1;
}

/* Some state of `heads` walks w[d:] through the byte table and ends live (cfg_walk.walks_within). */
static int walks(Sim *sm, const long *heads, size_t nh, const unsigned char *w, Py_ssize_t len, Py_ssize_t d) {
    for (size_t i = 0; i < nh; i++) {
        long g = heads[i];
        Py_ssize_t j = d;
        for (; j < len; j++) {
            if (edge(sm, g, w[j], &g) < 0)
                return -1;
            if (g < 0)
                break;
        }
        if (j == len)
            return 1;
    }
    return 0;
}

/* Whether some state of `heads` has an edge on `byte`. */
static int viable(Sim *sm, const long *heads, size_t nh, int byte) {
    for (size_t i = 0; i < nh; i++) {
        long nxt;
        if (edge(sm, heads[i], byte, &nxt) < 0)
            return -1;
        if (nxt >= 0)
            return 1;
    }
    return 0;
}

static void sim_free(Sim *sm) {
    for (size_t i = 0; i < sm->capsets; i++) {
        PyMem_Free(sm->sets[i].scan);
        PyMem_Free(sm->sets[i].wait);
        PyMem_Free(sm->sets[i].heads);
    }
    PyMem_Free(sm->sets);
    if (sm->have_flat)
        PyBuffer_Release(&sm->flat);
}

static int i64_cmp(const void *a, const void *b) {
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

/* A token's rest to simulate (see earley_simulate): its bytes (borrowed from `words`) and the token's index
 * in `ranks`. */
typedef struct {
    const unsigned char *w;
    Py_ssize_t len;
    Py_ssize_t idx;
} Rest;

static int item_cmp(const void *a, const void *b) {
    const Item *x = a, *y = b;
    if (x->g != y->g)
        return x->g < y->g ? -1 : 1;
    return x->o < y->o ? -1 : x->o > y->o;
}

/* A single scanning state's walk of its uncertain tokens (earley_simulate), kept per state: `taken` the
 * indices of the tokens taken within it, then the groups (state `t` before the byte that closes; -1: the
 * chart's own set), each a run of `rests` sorted by their bytes, which are copied one after the other into
 * `bytes` (a mask reads them in order; in the vocabulary's bytes they lie all over it, a cache miss each). */
typedef struct {
    long t;
    size_t lo, hi;
} Group;

typedef struct {
    Py_ssize_t n;
    int64_t *ranks; /* the ranks it was made for (a walk is taken again only for the same) */
    uint32_t *taken;
    size_t ntaken;
    Group *groups;
    size_t ngroups;
    Rest *rests;
    size_t nrests;
    unsigned char *bytes;
    uint16_t *lcps; /* each rest's common prefix with the one before it in its group (0 for the first) */
} Walked;

static void walked_free(Walked *wk) {
    if (wk == NULL)
        return;
    PyMem_Free(wk->ranks);
    PyMem_Free(wk->taken);
    PyMem_Free(wk->groups);
    PyMem_Free(wk->rests);
    PyMem_Free(wk->bytes);
    PyMem_Free(wk->lcps);
    PyMem_Free(wk);
}

static void walked_capsule_free(PyObject *cap) {
    walked_free((Walked *)PyCapsule_GetPointer(cap, "decc.walked"));
}

static int push_idx(Py_ssize_t **v, size_t *n, size_t *cap, Py_ssize_t i) {
    if (grow((void **)v, cap, *n + 1, sizeof(Py_ssize_t)) < 0)
        return -1;
    (*v)[(*n)++] = i;
    return 0;
}

/* Whether state g closes to something: accepting (a completion) or calling (a prediction). */
static int closes(Tables *tb, long g) {
    int acc = truth_at(tb->accepting, g);
    if (acc != 0)
        return acc;
    PyObject *edges = list_at(tb->calls, g);
    if (edges == NULL)
        return -1;
    if (!PyTuple_Check(edges)) {
        PyErr_SetString(PyExc_TypeError, "calls[g] must be a tuple");
        return -1;
    }
    return PyTuple_GET_SIZE(edges) > 0;
}

#define SHARED_STEP 4 /* cfg_matcher's _SHARED_STEP */

/* cfg_matcher's `_simulate_rests`: the sorted rests `rs` simulated from the items `scan0` (their distinct
 * states `heads0`), the indices of the tokens taken appended to `ok`. `within0`: a walk within is tried at
 * the first byte. */
static int sim_rests(Sim *sm, Tables *tb, const Item *scan0, size_t nscan0, const long *heads0, size_t nheads0,
                     int within0, const Rest *rs, const uint16_t *lcps, size_t nr, PyObject *first, Py_ssize_t **ok,
                     size_t *nok, size_t *capok) {
    size_t nsets = 0; /* sets built for the current prefix: heads[d] for d <= nsets */
    Py_ssize_t dead_at = (Py_ssize_t)1 << 30;
    const unsigned char *prev = NULL;
    Py_ssize_t prevlen = 0;
    int prev_ok = 0;
    signed char viable0[256]; /* `viable` of the items the rests start from */
    memset(viable0, -1, sizeof viable0);
    for (size_t i = 0; i < nr; i++) {
        const unsigned char *w = rs[i].w;
        Py_ssize_t len = rs[i].len, lcp = 0;
        if (prev != NULL) { /* (known for a kept walk's rests, up to 65535: then compared) */
            if (lcps != NULL && lcps[i] < 65535) {
                lcp = lcps[i];
            } else {
                Py_ssize_t m = prevlen < len ? prevlen : len;
                while (lcp < m && prev[lcp] == w[lcp])
                    lcp++;
            }
            if (lcp == len && len == prevlen) {
                if (prev_ok && push_idx(ok, nok, capok, rs[i].idx) < 0) /* the same rest: the same answer */
                    return -1;
                continue;
            }
        }
        prev = w;
        prevlen = len;
        prev_ok = 0;
        if (dead_at <= lcp)
            continue; /* a shared prefix already died */
        Py_ssize_t d = lcp < (Py_ssize_t)nsets ? lcp : (Py_ssize_t)nsets;
        nsets = (size_t)d;
        dead_at = (Py_ssize_t)1 << 30;
        Py_ssize_t last = len - 1;
        for (;;) {
            const long *h = d ? sm->sets[d - 1].heads : heads0;
            size_t nh = d ? sm->sets[d - 1].nheads : nheads0;
            /* a byte no head takes: the rest dies here, whatever follows (a walk within, a step and a probe
             * all start from the heads' transitions on it); asked once per set and byte, where most rests
             * after a string's closing quote die */
            signed char *vb = d ? sm->sets[d - 1].viable : viable0;
            if (vb[w[d]] < 0) {
                int v = viable(sm, h, nh, w[d]);
                if (v < 0)
                    return -1;
                vb[w[d]] = (signed char)v;
            }
            if (!vb[w[d]]) {
                dead_at = d + 1;
                break;
            }
            if (d || within0 || d == last) {
                int found = walks(sm, h, nh, w, len, d);
                if (found < 0)
                    return -1;
                if (found) {
                    prev_ok = 1;
                    break;
                }
            }
            if (d == last) {
                dead_at = last + 1;
                break;
            }
            const Item *from = d ? sm->sets[d - 1].scan : scan0;
            size_t nfrom = d ? sm->sets[d - 1].nscan : nscan0;
            /* one byte left after this one: no set to keep (the probe), unless the next SHARED_STEP rests go
             * on past the same byte (then the set is built once for them all: cfg_matcher's `_goes_on`) */
            size_t j = i + SHARED_STEP;
            int goes_on = j < nr && rs[j].len > d + 1 && memcmp(rs[j].w, w, (size_t)d + 1) == 0;
            if (d == last - 1 && first != Py_None && !goes_on) {
                int got = sim_probe(sm, tb, from, nfrom, w[d], w[last], sm->base + (long)d, first);
                if (got < 0)
                    return -1;
                if (got == 1)
                    prev_ok = 1;
                else
                    dead_at = got == 0 ? d + 1 : last + 1;
                break;
            }
            int live = sim_step(sm, tb, from, nfrom, w[d], (size_t)d);
            if (live < 0)
                return -1;
            if (!live) {
                dead_at = d + 1;
                break;
            }
            nsets = (size_t)d + 1;
            d++;
        }
        if (prev_ok && push_idx(ok, nok, capok, rs[i].idx) < 0)
            return -1;
    }
    return 0;
}

/* The bytes of ranks[i] (checked against the words). */
typedef struct {
    PyObject *ranks, *words;
    const int64_t *off;
    Py_ssize_t nwords;
    int joined;
} Words;

static int token_at(const Words *ws, Py_ssize_t i, const unsigned char **w, Py_ssize_t *len, int64_t *rank) {
    Py_ssize_t r = PyLong_AsSsize_t(PyList_GET_ITEM(ws->ranks, i));
    if (r == -1 && PyErr_Occurred())
        return -1;
    if (r < 0 || r >= ws->nwords || (!ws->joined && !PyBytes_Check(PyTuple_GET_ITEM(ws->words, r))) ||
        (ws->joined &&
         (ws->off[r] > ws->off[r + 1] || ws->off[r] < 0 || ws->off[r + 1] > PyBytes_GET_SIZE(ws->words)))) {
        PyErr_SetString(PyExc_IndexError, "rank out of the words");
        return -1;
    }
    if (ws->joined) {
        *w = (const unsigned char *)PyBytes_AS_STRING(ws->words) + ws->off[r];
        *len = (Py_ssize_t)(ws->off[r + 1] - ws->off[r]);
    } else {
        PyObject *wo = PyTuple_GET_ITEM(ws->words, r);
        *w = (const unsigned char *)PyBytes_AS_STRING(wo);
        *len = PyBytes_GET_SIZE(wo);
    }
    if (*len == 0) {
        PyErr_SetString(PyExc_ValueError, "empty token");
        return -1;
    }
    *rank = r;
    return 0;
}

/* Joined words: `offsets` (int64, one more than the words, within them) read into ws (held in *ob). */
static int open_offsets(Words *ws, PyObject *offsets, Py_buffer *ob) {
    if (PyObject_GetBuffer(offsets, ob, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT) < 0)
        return -1;
    ws->off = (const int64_t *)ob->buf;
    ws->nwords = ob->len / 8 - 1;
    if (ob->itemsize != 8 || ws->nwords < 0 || ws->off[0] < 0 || ws->off[ws->nwords] > PyBytes_GET_SIZE(ws->words)) {
        PyBuffer_Release(ob);
        PyErr_SetString(PyExc_ValueError, "offsets must be int64 within the words");
        return -1;
    }
    return 0;
}

/* Entries sorted by group, then rest bytes, then index: a merge sort (stable, no context in a global). */
typedef struct {
    long t;
    uint64_t head; /* the rest's first 8 bytes, big-endian, zero-padded: most rests differ there */
    const unsigned char *w;
    Py_ssize_t len;
    uint32_t idx, j;
} Key;

static uint64_t head_of(const unsigned char *w, Py_ssize_t len) {
    uint64_t h = 0;
    for (Py_ssize_t i = 0; i < 8; i++)
        h = (h << 8) | (i < len ? w[i] : 0);
    return h;
}

/* By group, then the rest's bytes (its head, then the bytes past it where both have more; else the
 * shorter, a prefix of the other up to the padding, first), then the index: cfg_matcher's `rests.sort()`. */
static int key_cmp(const Key *x, const Key *y) {
    if (x->t != y->t)
        return x->t < y->t ? -1 : 1;
    if (x->head != y->head)
        return x->head < y->head ? -1 : 1;
    if (x->len > 8 && y->len > 8) {
        Py_ssize_t m = (x->len < y->len ? x->len : y->len) - 8;
        int c = memcmp(x->w + 8, y->w + 8, (size_t)m);
        if (c)
            return c;
    }
    if (x->len != y->len)
        return x->len < y->len ? -1 : 1;
    return x->idx < y->idx ? -1 : x->idx > y->idx;
}

static void key_sort(Key *v, Key *tmp, size_t n) {
    if (n < 2)
        return;
    size_t h = n / 2;
    key_sort(v, tmp, h);
    key_sort(v + h, tmp, n - h);
    if (key_cmp(&v[h - 1], &v[h]) <= 0)
        return;
    size_t i = 0, j = h, k = 0;
    while (i < h && j < n)
        tmp[k++] = key_cmp(&v[j], &v[i]) < 0 ? v[j++] : v[i++];
    while (i < h)
        tmp[k++] = v[i++];
    memcpy(v, tmp, k * sizeof(Key)); /* (the rest of the right half is in place) */
}

/* The walk of every token of `ranks` from the single scanning state h while its states close to nothing:
 * taken (its last byte reached), dead, or a rest from the state before the byte that leads into one that
 * closes (cfg_matcher's `_simulate`). */
static Walked *walk_tokens(Sim *sm, Tables *tb, const Words *ws, Py_ssize_t n, long h) {
    Walked *wk = PyMem_Calloc(1, sizeof(Walked));
    Key *keys = NULL, *tmp = NULL;
    size_t nkeys = 0, capkeys = 0, captaken = 0;
    if (wk == NULL) {
        PyErr_NoMemory();
        return NULL;
    }
    wk->n = n;
    wk->ranks = PyMem_Malloc(((size_t)n + 1) * sizeof(int64_t));
    if (wk->ranks == NULL) {
        PyErr_NoMemory();
        goto fail;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        const unsigned char *w;
        Py_ssize_t len;
        int64_t rank;
        if (token_at(ws, i, &w, &len, &rank) < 0)
            goto fail;
        wk->ranks[i] = rank;
        long st = h;
        for (Py_ssize_t j = 0; j < len; j++) {
            long nx;
            if (edge(sm, st, w[j], &nx) < 0)
                goto fail;
            if (nx < 0)
                break; /* dead */
            if (j == len - 1) { /* its last byte, only scanned */
                if (grow((void **)&wk->taken, &captaken, wk->ntaken + 1, sizeof(uint32_t)) < 0)
                    goto fail;
                wk->taken[wk->ntaken++] = (uint32_t)i;
                break;
            }
            int c = closes(tb, nx);
            if (c < 0)
                goto fail;
            if (c) {
                if (grow((void **)&keys, &capkeys, nkeys + 1, sizeof(Key)) < 0)
                    goto fail;
                /* back at h (a string's body): the chart's own group (cfg_matcher's `_simulate_py`) */
                long t = j && st != h ? st : -1;
                keys[nkeys++] = (Key){t, head_of(w + j, len - j), w + j, len - j, (uint32_t)i, (uint32_t)j};
                break;
            }
            st = nx;
        }
    }
    size_t nbytes = 0;
    for (size_t k = 0; k < nkeys; k++)
        nbytes += (size_t)keys[k].len;
    tmp = PyMem_Malloc((nkeys + 1) * sizeof(Key));
    wk->rests = PyMem_Malloc((nkeys + 1) * sizeof(Rest));
    wk->groups = PyMem_Malloc((nkeys + 1) * sizeof(Group));
    wk->bytes = PyMem_Malloc(nbytes + 1);
    wk->lcps = PyMem_Malloc((nkeys + 1) * sizeof(uint16_t));
    if (tmp == NULL || wk->rests == NULL || wk->groups == NULL || wk->bytes == NULL || wk->lcps == NULL) {
        PyErr_NoMemory();
        goto fail;
    }
    key_sort(keys, tmp, nkeys);
    nbytes = 0;
    for (size_t k = 0; k < nkeys; k++) {
        memcpy(wk->bytes + nbytes, keys[k].w, (size_t)keys[k].len);
        wk->rests[k] = (Rest){wk->bytes + nbytes, keys[k].len, (Py_ssize_t)keys[k].idx};
        nbytes += (size_t)keys[k].len;
        Py_ssize_t lcp = 0;
        if (k == 0 || keys[k].t != keys[k - 1].t) {
            wk->groups[wk->ngroups++] = (Group){keys[k].t, k, k};
        } else {
            Py_ssize_t m = keys[k].len < keys[k - 1].len ? keys[k].len : keys[k - 1].len;
            while (lcp < m && lcp < 65535 && keys[k].w[lcp] == keys[k - 1].w[lcp])
                lcp++;
        }
        wk->lcps[k] = (uint16_t)lcp;
        wk->groups[wk->ngroups - 1].hi = k + 1;
    }
    wk->nrests = nkeys;
    PyMem_Free(keys);
    PyMem_Free(tmp);
    return wk;
fail:
    PyMem_Free(keys);
    PyMem_Free(tmp);
    walked_free(wk);
    return NULL;
}

/* `wk` kept in `memo` under `key` as a capsule (which frees it): a new reference to the capsule, or NULL
 * (wk freed). */
static PyObject *keep_walk(PyObject *memo, PyObject *key, Walked *wk) {
    PyObject *cap = PyCapsule_New(wk, "decc.walked", walked_capsule_free);
    if (cap == NULL) {
        walked_free(wk);
        return NULL;
    }
    if (PyDict_SetItem(memo, key, cap) < 0)
        Py_CLEAR(cap);
    return cap;
}

/* walk(ranks, words, offsets, rtn, tables, state, memo): the walk of `ranks` (state's uncertain tokens) from
 * `state` that `simulate` keeps in `memo` (made ahead of the masks: cfg_rows' batch). */
static PyObject *earley_walk(PyObject *module, PyObject *args) {
    (void)module;
    PyObject *ranks, *words, *offsets, *rtn, *tables, *memo;
    long h;
    Tables tb;
    if (!PyArg_ParseTuple(args, "O!O!OOOlO!", &PyList_Type, &ranks, &PyBytes_Type, &words, &offsets, &rtn, &tables,
                          &h, &PyDict_Type, &memo))
        return NULL;
    if (parse_tables(tables, &tb) < 0)
        return NULL;
    Py_buffer ob;
    Words ws = {ranks, words, NULL, 0, 1};
    if (open_offsets(&ws, offsets, &ob) < 0)
        return NULL;
    Sim sm;
    memset(&sm, 0, sizeof sm);
    sm.rtn = rtn;
    Walked *wk = NULL;
    PyObject *key = NULL, *cap = NULL, *out = NULL;
    if (sim_flat(&sm) < 0)
        goto done;
    key = PyLong_FromLong(h);
    if (key == NULL || (wk = walk_tokens(&sm, &tb, &ws, PyList_GET_SIZE(ranks), h)) == NULL)
        goto done;
    cap = keep_walk(memo, key, wk);
    if (cap != NULL)
        out = Py_NewRef(Py_None);
done:
    Py_XDECREF(cap);
    Py_XDECREF(key);
    sim_free(&sm);
    PyBuffer_Release(&ob);
    return out;
}

/* simulate(chart, ranks, words, rtn, tables[, offsets[, first[, memo]]]): cfg_matcher's `_simulate` (see
 * there). With one scanning state, each token is walked from it while its states close to nothing, then
 * the rests are grouped by the state they stand on and simulated, sorted, from those items; that walk is
 * kept in `memo` (a dict, or None) under the state. With more, every token is simulated from the chart.
 * `words`: a tuple of bytes by rank, or all the ranks' bytes joined in one bytes object with `offsets`
 * (int64, one more than the ranks: rank r is words[offsets[r]:offsets[r + 1]]): the tuple's bytes objects
 * lie all over the heap, and reading each token's from there was most of the loop's time (a cache miss per
 * token); offsets None: a tuple. `first` (ExactFirst, or None to close every set): a token's next-to-last
 * byte is probed (`sim_probe`) rather than stepped. A group's items stand where the chart's last set does
 * (position base - 1): their origins are all in the chart, and nothing was predicted at them (their state
 * calls nothing). */
static PyObject *earley_simulate(PyObject *module, PyObject *args) {
    (void)module;
    PyObject *chart, *ranks, *words, *rtn, *tables, *offsets = NULL, *first = Py_None, *memo = Py_None;
    Tables tb;
    if (!PyArg_ParseTuple(args, "O!O!OOO|OOO", &PyList_Type, &chart, &PyList_Type, &ranks, &words, &rtn, &tables,
                          &offsets, &first, &memo))
        return NULL;
    if (offsets == Py_None)
        offsets = NULL;
    int joined = PyBytes_Check(words);
    if (!(joined ? offsets != NULL : PyTuple_Check(words) && offsets == NULL)) {
        PyErr_SetString(PyExc_TypeError, "words must be a tuple of bytes, or bytes with offsets");
        return NULL;
    }
    if (memo != Py_None && !PyDict_Check(memo)) {
        PyErr_SetString(PyExc_TypeError, "memo must be a dict or None");
        return NULL;
    }
    if (parse_tables(tables, &tb) < 0)
        return NULL;
    Py_ssize_t n = PyList_GET_SIZE(ranks);
    if (PyList_GET_SIZE(chart) == 0) {
        PyErr_SetString(PyExc_ValueError, "the chart is empty");
        return NULL;
    }
    Py_buffer ob;
    Words ws = {ranks, words, NULL, joined ? 0 : PyTuple_GET_SIZE(words), joined};
    if (joined && open_offsets(&ws, offsets, &ob) < 0)
        return NULL;
    Sim sm;
    memset(&sm, 0, sizeof sm);
    sm.chart = chart;
    sm.rtn = rtn;
    sm.base = (long)PyList_GET_SIZE(chart);
    Item *scan0 = NULL, *titems = NULL;
    long *heads0 = NULL;
    size_t nscan0 = 0, nheads0 = 0, nok = 0, capok = 0, caprests = 0;
    Py_ssize_t *okv = NULL;
    Rest *rests = NULL;
    Walked *own = NULL; /* a walk made here and not kept */
    char *flags = NULL;
    PyObject *ok = NULL, *scan = NULL, *key = NULL, *held = NULL;
    if (sim_flat(&sm) < 0)
        goto fail;
    /* the chart's last set: its scanning items and distinct scanning states */
    scan = PyObject_GetAttr(PyList_GET_ITEM(chart, sm.base - 1), str_scan);
    if (scan == NULL)
        goto fail;
    if (!PyList_Check(scan)) {
        PyErr_SetString(PyExc_TypeError, "scan must be a list");
        goto fail;
    }
    nscan0 = (size_t)PyList_GET_SIZE(scan);
    scan0 = PyMem_Malloc((nscan0 + 1) * sizeof(Item));
    heads0 = PyMem_Malloc((nscan0 + 1) * sizeof(long));
    titems = PyMem_Malloc((nscan0 + 1) * sizeof(Item));
    if (scan0 == NULL || heads0 == NULL || titems == NULL) {
        PyErr_NoMemory();
        goto fail;
    }
    for (size_t i = 0; i < nscan0; i++) {
        if (pair_of(PyList_GET_ITEM(scan, i), &scan0[i].g, &scan0[i].o) < 0)
            goto fail;
        heads0[i] = scan0[i].g;
    }
    if (nscan0)
        qsort(heads0, nscan0, sizeof(long), long_cmp);
    for (size_t i = 0; i < nscan0; i++)
        if (nheads0 == 0 || heads0[i] != heads0[nheads0 - 1])
            heads0[nheads0++] = heads0[i];
    if (n && nheads0 != 1) { /* every token from the chart, in rank (byte) order */
        if (grow((void **)&rests, &caprests, (size_t)n, sizeof(Rest)) < 0)
            goto fail;
        for (Py_ssize_t i = 0; i < n; i++) {
            int64_t rank;
            if (token_at(&ws, i, &rests[i].w, &rests[i].len, &rank) < 0)
                goto fail;
            rests[i].idx = i;
        }
        if (sim_rests(&sm, &tb, scan0, nscan0, heads0, nheads0, 0, rests, NULL, (size_t)n, first, &okv, &nok, &capok) <
            0)
            goto fail;
    } else if (n) {
        Walked *wk = NULL;
        if (memo != Py_None) {
            key = PyLong_FromLong(heads0[0]);
            if (key == NULL)
                goto fail;
            PyObject *cap = PyDict_GetItemWithError(memo, key);
            if (cap == NULL && PyErr_Occurred())
                goto fail;
            if (cap != NULL) {
                held = Py_NewRef(cap); /* (a rule built meanwhile runs Python: the dict may change) */
                wk = (Walked *)PyCapsule_GetPointer(cap, "decc.walked");
                if (wk == NULL)
                    goto fail;
                int same = wk->n == n;
                for (Py_ssize_t i = 0; i < n && same; i++) {
                    Py_ssize_t r = PyLong_AsSsize_t(PyList_GET_ITEM(ranks, i));
                    if (r == -1 && PyErr_Occurred())
                        goto fail;
                    same = r == wk->ranks[i];
                }
                if (!same)
                    wk = NULL; /* made for other tokens: made again (and kept instead) */
            }
        }
        if (wk == NULL) {
            wk = walk_tokens(&sm, &tb, &ws, n, heads0[0]);
            if (wk == NULL)
                goto fail;
            if (memo != Py_None) {
                Py_XSETREF(held, keep_walk(memo, key, wk)); /* (the dict holds the walk too) */
                if (held == NULL)
                    goto fail;
            } else {
                own = wk;
            }
        }
        for (size_t k = 0; k < wk->ntaken; k++)
            if (push_idx(&okv, &nok, &capok, (Py_ssize_t)wk->taken[k]) < 0)
                goto fail;
        const Rest *wr = wk->rests; /* (the walk's own bytes, held while it runs) */
        for (size_t gi = 0; gi < wk->ngroups; gi++) {
            const Group *g = &wk->groups[gi];
            int rc;
            if (g->t < 0) {
                rc = sim_rests(&sm, &tb, scan0, nscan0, heads0, nheads0, 0, wr + g->lo, wk->lcps + g->lo,
                               g->hi - g->lo, first, &okv, &nok, &capok);
            } else { /* the scanning items stepped to t: t with each origin, sorted, distinct */
                size_t nt = 0;
                for (size_t i = 0; i < nscan0; i++)
                    titems[nt++] = (Item){g->t, scan0[i].o};
                qsort(titems, nt, sizeof(Item), item_cmp);
                size_t u = 0;
                for (size_t i = 0; i < nt; i++)
                    if (u == 0 || item_cmp(&titems[i], &titems[u - 1]) != 0)
                        titems[u++] = titems[i];
                long th = g->t;
                rc = sim_rests(&sm, &tb, titems, u, &th, 1, 1, wr + g->lo, wk->lcps + g->lo, g->hi - g->lo, first,
                               &okv, &nok, &capok);
            }
            if (rc < 0)
                goto fail;
        }
    }
    /* the ranks taken, in their order */
    flags = PyMem_Calloc((size_t)n + 1, 1);
    if (flags == NULL) {
        PyErr_NoMemory();
        goto fail;
    }
    Py_ssize_t taken = 0;
    for (size_t i = 0; i < nok; i++) {
        taken += !flags[okv[i]];
        flags[okv[i]] = 1;
    }
    ok = PyList_New(taken);
    if (ok == NULL)
        goto fail;
    for (Py_ssize_t i = 0, k = 0; i < n; i++) {
        if (flags[i]) {
            PyObject *v = PyList_GET_ITEM(ranks, i);
            Py_INCREF(v);
            PyList_SET_ITEM(ok, k++, v);
        }
    }
    goto done;
fail:
    Py_CLEAR(ok);
done:
    Py_XDECREF(scan);
    Py_XDECREF(key);
    Py_XDECREF(held);
    PyMem_Free(scan0);
    PyMem_Free(heads0);
    PyMem_Free(titems);
    PyMem_Free(rests);
    PyMem_Free(okv);
    PyMem_Free(flags);
    walked_free(own);
    sim_free(&sm);
    if (joined)
        PyBuffer_Release(&ob);
    return ok;
}

/* Append rank r to `out` unless its token's bit is set in `mask` (checked against the sizes). */
static int keep_unset(PyObject *out, int64_t r, const int64_t *r2i, Py_ssize_t n, const uint32_t *mask,
                      Py_ssize_t nbits) {
    if (r < 0 || r >= n) {
        PyErr_SetString(PyExc_IndexError, "rank out of rank_to_id");
        return -1;
    }
    int64_t id = r2i[r];
    if (id < 0 || id >= nbits) {
        PyErr_SetString(PyExc_IndexError, "token id out of the mask");
        return -1;
    }
    if ((mask[id >> 5] >> (id & 31)) & 1)
        return 0;
    PyObject *v = PyLong_FromLongLong(r);
    if (v == NULL)
        return -1;
    int rc = PyList_Append(out, v);
    Py_DECREF(v);
    return rc;
}

/* The sorted union of the `np_` sorted int64 rank buffers `pb` (`total` ranks in all; one part taken as
 * it is; a sort for a few, flags for many), less the ranks whose token's bit is set in `mask`, as a new list
 * (NULL with an error set): `compose`'s uncertain ranks (cfg_matcher's `unset_ranks` is the oracle). */
static PyObject *union_unset(Py_buffer *pb, Py_ssize_t np_, Py_ssize_t total, const uint32_t *mask,
                             Py_ssize_t nbits, const int64_t *r2i, Py_ssize_t n) {
    int64_t *tmp = NULL;
    uint64_t *flag = NULL;
    PyObject *out = PyList_New(0);
    if (out == NULL)
        return NULL;
    if (np_ == 1) {
        const int64_t *v = (const int64_t *)pb[0].buf;
        for (Py_ssize_t i = 0; i < total; i++)
            if (keep_unset(out, v[i], r2i, n, mask, nbits) < 0)
                goto fail;
    } else if (total <= 256) { /* a sort of a few */
        tmp = PyMem_Malloc(((size_t)total + 1) * sizeof(int64_t));
        if (tmp == NULL) {
            PyErr_NoMemory();
            goto fail;
        }
        Py_ssize_t k = 0;
        for (Py_ssize_t j = 0; j < np_; j++) {
            memcpy(tmp + k, pb[j].buf, (size_t)pb[j].len);
            k += pb[j].len / 8;
        }
        qsort(tmp, (size_t)total, sizeof(int64_t), i64_cmp);
        for (Py_ssize_t i = 0; i < total; i++)
            if ((i == 0 || tmp[i] != tmp[i - 1]) && keep_unset(out, tmp[i], r2i, n, mask, nbits) < 0)
                goto fail;
    } else { /* a bitset over the ranks, read back over the span touched */
        flag = PyMem_Calloc((size_t)n / 64 + 1, sizeof(uint64_t));
        if (flag == NULL) {
            PyErr_NoMemory();
            goto fail;
        }
        int64_t lo = n, hi = -1;
        for (Py_ssize_t j = 0; j < np_; j++) {
            const int64_t *v = (const int64_t *)pb[j].buf;
            for (Py_ssize_t i = 0; i < pb[j].len / 8; i++) {
                if (v[i] < 0 || v[i] >= n) {
                    PyErr_SetString(PyExc_IndexError, "rank out of rank_to_id");
                    goto fail;
                }
                flag[v[i] >> 6] |= (uint64_t)1 << (v[i] & 63);
                lo = v[i] < lo ? v[i] : lo;
                hi = v[i] > hi ? v[i] : hi;
            }
        }
        for (int64_t k = lo >> 6; hi >= 0 && k <= hi >> 6; k++)
            for (uint64_t b = flag[k]; b; b &= b - 1)
                if (keep_unset(out, (k << 6) | __builtin_ctzll(b), r2i, n, mask, nbits) < 0)
                    goto fail;
    }
    goto done;
fail:
    Py_CLEAR(out);
done:
    PyMem_Free(tmp);
    PyMem_Free(flag);
    return out;
}

/* The distinct values of v[0..k), sorted in place; how many. */
static Py_ssize_t sort_unique(long *v, Py_ssize_t k) {
    if (k < 2)
        return k;
    qsort(v, (size_t)k, sizeof(long), long_cmp);
    Py_ssize_t m = 1;
    for (Py_ssize_t i = 1; i < k; i++)
        if (v[i] != v[m - 1])
            v[m++] = v[i];
    return m;
}

/* out |= b over n words, 32 bytes at a time (GCC's -O2 leaves the plain loop scalar: the rows may alias, and
 * its cost model makes no epilogue; a set of 70 states ORs 70 rows of the vocabulary's size). */
typedef uint32_t v8u32 __attribute__((vector_size(32)));

static void or_words(uint32_t *out, const uint32_t *b, Py_ssize_t n) {
    Py_ssize_t w = 0;
    for (; w + 8 <= n; w += 8) {
        v8u32 x, y;
        memcpy(&x, out + w, sizeof x);
        memcpy(&y, b + w, sizeof y);
        x |= y;
        memcpy(out + w, &x, sizeof x);
    }
    for (; w < n; w++)
        out[w] |= b[w];
}

/* compose(scan, row_of, n, buf, uncertain, rank_to_id, out): cfg_matcher's mask assembly (`_compose_py`,
 * the oracle) in one call. The distinct RTN states of the scanning items `scan` (a list of (state,
 * origin)); when some is not classified yet (at or past `n`, the states StateRows knows, or row_of -1),
 * their tuple, sorted, and `out` is left alone. Else `out` (int32, n_words) is set to the OR of their
 * distinct rows of `buf` (int32 [rows, n_words]; row 0, no token, skipped) and the answer is the list of the
 * sorted union of their uncertain ranks (`uncertain[g]`: int64 arrays, each array taken once) less those
 * whose token is set in `out`: what the simulation must decide. A first visit's glue was a dozen numpy and
 * list calls around this, about a third of a typical one. */
static PyObject *earley_compose(PyObject *module, PyObject *args) {
    (void)module;
    PyObject *scan, *row_o, *buf_o, *unc, *r2i_o, *out_o, *result = NULL;
    Py_ssize_t n_known;
    if (!PyArg_ParseTuple(args, "O!OnOO!OO", &PyList_Type, &scan, &row_o, &n_known, &buf_o, &PyList_Type, &unc,
                          &r2i_o, &out_o))
        return NULL;
    Py_ssize_t ns = PyList_GET_SIZE(scan), k = 0, nmiss = 0, np_ = 0, total = 0, got = 0;
    long small[64], *st = ns <= 64 ? small : PyMem_Malloc((size_t)ns * sizeof(long));
    Py_buffer rowb, bufb, rb, ob, *pb = NULL;
    int have = 0; /* buffers held: 1 row_of, 2 buf, 3 rank_to_id, 4 out */
    PyObject **seen = NULL;
    if (st == NULL)
        return PyErr_NoMemory();
    for (Py_ssize_t i = 0; i < ns; i++) {
        PyObject *it = PyList_GET_ITEM(scan, i);
        if (!PyTuple_Check(it) || PyTuple_GET_SIZE(it) != 2) {
            PyErr_SetString(PyExc_TypeError, "scan items must be (state, origin) pairs");
            goto done;
        }
        long g = PyLong_AsLong(PyTuple_GET_ITEM(it, 0));
        if (g == -1 && PyErr_Occurred())
            goto done;
        if (g < 0) {
            PyErr_SetString(PyExc_IndexError, "negative state");
            goto done;
        }
        st[k++] = g;
    }
    k = sort_unique(st, k);
    if (PyObject_GetBuffer(row_o, &rowb, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT) < 0)
        goto done;
    have = 1;
    if (rowb.itemsize != 8) {
        PyErr_SetString(PyExc_TypeError, "row_of must hold int64");
        goto done;
    }
    const int64_t *row_of = (const int64_t *)rowb.buf;
    Py_ssize_t n_row_of = rowb.len / 8;
    for (Py_ssize_t i = 0; i < k; i++)
        if (st[i] >= n_known || st[i] >= n_row_of || row_of[st[i]] < 0)
            st[nmiss++] = st[i]; /* (nmiss <= i: compacted in place, in order) */
    if (nmiss) {
        result = PyTuple_New(nmiss);
        for (Py_ssize_t i = 0; result != NULL && i < nmiss; i++) {
            PyObject *v = PyLong_FromLong(st[i]);
            if (v == NULL)
                Py_CLEAR(result);
            else
                PyTuple_SET_ITEM(result, i, v);
        }
        goto done;
    }
    if (PyObject_GetBuffer(buf_o, &bufb, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT) < 0)
        goto done;
    have = 2;
    if (PyObject_GetBuffer(r2i_o, &rb, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT) < 0)
        goto done;
    have = 3;
    if (PyObject_GetBuffer(out_o, &ob, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT | PyBUF_WRITABLE) < 0)
        goto done;
    have = 4;
    if (bufb.itemsize != 4 || ob.itemsize != 4 || rb.itemsize != 8 || bufb.ndim != 2 ||
        bufb.shape[1] * 4 != ob.len) {
        PyErr_SetString(PyExc_TypeError, "buf must be int32 [rows, n_words], out int32 [n_words], "
                                         "rank_to_id int64");
        goto done;
    }
    Py_ssize_t nw = ob.len / 4, nrows = bufb.shape[0];
    uint32_t *out = (uint32_t *)ob.buf;
    const uint32_t *buf = (const uint32_t *)bufb.buf;
    long rsmall[64], *rs = k <= 64 ? rsmall : PyMem_Malloc((size_t)k * sizeof(long));
    if (rs == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    Py_ssize_t nr = 0;
    for (Py_ssize_t i = 0; i < k; i++)
        if (row_of[st[i]] != 0)
            rs[nr++] = (long)row_of[st[i]];
    nr = sort_unique(rs, nr);
    int bad = nr && rs[nr - 1] >= nrows;
    if (!bad) {
        if (nr == 0)
            memset(out, 0, (size_t)nw * 4);
        else
            memcpy(out, buf + rs[0] * nw, (size_t)nw * 4);
        for (Py_ssize_t j = 1; j < nr; j++)
            or_words(out, buf + rs[j] * nw, nw);
    }
    if (rs != rsmall)
        PyMem_Free(rs);
    if (bad) {
        PyErr_SetString(PyExc_IndexError, "row out of buf");
        goto done;
    }
    /* the states' uncertain arrays, each distinct one once (states often share their lexeme's) */
    pb = PyMem_Calloc((size_t)k + 1, sizeof(Py_buffer));
    seen = PyMem_Calloc((size_t)k + 1, sizeof(PyObject *));
    if (pb == NULL || seen == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    for (Py_ssize_t i = 0; i < k; i++) {
        if (st[i] >= PyList_GET_SIZE(unc)) {
            PyErr_SetString(PyExc_IndexError, "state out of uncertain");
            goto done;
        }
        PyObject *u = PyList_GET_ITEM(unc, st[i]);
        int dup = 0;
        for (Py_ssize_t j = 0; j < np_ && !dup; j++)
            dup = seen[j] == u;
        if (dup)
            continue;
        if (PyObject_GetBuffer(u, &pb[got], PyBUF_C_CONTIGUOUS | PyBUF_FORMAT) < 0)
            goto done;
        got++;
        if (pb[got - 1].itemsize != 8) {
            PyErr_SetString(PyExc_TypeError, "uncertain ranks must be int64");
            goto done;
        }
        if (pb[got - 1].len == 0) { /* nothing uncertain: released now, not a part */
            PyBuffer_Release(&pb[--got]);
            seen[np_++] = u;
            continue;
        }
        seen[np_++] = u;
        total += pb[got - 1].len / 8;
    }
    result = got ? union_unset(pb, got, total, out, nw * 32, (const int64_t *)rb.buf, rb.len / 8)
                 : PyList_New(0);
done:
    for (Py_ssize_t j = 0; j < got; j++)
        PyBuffer_Release(&pb[j]);
    PyMem_Free(pb);
    PyMem_Free(seen);
    if (have >= 4)
        PyBuffer_Release(&ob);
    if (have >= 3)
        PyBuffer_Release(&rb);
    if (have >= 2)
        PyBuffer_Release(&bufb);
    if (have >= 1)
        PyBuffer_Release(&rowb);
    if (st != small)
        PyMem_Free(st);
    return result;
}

/* ---- The mask cache's signature of a chart (cfg_matcher's `_signature_py`, the oracle) ----
 *
 * The same keys, made in the same order, in the same interning dict with the same id counter: so the ids
 * are the very ones the Python version gives (both may run on one constraint). A context's key is the
 * frozenset of (waiting state, its caller's context id) pairs, plus (-1, -1) for the start rule at 0; the
 * signature's is (accept, frozenset of (canonical state, context id)). The keys hold only ints and tuples
 * of ints, so they leave the cyclic collector (as the Earley sets' containers do). Contexts are memoized
 * per set in `ESet.contexts` (rule -> id; -1 while being computed: met again, the context is cyclic). */

typedef struct {
    PyObject *chart, *rule_of, *interned, *ids;
} Sig;

static PyObject *str_contexts, *str_accept, *start_pair, *minus_one;

/* fs.add((a, b)), the pair untracked (it holds two ints) */
static int add_pair(PyObject *fs, PyObject *a, PyObject *b) {
    PyObject *t = PyTuple_Pack(2, a, b);
    if (t == NULL)
        return -1;
    PyObject_GC_UnTrack(t);
    int rc = PySet_Add(fs, t);
    Py_DECREF(t);
    return rc;
}

/* interned[key], or the counter's next id stored there first (a new reference) */
static PyObject *intern_key(Sig *sg, PyObject *key) {
    PyObject *id = PyDict_GetItemWithError(sg->interned, key);
    if (id != NULL) {
        Py_INCREF(id);
        return id;
    }
    if (PyErr_Occurred())
        return NULL;
    id = PyIter_Next(sg->ids);
    if (id == NULL) {
        if (!PyErr_Occurred())
            PyErr_SetString(PyExc_RuntimeError, "the id counter ran out");
        return NULL;
    }
    if (PyDict_SetItem(sg->interned, key, id) < 0)
        Py_CLEAR(id);
    return id;
}

/* Set s's memo dict, made (and stored) if None: a new reference. */
static PyObject *contexts_of(PyObject *s) {
    PyObject *d = PyObject_GetAttr(s, str_contexts);
    if (d == NULL || PyDict_CheckExact(d))
        return d;
    if (d != Py_None) {
        Py_DECREF(d);
        PyErr_SetString(PyExc_TypeError, "contexts must be a dict or None");
        return NULL;
    }
    Py_DECREF(d);
    d = PyDict_New();
    if (d != NULL && PyObject_SetAttr(s, str_contexts, d) < 0)
        Py_CLEAR(d);
    return d;
}

/* The callers waiting at set s for rule r, as a new reference (NULL with no error: none). */
static PyObject *waiting_for(PyObject *s, PyObject *r) {
    PyObject *waiting = PyObject_GetAttr(s, str_waiting);
    if (waiting == NULL)
        return NULL;
    if (!PyDict_Check(waiting)) {
        Py_DECREF(waiting);
        PyErr_SetString(PyExc_TypeError, "waiting must be a dict");
        return NULL;
    }
    PyObject *lst = PyDict_GetItemWithError(waiting, r);
    Py_XINCREF(lst);
    Py_DECREF(waiting);
    if (lst != NULL && !PyList_Check(lst)) {
        Py_DECREF(lst);
        PyErr_SetString(PyExc_TypeError, "waiting lists must be lists");
        return NULL;
    }
    return lst;
}

/* An item (g, o) of a list of pairs: g's object (borrowed), g and o. */
static int item_of(PyObject *it, PyObject **gobj, long *g, Py_ssize_t *o) {
    if (!PyTuple_Check(it) || PyTuple_GET_SIZE(it) != 2) {
        PyErr_SetString(PyExc_TypeError, "expected a pair");
        return -1;
    }
    *gobj = PyTuple_GET_ITEM(it, 0);
    *g = PyLong_AsLong(*gobj);
    *o = PyLong_AsSsize_t(PyTuple_GET_ITEM(it, 1));
    return ((*g == -1 || *o == -1) && PyErr_Occurred()) ? -1 : 0;
}

/* C(o, r) in set o's memo: 1 and *id (a new reference) when known; 0 when being computed (so cyclic); 2
 * when new, then marked as being computed (-1), *d its memo dict (a new reference); -1 on error. */
static int memo(Sig *sg, Py_ssize_t o, PyObject *r, PyObject **d, PyObject **id) {
    if (o < 0 || o >= PyList_GET_SIZE(sg->chart)) {
        PyErr_SetString(PyExc_IndexError, "origin out of the chart");
        return -1;
    }
    PyObject *m = contexts_of(PyList_GET_ITEM(sg->chart, o)), *hit;
    if (m == NULL)
        return -1;
    if ((hit = PyDict_GetItemWithError(m, r)) != NULL) {
        long v = PyLong_AsLong(hit);
        int rc = v >= 0 ? 1 : (PyErr_Occurred() ? -1 : 0);
        if (rc == 1) {
            Py_INCREF(hit);
            *id = hit;
        }
        Py_DECREF(m);
        return rc;
    }
    if (PyErr_Occurred() || PyDict_SetItem(m, r, minus_one) < 0) {
        Py_DECREF(m);
        return -1;
    }
    *d = m;
    return 2;
}

/* A context being computed: set o's memo dict, the rule, the callers waiting there (NULL: none), the
 * next of them, and the key so far. */
typedef struct {
    PyObject *d, *r, *lst, *fs;
    Py_ssize_t o, i;
} Frame;

/* Opens f for C(o, r) (d: set o's memo, marked; taken over): 0, or -1 (f still to be freed). */
static int frame_open(Sig *sg, Frame *f, Py_ssize_t o, PyObject *r, PyObject *d) {
    f->d = d;
    f->r = r;
    Py_INCREF(r);
    f->o = o;
    f->i = 0;
    f->fs = NULL;
    f->lst = waiting_for(PyList_GET_ITEM(sg->chart, o), r);
    if (f->lst == NULL && PyErr_Occurred())
        return -1;
    f->fs = PyFrozenSet_New(NULL);
    return f->fs == NULL ? -1 : 0;
}

/* f's key complete: its id interned and memoized (a new reference), or NULL. */
static PyObject *frame_close(Sig *sg, Frame *f) {
    if (f->o == 0) {
        long rv = PyLong_AsLong(f->r);
        if ((rv == -1 && PyErr_Occurred()) || (rv == 0 && PySet_Add(f->fs, start_pair) < 0))
            return NULL;
    }
    PyObject_GC_UnTrack(f->fs);
    PyObject *id = intern_key(sg, f->fs);
    if (id != NULL && PyDict_SetItem(f->d, f->r, id) < 0)
        Py_CLEAR(id);
    return id;
}

/* `unmark`: f's context was left unfinished (cyclic, or an error): no memo of it stays. */
static void frame_free(Frame *f, int unmark) {
    if (unmark) {
        PyObject *et, *ev, *tb;
        PyErr_Fetch(&et, &ev, &tb);
        if (PyDict_DelItem(f->d, f->r) < 0)
            PyErr_Clear();
        PyErr_Restore(et, ev, tb);
    }
    Py_DECREF(f->d);
    Py_DECREF(f->r);
    Py_XDECREF(f->lst);
    Py_XDECREF(f->fs);
}

/* The interned context C(o, r) into *out (a new reference): 1; 0 when cyclic; -1 on error. Depth first over
 * the callers waiting, in order, as the recursive Python one goes, but on a stack of frames: no depth limit
 * (a chart advanced over deeply nested text without a mask in between has no memos on the way). */
static int context(Sig *sg, Py_ssize_t o, PyObject *r, PyObject **out) {
    PyObject *d = NULL;
    int rc = memo(sg, o, r, &d, out);
    if (rc != 2)
        return rc;
    Frame local[16], *stack = local;
    size_t n = 1, cap = 16;
    rc = -1;
    if (frame_open(sg, &stack[0], o, r, d) < 0)
        goto unwind;
    while (n > 0) {
        Frame *f = &stack[n - 1];
        if (f->lst != NULL && f->i < PyList_GET_SIZE(f->lst)) { /* the next caller's context */
            PyObject *gobj, *r2, *id = NULL, *d2 = NULL;
            long g2;
            Py_ssize_t o2;
            if (item_of(PyList_GET_ITEM(f->lst, f->i), &gobj, &g2, &o2) < 0 ||
                (r2 = list_at(sg->rule_of, g2)) == NULL)
                goto unwind;
            if (n == cap) { /* (room first: a marked memo is always in a frame) */
                Frame *more = PyMem_Malloc(2 * cap * sizeof(Frame));
                if (more == NULL) {
                    PyErr_NoMemory();
                    goto unwind;
                }
                memcpy(more, stack, n * sizeof(Frame));
                if (stack != local)
                    PyMem_Free(stack);
                stack = more;
                cap *= 2;
                f = &stack[n - 1];
            }
            int m = memo(sg, o2, r2, &d2, &id);
            if (m == 1) {
                int bad = add_pair(f->fs, gobj, id) < 0;
                Py_DECREF(id);
                if (bad)
                    goto unwind;
                f->i++;
                continue;
            }
            if (m != 2) {
                rc = m;
                goto unwind;
            }
            if (frame_open(sg, &stack[n++], o2, r2, d2) < 0)
                goto unwind;
            continue;
        }
        PyObject *id = frame_close(sg, f); /* done: given to the caller's key */
        if (id == NULL)
            goto unwind;
        frame_free(f, 0);
        if (--n == 0) {
            *out = id;
            rc = 1;
            break;
        }
        Frame *up = &stack[n - 1];
        int bad = add_pair(up->fs, PyTuple_GET_ITEM(PyList_GET_ITEM(up->lst, up->i), 0), id) < 0;
        Py_DECREF(id);
        if (bad)
            goto unwind;
        up->i++;
    }
    goto done;
unwind:
    while (n > 0)
        frame_free(&stack[--n], 1);
done:
    if (stack != local)
        PyMem_Free(stack);
    return rc;
}

/* fs.add((name of g, C(o, rule of g))) for each scanning item (g, o), in order: 1, or 0 at the first
 * cyclic context, or -1. */
static int add_scan(Sig *sg, PyObject *fs, PyObject *scan, PyObject *names) {
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(scan); i++) {
        PyObject *it = PyList_GET_ITEM(scan, i), *gobj, *r, *name, *c = NULL;
        long g;
        Py_ssize_t o;
        if (item_of(it, &gobj, &g, &o) < 0 || (r = list_at(sg->rule_of, g)) == NULL ||
            (name = list_at(names, g)) == NULL)
            return -1;
        Py_INCREF(r);
        Py_INCREF(name);
        int rc = context(sg, o, r, &c);
        if (rc == 1) {
            rc = add_pair(fs, name, c) < 0 ? -1 : 1;
            Py_DECREF(c);
        }
        Py_DECREF(name);
        Py_DECREF(r);
        if (rc != 1)
            return rc;
    }
    return 1;
}

/* signature(chart, names, rule_of, interned, ids): the chart's interned signature, or None (cyclic). */
static PyObject *earley_signature(PyObject *module, PyObject *args) {
    Sig sg;
    PyObject *names;
    if (!PyArg_ParseTuple(args, "O!O!O!O!O", &PyList_Type, &sg.chart, &PyList_Type, &names, &PyList_Type,
                          &sg.rule_of, &PyDict_Type, &sg.interned, &sg.ids))
        return NULL;
    Py_ssize_t n = PyList_GET_SIZE(sg.chart);
    if (n == 0) {
        PyErr_SetString(PyExc_ValueError, "empty chart");
        return NULL;
    }
    PyObject *last = PyList_GET_ITEM(sg.chart, n - 1), *scan = NULL, *accept = NULL, *fs = NULL,
             *key = NULL, *id = NULL;
    Py_INCREF(last);
    accept = PyObject_GetAttr(last, str_accept);
    if (accept == NULL || (scan = PyObject_GetAttr(last, str_scan)) == NULL)
        goto done;
    if (!PyList_Check(scan)) {
        PyErr_SetString(PyExc_TypeError, "scan must be a list");
        goto done;
    }
    if ((fs = PyFrozenSet_New(NULL)) == NULL)
        goto done;
    int rc = add_scan(&sg, fs, scan, names);
    if (rc == 0) {
        id = Py_None;
        Py_INCREF(id);
    } else if (rc == 1) {
        PyObject_GC_UnTrack(fs);
        if ((key = PyTuple_Pack(2, accept, fs)) != NULL) {
            PyObject_GC_UnTrack(key);
            id = intern_key(&sg, key);
        }
    }
done:
    Py_XDECREF(key);
    Py_XDECREF(fs);
    Py_XDECREF(scan);
    Py_XDECREF(accept);
    Py_DECREF(last);
    return id;
}

/* set_ranks(mask, ranks, rank_to_id): set in the int32 bitmask `mask` the bits of the tokens of the ranks in
 * the list `ranks` (the simulation's answer): numpy's ufunc.at or a loop over numpy scalars cost ~0.5 us a
 * token. */
static PyObject *earley_set_ranks(PyObject *module, PyObject *args) {
    (void)module;
    PyObject *mask_o, *ranks, *r2i_o, *result = NULL;
    if (!PyArg_ParseTuple(args, "OO!O", &mask_o, &PyList_Type, &ranks, &r2i_o))
        return NULL;
    Py_buffer mb, rb;
    if (PyObject_GetBuffer(mask_o, &mb, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT | PyBUF_WRITABLE) < 0)
        return NULL;
    if (PyObject_GetBuffer(r2i_o, &rb, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT) < 0) {
        PyBuffer_Release(&mb);
        return NULL;
    }
    if (mb.itemsize != 4 || rb.itemsize != 8) {
        PyErr_SetString(PyExc_TypeError, "mask must hold int32, rank_to_id int64");
        goto done;
    }
    uint32_t *mask = (uint32_t *)mb.buf;
    const int64_t *r2i = (const int64_t *)rb.buf;
    Py_ssize_t n = rb.len / 8, nbits = (mb.len / 4) * 32;
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(ranks); i++) {
        long long r = PyLong_AsLongLong(PyList_GET_ITEM(ranks, i));
        if (r == -1 && PyErr_Occurred())
            goto done;
        if (r < 0 || r >= n) {
            PyErr_SetString(PyExc_IndexError, "rank out of rank_to_id");
            goto done;
        }
        int64_t id = r2i[r];
        if (id < 0 || id >= nbits) {
            PyErr_SetString(PyExc_IndexError, "token id out of the mask");
            goto done;
        }
        mask[id >> 5] |= (uint32_t)1 << (id & 31);
    }
    result = Py_NewRef(Py_None);
done:
    PyBuffer_Release(&mb);
    PyBuffer_Release(&rb);
    return result;
}

static PyMethodDef methods[] = {
    {"close", earley_close, METH_VARARGS,
     "close(chart, seeds, tables[, cls]): (items, scan, waiting, accept) of the set after `chart` from the\n"
     "seeds; with cls, cls(items, scan, waiting, accept) left out of the cyclic collector."},
    {"step", earley_step, METH_VARARGS,
     "step(chart, byte, flat, tables[, cls]): (items, scan, waiting, accept) after `byte`, or None; with\n"
     "cls, as close makes it."},
    {"walk", earley_walk, METH_VARARGS,
     "walk(ranks, words, offsets, rtn, tables, state, memo): the walk of a state's uncertain tokens that\n"
     "simulate keeps in memo, made ahead."},
    {"simulate", earley_simulate, METH_VARARGS,
     "simulate(chart, ranks, words, rtn, tables[, offsets[, first]]): the ranks (sorted) whose token bytes\n"
     "the recognizer takes (first: the exact first bytes for the last-byte probe, None for none)."},
    {"compose", earley_compose, METH_VARARGS,
     "compose(scan, row_of, n, buf, uncertain, rank_to_id, out): the unclassified states of the scanning\n"
     "items (a tuple), or, with out set to the OR of their rows, the list of their uncertain ranks unset there."},
    {"signature", earley_signature, METH_VARARGS,
     "signature(chart, names, rule_of, interned, ids): the mask cache's id of the chart (cfg_matcher's\n"
     "_signature_py, the same keys in the same dict), or None when a context is cyclic."},
    {"set_ranks", earley_set_ranks, METH_VARARGS,
     "set_ranks(mask, ranks, rank_to_id): set the bits of the tokens of the list's ranks in the int32 mask."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "earley_c", "Compiled Earley step and closure.",
                                    -1, methods};

PyMODINIT_FUNC PyInit_earley_c(void) {
    str_waiting = PyUnicode_InternFromString("waiting");
    str_scan = PyUnicode_InternFromString("scan");
    str_contexts = PyUnicode_InternFromString("contexts");
    str_accept = PyUnicode_InternFromString("accept");
    minus_one = PyLong_FromLong(-1);
    start_pair = minus_one == NULL ? NULL : PyTuple_Pack(2, minus_one, minus_one);
    if (str_waiting == NULL || str_scan == NULL || str_contexts == NULL || str_accept == NULL ||
        start_pair == NULL)
        return NULL;
    return PyModule_Create(&module);
}
