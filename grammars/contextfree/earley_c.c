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
    PyObject *t = pair(g, o);
    if (t == NULL)
        return -1;
    int rc = PySet_Add(items, t);
    Py_DECREF(t);
    if (rc < 0)
        return -1;
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
} Tables;

static int parse_tables(PyObject *t, Tables *tb) {
    if (!PyArg_ParseTuple(t, "O!O!O!O!O!OO;tables", &PyList_Type, &tb->has_bytes, &PyList_Type,
                          &tb->accepting, &PyList_Type, &tb->calls, &PyList_Type, &tb->rule_of,
                          &PyList_Type, &tb->starts, &tb->nullable, &tb->enter))
        return -1;
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
    if (long_at(tb->starts, r, &start) < 0)
        return -1;
    if (start < 0) {
        PyObject *s = PyObject_CallOneArg(tb->enter, callee);
        if (s == NULL)
            return -1;
        start = PyLong_AsLong(s);
        Py_DECREF(s);
        if (start == -1 && PyErr_Occurred())
            return -1;
    }
    if (cl_add(c, items, start, pos) < 0)
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
    return Py_BuildValue("(NNNO)", items, scan, waiting, accept ? Py_True : Py_False);
fail:
    Py_XDECREF(scan);
    Py_XDECREF(waiting);
    Py_DECREF(items);
    return NULL;
}

/* close(chart, seeds, tables): the set after `chart` closed from the seed items (a list of pairs). */
static PyObject *earley_close(PyObject *module, PyObject *args) {
    PyObject *chart, *seeds, *tables;
    Tables tb;
    if (!PyArg_ParseTuple(args, "O!O!O", &PyList_Type, &chart, &PyList_Type, &seeds, &tables))
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
    return out;
}

/* step(chart, byte, flat, tables): the set after reading `byte` at the end of `chart`, or None. */
static PyObject *earley_step(PyObject *module, PyObject *args) {
    PyObject *chart, *flat, *tables;
    int byte;
    Tables tb;
    if (!PyArg_ParseTuple(args, "O!iOO", &PyList_Type, &chart, &byte, &flat, &tables))
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
    return out;
fail:
    PyBuffer_Release(&tab);
    Py_DECREF(scan);
    Py_XDECREF(items);
    if (c.keys != NULL || c.work != NULL)
        cl_free(&c);
    return NULL;
}

static PyMethodDef methods[] = {
    {"close", earley_close, METH_VARARGS,
     "close(chart, seeds, tables): (items, scan, waiting, accept) of the set after `chart` from the seeds."},
    {"step", earley_step, METH_VARARGS,
     "step(chart, byte, flat, tables): (items, scan, waiting, accept) after `byte`, or None."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "earley_c", "Compiled Earley step and closure.",
                                    -1, methods};

PyMODINIT_FUNC PyInit_earley_c(void) {
    str_waiting = PyUnicode_InternFromString("waiting");
    str_scan = PyUnicode_InternFromString("scan");
    if (str_waiting == NULL || str_scan == NULL)
        return NULL;
    return PyModule_Create(&module);
}
