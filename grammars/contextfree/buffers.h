/* Buffer checks shared by the compiled walks (trie_walk_c.c, loops_c.c): arrays come in through the buffer
 * protocol (no numpy headers), and each is checked for its kind before it is read. */
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

#endif
