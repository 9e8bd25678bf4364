/* What the compiled walks (trie_walk_c.c, loops_c.c) share: arrays come in through the buffer protocol (no
 * numpy headers), each checked for its kind before it is read; results grow in int64 vectors. */
#ifndef DECC_BUFFERS_H
#define DECC_BUFFERS_H

#include <Python.h>
#include <string.h>

/* `b` has `ndim` dimensions of `itemsize`-byte items of one of the struct codes `kinds` (a 2-D one: 256
 * columns); else a TypeError / ValueError naming `name`, and -1. */
static int check_buffer(Py_buffer *b, const char *name, int ndim, Py_ssize_t itemsize, const char *kinds) {
    const char *f = b->format ? b->format : "B";
    while (*f == '@' || *f == '=' || *f == '<')
        f++;
    if (b->ndim != ndim || b->itemsize != itemsize || strlen(f) != 1 || strchr(kinds, *f) == NULL) {
        PyErr_Format(PyExc_TypeError, "%s: wrong array kind (format %s, %d dims)", name,
                     b->format ? b->format : "B", b->ndim);
        return -1;
    }
    if (ndim == 2 && b->shape[1] != 256) {
        PyErr_Format(PyExc_ValueError, "%s must have 256 columns", name);
        return -1;
    }
    return 0;
}

/* Fill `b` from `obj` (writable when asked) and check its kind (check_buffer); on failure nothing is held. */
static int get_buffer(PyObject *obj, Py_buffer *b, const char *name, int ndim, Py_ssize_t itemsize,
                      const char *kinds, int writable) {
    if (PyObject_GetBuffer(obj, b, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT | (writable ? PyBUF_WRITABLE : 0)) < 0)
        return -1;
    if (check_buffer(b, name, ndim, itemsize, kinds) < 0) {
        PyBuffer_Release(b);
        return -1;
    }
    return 0;
}

/* A growable array of int64. */
typedef struct {
    long long *v;
    Py_ssize_t n, cap;
} Vec;

static int vec_push(Vec *x, long long a) {
    if (x->n == x->cap) {
        Py_ssize_t cap = x->cap ? 2 * x->cap : 64;
        long long *v = PyMem_Realloc(x->v, (size_t)cap * sizeof(long long));
        if (v == NULL) {
            PyErr_NoMemory();
            return -1;
        }
        x->v = v;
        x->cap = cap;
    }
    x->v[x->n++] = a;
    return 0;
}

#endif
