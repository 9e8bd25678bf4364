/* The loop lookup of a state's first visit (cfg_loops.py: `Loops`, `Loops.members`' funnel, `loop_key`'s
 * layout and `region_key`'s classes and walk), compiled: the same results as the pure-Python versions, which
 * stay as the fallback and as the tests' oracle. Arrays come in through the buffer protocol (no numpy
 * headers): byte tables int32 [n, 256], flags bool, state lists and counts int64.
 *
 *   components(rows, lo, dead, n_live, wide)  -> (int64 bytes: Tarjan's component of each wide state, as the
 *                                                Python numbers them, -1: on no cycle or not wide; any loop)
 *   funnel(rows, lo, dead, comp, s, depth)    -> None, or the sorted int64 bytes of s's funnel and its loop
 *   off_loops(rows, lo, dead, comp, depth)    -> bytes: 1 per state whose `members` is None
 *   layout(table, members, g, dead, exit_point, enters) -> bytes: the loop's layout relative to g, exactly
 *                                                (run-length rows): equal bytes, equal `region_key`
 *   classes(table, members, dead, exit_point, enters) -> int64 bytes: `loop_classes`
 *   region_bytes(table, members, g, dead, exit_point, enters) -> (bytes, exits): what `region_key` hashes,
 *                                                and the exit states in the order it numbers them
 *   first_parts(inside, uncertain, leaving_lo, bounds, firsts, rank_to_id, n_words)
 *                                             -> (row, uncertain, leaving): `Region.first_bytes`' parts, as
 *                                                bytes (uint32 bitmask, int64 ranks, int64 indices)
 */

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include "buffers.h"
#include "region_take.h"
#include <stdint.h>
#include <string.h>

static void sort_ll(long long *v, Py_ssize_t n) { /* insertion sort: a row has few distinct targets */
    for (Py_ssize_t i = 1; i < n; i++) {
        long long x = v[i];
        Py_ssize_t j = i;
        while (j > 0 && v[j - 1] > x) {
            v[j] = v[j - 1];
            j--;
        }
        v[j] = x;
    }
}

/* The distinct values of a row other than `dead`, sorted, into out[256]; their count. */
static int distinct(const int32_t *row, long long dead, long long *out) {
    int n = 0;
    for (int b = 0; b < 256; b++) {
        long long t = row[b];
        if (t == dead)
            continue;
        int seen = 0;
        for (int i = n - 1; i >= 0 && !seen; i--) /* runs of one target: the last one is the likely match */
            seen = out[i] == t;
        if (!seen)
            out[n++] = t;
    }
    sort_ll(out, n);
    return n;
}

/* ---- components ---------------------------------------------------------------------------------------- */

static PyObject *components(PyObject *mod, PyObject *args) {
    PyObject *rows_obj, *live_obj;
    long long lo, dead, wide;
    if (!PyArg_ParseTuple(args, "OLLOL", &rows_obj, &lo, &dead, &live_obj, &wide))
        return NULL;
    Py_buffer rb, lb;
    if (get_buffer(rows_obj, &rb, "rows", 2, 4, "i", 0) < 0)
        return NULL;
    if (get_buffer(live_obj, &lb, "n_live", 1, 8, "lq", 0) < 0) {
        PyBuffer_Release(&rb);
        return NULL;
    }
    PyObject *result = NULL;
    Py_ssize_t n = rb.shape[0];
    const int32_t *rows = rb.buf;
    const long long *live = lb.buf;
    long long *node = NULL, *wstate = NULL, *start = NULL, *index = NULL, *low = NULL, *stack = NULL;
    long long *work_v = NULL, *work_i = NULL, *ncomp = NULL, *mark = NULL;
    char *on = NULL;
    int any_loop = 0;
    Vec edges = {0};
    if (lb.shape[0] != n) {
        PyErr_SetString(PyExc_ValueError, "n_live needs a count per row");
        goto done;
    }
    result = PyBytes_FromStringAndSize(NULL, n * 8);
    if (result == NULL)
        goto done;
    long long *comp = (long long *)PyBytes_AS_STRING(result);
    for (Py_ssize_t i = 0; i < n; i++)
        comp[i] = -1;
    /* the wide states, numbered in order, and each one's distinct wide successors in the rule, sorted */
    node = PyMem_Malloc((size_t)(n + 1) * sizeof(long long));
    wstate = PyMem_Malloc((size_t)(n + 1) * sizeof(long long));
    start = PyMem_Malloc((size_t)(n + 2) * sizeof(long long));
    if (node == NULL || wstate == NULL || start == NULL) {
        PyErr_NoMemory();
        goto fail;
    }
    Py_ssize_t m = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        node[i] = live[i] >= wide ? m : -1;
        if (live[i] >= wide)
            wstate[m++] = i;
    }
    if (m == 0)
        goto done;
    /* each wide state's distinct wide successors, sorted: marked by their node (`mark`: the last state that
     * met it), collected, then sorted (a few: a row's targets are runs) */
    mark = PyMem_Malloc((size_t)m * sizeof(long long));
    if (mark == NULL) {
        PyErr_NoMemory();
        goto fail;
    }
    for (Py_ssize_t v = 0; v < m; v++)
        mark[v] = -1;
    for (Py_ssize_t v = 0; v < m; v++) {
        start[v] = edges.n;
        const int32_t *row = rows + wstate[v] * 256;
        long long last = dead;
        for (int b = 0; b < 256; b++) {
            long long t = row[b];
            if (t == last)
                continue;
            last = t;
            t -= lo;
            if (t < 0 || t >= n || node[t] < 0 || mark[node[t]] == v)
                continue;
            mark[node[t]] = v;
            if (vec_push(&edges, node[t]) < 0)
                goto fail;
        }
        sort_ll(edges.v + start[v], edges.n - start[v]);
    }
    start[m] = edges.n;
    /* Tarjan's, iterative, step for step as cfg_loops._components (so the components number alike) */
    index = PyMem_Malloc((size_t)m * sizeof(long long));
    low = PyMem_Malloc((size_t)m * sizeof(long long));
    stack = PyMem_Malloc((size_t)m * sizeof(long long));
    work_v = PyMem_Malloc((size_t)(m + 1) * sizeof(long long));
    work_i = PyMem_Malloc((size_t)(m + 1) * sizeof(long long));
    ncomp = PyMem_Malloc((size_t)m * sizeof(long long));
    on = PyMem_Calloc((size_t)m, 1);
    if (!index || !low || !stack || !work_v || !work_i || !ncomp || !on) {
        PyErr_NoMemory();
        goto fail;
    }
    for (Py_ssize_t v = 0; v < m; v++)
        index[v] = -1, ncomp[v] = -1;
    long long counter = 0, n_comp = 0;
    Py_ssize_t sp = 0, wp = 0;
    for (Py_ssize_t root = 0; root < m; root++) {
        if (index[root] >= 0)
            continue;
        work_v[0] = root, work_i[0] = 0, wp = 1;
        while (wp > 0) {
            wp--;
            long long v = work_v[wp], i = work_i[wp];
            if (i == 0) {
                index[v] = low[v] = counter++;
                stack[sp++] = v;
                on[v] = 1;
            }
            long long end = start[v + 1] - start[v];
            const long long *e = edges.v + start[v];
            int descended = 0;
            while (i < end) {
                long long w = e[i++];
                if (index[w] < 0) {
                    work_v[wp] = v, work_i[wp] = i, wp++;
                    work_v[wp] = w, work_i[wp] = 0, wp++;
                    descended = 1;
                    break;
                }
                if (on[w] && index[w] < low[v])
                    low[v] = index[w];
            }
            if (descended)
                continue;
            if (low[v] == index[v]) {
                Py_ssize_t top = sp;
                while (stack[--sp] != v)
                    ;
                int cyclic = top - sp > 1;
                for (long long j = 0; j < end && !cyclic; j++)
                    cyclic = e[j] == v;
                for (Py_ssize_t j = sp; j < top; j++) {
                    on[stack[j]] = 0;
                    ncomp[stack[j]] = cyclic ? n_comp : -1;
                }
                n_comp++;
            }
            if (wp > 0) {
                long long u = work_v[wp - 1];
                if (low[v] < low[u])
                    low[u] = low[v];
            }
        }
    }
    for (Py_ssize_t v = 0; v < m; v++) {
        comp[wstate[v]] = ncomp[v];
        any_loop |= ncomp[v] >= 0;
    }
    goto done;
fail:
    Py_CLEAR(result);
done:
    PyMem_Free(node), PyMem_Free(wstate), PyMem_Free(start), PyMem_Free(index), PyMem_Free(low);
    PyMem_Free(stack), PyMem_Free(work_v), PyMem_Free(work_i), PyMem_Free(ncomp), PyMem_Free(on);
    PyMem_Free(mark);
    PyMem_Free(edges.v);
    PyBuffer_Release(&rb);
    PyBuffer_Release(&lb);
    if (result == NULL)
        return NULL;
    return Py_BuildValue("(NO)", result, any_loop ? Py_True : Py_False);
}

/* ---- funnel ----------------------------------------------------------------------------------------- */

typedef struct {
    const int32_t *rows;
    const long long *comp;
    long long lo, n, dead;
    char *seen; /* per rule state */
    Vec order;  /* the states marked in `seen` */
} Funnel;

/* -2: an edge leaves the rule (an error is set); -1: no one loop; else the loop (cfg_loops.Loops._funnel). */
static long long funnel_from(Funnel *f, long long s, int depth) {
    f->seen[s - f->lo] = 1;
    if (vec_push(&f->order, s) < 0)
        return -2;
    long long targets[256];
    int k = distinct(f->rows + (s - f->lo) * 256, f->dead, targets);
    long long loop = -1;
    for (int i = 0; i < k; i++) {
        long long t = targets[i];
        if (t < f->lo || t >= f->lo + f->n) {
            PyErr_SetString(PyExc_ValueError, "a byte edge leaves the rule");
            return -2;
        }
        long long c = f->comp[t - f->lo];
        if (c < 0) {
            if (depth <= 1 || f->seen[t - f->lo])
                return -1;
            c = funnel_from(f, t, depth - 1);
            if (c < 0)
                return c;
        }
        if (loop >= 0 && c != loop)
            return -1;
        loop = c;
    }
    return loop;
}

static PyObject *funnel(PyObject *mod, PyObject *args) {
    PyObject *rows_obj, *comp_obj;
    long long lo, dead, s;
    int depth;
    if (!PyArg_ParseTuple(args, "OLLOLi", &rows_obj, &lo, &dead, &comp_obj, &s, &depth))
        return NULL;
    Py_buffer rb, cb;
    if (get_buffer(rows_obj, &rb, "rows", 2, 4, "i", 0) < 0)
        return NULL;
    if (get_buffer(comp_obj, &cb, "comp", 1, 8, "lq", 0) < 0) {
        PyBuffer_Release(&rb);
        return NULL;
    }
    PyObject *result = NULL;
    Funnel f = {rb.buf, cb.buf, lo, rb.shape[0], dead, NULL, {0}};
    if (cb.shape[0] != f.n || s < lo || s >= lo + f.n) {
        PyErr_SetString(PyExc_ValueError, "comp needs a component per row, and s must be in the rule");
        goto done;
    }
    f.seen = PyMem_Calloc((size_t)f.n, 1);
    if (f.seen == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    long long c = funnel_from(&f, s, depth);
    if (c == -2)
        goto done;
    if (c == -1) {
        result = Py_None;
        Py_INCREF(result);
        goto done;
    }
    /* the funnel's states (off loops) and the loop's, sorted: one pass over the rule */
    Py_ssize_t k = 0;
    for (long long i = 0; i < f.n; i++)
        k += f.seen[i] || f.comp[i] == c;
    result = PyBytes_FromStringAndSize(NULL, k * 8);
    if (result == NULL)
        goto done;
    long long *out = (long long *)PyBytes_AS_STRING(result);
    for (long long i = 0; i < f.n; i++)
        if (f.seen[i] || f.comp[i] == c)
            *out++ = lo + i;
done:
    PyMem_Free(f.seen);
    PyMem_Free(f.order.v);
    PyBuffer_Release(&rb);
    PyBuffer_Release(&cb);
    return result;
}

/* off_loops(rows, lo, dead, comp, depth): per rule state, 1 where `Loops.members` is None (on no loop, and
 * no funnel of `depth` bytes into one), as bytes: a rule's states flagged at once, where asking each state
 * its funnel from Python costs microseconds a state. */
static PyObject *off_loops(PyObject *mod, PyObject *args) {
    PyObject *rows_obj, *comp_obj;
    long long lo, dead;
    int depth;
    if (!PyArg_ParseTuple(args, "OLLOi", &rows_obj, &lo, &dead, &comp_obj, &depth))
        return NULL;
    Py_buffer rb, cb;
    if (get_buffer(rows_obj, &rb, "rows", 2, 4, "i", 0) < 0)
        return NULL;
    if (get_buffer(comp_obj, &cb, "comp", 1, 8, "lq", 0) < 0) {
        PyBuffer_Release(&rb);
        return NULL;
    }
    PyObject *result = NULL;
    Funnel f = {rb.buf, cb.buf, lo, rb.shape[0], dead, NULL, {0}};
    if (cb.shape[0] != f.n) {
        PyErr_SetString(PyExc_ValueError, "comp needs a component per row");
        goto done;
    }
    f.seen = PyMem_Calloc((size_t)f.n + 1, 1);
    result = PyBytes_FromStringAndSize(NULL, f.n);
    if (f.seen == NULL || result == NULL) {
        if (f.seen == NULL)
            PyErr_NoMemory();
        Py_CLEAR(result);
        goto done;
    }
    char *out = PyBytes_AS_STRING(result);
    /* A funnel of d bytes needs some byte from s, and every byte from s to lead onto a loop or to a state
     * with a funnel of d - 1 bytes (none for d = 1): `can` marks the states passing that test, seen-free,
     * level by level; funnel_from (exact) runs only on them. */
    char *can = PyMem_Calloc((size_t)f.n * 2, 1);
    if (can == NULL) {
        PyErr_NoMemory();
        Py_CLEAR(result);
        goto done;
    }
    char *prev = can, *cur = can + f.n; /* level 0: none */
    for (int level = 1; level <= depth; level++) {
        for (long long i = 0; i < f.n; i++) {
            cur[i] = 0;
            if (f.comp[i] >= 0)
                continue;
            const int32_t *row = f.rows + i * 256;
            int ok = 0;
            for (int b = 0; b < 256; b++) {
                long long t = row[b];
                if (t == dead)
                    continue;
                /* (an edge out of the rule: no funnel here; funnel_from would raise on it) */
                ok = t >= lo && t < lo + f.n && (f.comp[t - lo] >= 0 || prev[t - lo]);
                if (!ok)
                    break;
            }
            cur[i] = (char)ok;
        }
        char *x = prev;
        prev = cur;
        cur = x;
    }
    for (long long i = 0; i < f.n; i++) {
        if (f.comp[i] >= 0) {
            out[i] = 0;
            continue;
        }
        if (!prev[i]) {
            out[i] = 1;
            continue;
        }
        long long c = funnel_from(&f, lo + i, depth);
        for (Py_ssize_t j = 0; j < f.order.n; j++) /* `seen` cleared for the next state's funnel */
            f.seen[f.order.v[j] - lo] = 0;
        f.order.n = 0;
        if (c == -2) {
            PyMem_Free(can);
            Py_CLEAR(result);
            goto done;
        }
        out[i] = c == -1;
    }
    PyMem_Free(can);
done:
    PyMem_Free(f.seen);
    PyMem_Free(f.order.v);
    PyBuffer_Release(&rb);
    PyBuffer_Release(&cb);
    return result;
}

/* ---- a loop's members: layout, classes, region bytes ------------------------------------------------- */

typedef struct {
    Py_buffer tb, mb, eb, nb;
    const int32_t *table;
    const long long *members;
    const char *exit_point, *enters;
    Py_ssize_t n_states, k;
} Loop;

static void loop_release(Loop *x) {
    PyBuffer_Release(&x->tb);
    PyBuffer_Release(&x->mb);
    PyBuffer_Release(&x->eb);
    PyBuffer_Release(&x->nb);
}

/* The loop's arrays; members sorted, distinct, and rows of the table. */
static int loop_get(Loop *x, PyObject *table, PyObject *members, PyObject *exit_point, PyObject *enters) {
    memset(x, 0, sizeof(*x));
    if (get_buffer(table, &x->tb, "table", 2, 4, "i", 0) < 0)
        return -1;
    if (get_buffer(members, &x->mb, "members", 1, 8, "lq", 0) < 0) {
        PyBuffer_Release(&x->tb);
        return -1;
    }
    if (get_buffer(exit_point, &x->eb, "exit_point", 1, 1, "?", 0) < 0) {
        PyBuffer_Release(&x->tb), PyBuffer_Release(&x->mb);
        return -1;
    }
    if (get_buffer(enters, &x->nb, "enters", 2, 1, "?", 0) < 0) {
        PyBuffer_Release(&x->tb), PyBuffer_Release(&x->mb), PyBuffer_Release(&x->eb);
        return -1;
    }
    x->table = x->tb.buf, x->members = x->mb.buf, x->exit_point = x->eb.buf, x->enters = x->nb.buf;
    x->n_states = x->tb.shape[0], x->k = x->mb.shape[0];
    if (x->eb.shape[0] < x->n_states || x->nb.shape[0] < x->n_states) {
        PyErr_SetString(PyExc_ValueError, "exit_point and enters need a row per state of the table");
        loop_release(x);
        return -1;
    }
    for (Py_ssize_t i = 0; i < x->k; i++) {
        if (x->members[i] < 0 || x->members[i] >= x->n_states || (i && x->members[i] <= x->members[i - 1])) {
            PyErr_SetString(PyExc_ValueError, "members must be sorted, distinct states of the table");
            loop_release(x);
            return -1;
        }
    }
    return 0;
}

/* The index of state t among the members, or -1. */
static Py_ssize_t member_index(const Loop *x, long long t) {
    Py_ssize_t a = 0, b = x->k;
    while (a < b) {
        Py_ssize_t mid = (a + b) / 2;
        if (x->members[mid] < t)
            a = mid + 1;
        else
            b = mid;
    }
    return a < x->k && x->members[a] == t ? a : -1;
}

typedef struct {
    char *v;
    Py_ssize_t n, cap;
} Buf;

static int buf_put(Buf *b, const void *p, Py_ssize_t len) {
    if (b->n + len > b->cap) {
        Py_ssize_t cap = b->cap ? 2 * b->cap : 1024;
        while (cap < b->n + len)
            cap *= 2;
        char *v = PyMem_Realloc(b->v, (size_t)cap);
        if (v == NULL) {
            PyErr_NoMemory();
            return -1;
        }
        b->v = v, b->cap = cap;
    }
    memcpy(b->v + b->n, p, (size_t)len);
    b->n += len;
    return 0;
}

static void pack_bits(const char *flags, unsigned char out[32]) { /* np.packbits (big bit order) */
    const unsigned char *f = (const unsigned char *)flags;
    for (int j = 0; j < 32; j++, f += 8) { /* flags are 0 or 1: one multiply gathers 8 of them */
        uint64_t x = 0;
        for (int i = 0; i < 8; i++)
            x |= (uint64_t)(f[i] != 0) << (8 * i);
        out[j] = (unsigned char)((x * 0x8040201008040201ULL) >> 56);
    }
}

/* Layout: k; then per member: its offset from g, its row as runs (count; per run its first byte and target,
 * the target's offset from g or INT64_MIN for dead), its exit flag and its entering bytes packed. Every
 * field has a fixed width or a count before it: two layouts are equal bytes exactly when the loops are
 * laid out alike around their states, which is what `region_key` reads. */
static PyObject *layout(PyObject *mod, PyObject *args) {
    PyObject *table, *members, *exit_point, *enters;
    long long g, dead;
    if (!PyArg_ParseTuple(args, "OOLLOO", &table, &members, &g, &dead, &exit_point, &enters))
        return NULL;
    Loop x;
    if (loop_get(&x, table, members, exit_point, enters) < 0)
        return NULL;
    /* at most: k, then per member its offset, run count, 256 runs of 9 bytes, flag and packed bytes */
    Py_ssize_t cap = 8 + x.k * (8 + 2 + 256 * 9 + 33);
    char *buf = PyMem_Malloc((size_t)cap), *p = buf;
    PyObject *result = NULL;
    if (buf == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    long long k = x.k;
    memcpy(p, &k, 8), p += 8;
    for (Py_ssize_t i = 0; i < x.k; i++) {
        long long m = x.members[i], off = m - g;
        const int32_t *row = x.table + m * 256;
        memcpy(p, &off, 8), p += 8;
        char *count = p;
        p += 2;
        uint16_t n_runs = 0;
        for (int c = 0; c < 256; c++) {
            if (c > 0 && row[c] == row[c - 1])
                continue;
            long long v = row[c] == dead ? INT64_MIN : (long long)row[c] - g;
            *p++ = (char)c;
            memcpy(p, &v, 8), p += 8;
            n_runs++;
        }
        memcpy(count, &n_runs, 2);
        *p++ = x.exit_point[m] != 0;
        pack_bits(x.enters + m * 256, (unsigned char *)p), p += 32;
    }
    result = PyBytes_FromStringAndSize(buf, p - buf);
done:
    PyMem_Free(buf);
    loop_release(&x);
    return result;
}

/* The class of each member (cfg_loops.loop_classes: Moore's refinement, numbered by first member) into
 * cls[k]; `where[k * 256]` gets each byte's member index (-1: off the loop). */
static int loop_classes_c(const Loop *x, long long dead, long long *cls, Py_ssize_t *where) {
    Py_ssize_t k = x->k;
    for (Py_ssize_t i = 0; i < k; i++) { /* looked up once per run of one target */
        const int32_t *row = x->table + x->members[i] * 256;
        Py_ssize_t *w = where + i * 256;
        for (int c = 0; c < 256; c++)
            w[c] = c > 0 && row[c] == row[c - 1] ? w[c - 1] : member_index(x, row[c]);
    }
    long long *code = PyMem_Malloc((size_t)(k * 257 + 1) * sizeof(long long));
    Py_ssize_t *first = PyMem_Malloc((size_t)(k + 1) * sizeof(Py_ssize_t));
    if (code == NULL || first == NULL) {
        PyMem_Free(code), PyMem_Free(first);
        PyErr_NoMemory();
        return -1;
    }
    /* first: the exit flag and entering bytes (as signature rows numbered by first occurrence) */
    Py_ssize_t n = 0;
    for (Py_ssize_t i = 0; i < k; i++) {
        const char *ei = x->enters + x->members[i] * 256;
        long long c = -1;
        for (Py_ssize_t j = 0; j < n && c < 0; j++) {
            Py_ssize_t r = first[j];
            if ((x->exit_point[x->members[r]] != 0) == (x->exit_point[x->members[i]] != 0) &&
                memcmp(ei, x->enters + x->members[r] * 256, 256) == 0)
                c = j;
        }
        if (c < 0) {
            first[n] = i;
            c = n++;
        }
        cls[i] = c;
    }
    /* each member's signature: its class, then per byte the target's class, -1 dead, k + the exit (the
     * codes off the loop set once) */
    for (Py_ssize_t i = 0; i < k; i++) {
        const int32_t *row = x->table + x->members[i] * 256;
        for (int c = 0; c < 256; c++)
            code[i * 257 + c + 1] = row[c] == dead ? -1 : k + (long long)row[c];
    }
    for (;;) {
        for (Py_ssize_t i = 0; i < k; i++) {
            long long *sig = code + i * 257;
            const Py_ssize_t *w = where + i * 256;
            sig[0] = cls[i];
            for (int c = 0; c < 256; c++)
                if (w[c] >= 0)
                    sig[c + 1] = cls[w[c]];
        }
        Py_ssize_t m = 0;
        for (Py_ssize_t i = 0; i < k; i++) {
            long long c = -1;
            for (Py_ssize_t j = 0; j < m && c < 0; j++)
                if (memcmp(code + i * 257, code + first[j] * 257, 257 * sizeof(long long)) == 0)
                    c = j;
            if (c < 0) {
                first[m] = i;
                c = m++;
            }
            cls[i] = c;
        }
        if (m == n)
            break;
        n = m;
    }
    PyMem_Free(code), PyMem_Free(first);
    return 0;
}

static PyObject *classes(PyObject *mod, PyObject *args) {
    PyObject *table, *members, *exit_point, *enters;
    long long dead;
    if (!PyArg_ParseTuple(args, "OOLOO", &table, &members, &dead, &exit_point, &enters))
        return NULL;
    Loop x;
    if (loop_get(&x, table, members, exit_point, enters) < 0)
        return NULL;
    PyObject *result = PyBytes_FromStringAndSize(NULL, x.k * 8);
    Py_ssize_t *where = PyMem_Malloc((size_t)(x.k * 256 + 1) * sizeof(Py_ssize_t));
    if (where == NULL && result != NULL)
        PyErr_NoMemory();
    if (result != NULL &&
        (where == NULL || loop_classes_c(&x, dead, (long long *)PyBytes_AS_STRING(result), where) < 0))
        Py_CLEAR(result);
    PyMem_Free(where);
    loop_release(&x);
    return result;
}

/* What `region_key` hashes: per state of its walk over the classes from g (g, then each class's first
 * member as first met), the 256 int64 codes of its bytes (-1 dead; a class's number in the walk; -2 - an
 * exit's number), its entering bytes packed, and b"x" or b"." for its exit flag; and the exits, in order. */
static PyObject *region_bytes(PyObject *mod, PyObject *args) {
    PyObject *table, *members, *exit_point, *enters;
    long long g, dead;
    if (!PyArg_ParseTuple(args, "OOLLOO", &table, &members, &g, &dead, &exit_point, &enters))
        return NULL;
    Loop x;
    if (loop_get(&x, table, members, exit_point, enters) < 0)
        return NULL;
    PyObject *result = NULL, *exits_list = NULL, *data = NULL;
    Py_ssize_t k = x.k;
    long long *cls = PyMem_Malloc((size_t)(k + 1) * sizeof(long long));
    long long *number = PyMem_Malloc((size_t)(k + 1) * sizeof(long long)); /* a class's place in the walk */
    long long *rep = PyMem_Malloc((size_t)(k + 1) * sizeof(long long));    /* a class's first member */
    long long *order = PyMem_Malloc((size_t)(k + 1) * sizeof(long long));
    Py_ssize_t *where = PyMem_Malloc((size_t)(k * 256 + 1) * sizeof(Py_ssize_t));
    Vec exits = {0};
    Buf b = {0};
    if (!cls || !number || !rep || !order || !where) {
        PyErr_NoMemory();
        goto done;
    }
    Py_ssize_t gi = member_index(&x, g);
    if (gi < 0) {
        PyErr_SetString(PyExc_ValueError, "g must be one of the members");
        goto done;
    }
    if (loop_classes_c(&x, dead, cls, where) < 0)
        goto done;
    for (Py_ssize_t i = 0; i < k; i++)
        number[i] = -1, rep[i] = -1;
    for (Py_ssize_t i = 0; i < k; i++)
        if (rep[cls[i]] < 0)
            rep[cls[i]] = x.members[i];
    Py_ssize_t n_order = 1;
    order[0] = g;
    number[cls[gi]] = 0;
    for (Py_ssize_t o = 0; o < n_order; o++) {
        long long s = order[o];
        Py_ssize_t si = member_index(&x, s);
        const int32_t *row = x.table + s * 256;
        long long codes[256];
        for (int c = 0; c < 256; c++) { /* targets met by first byte: as region_key numbers them */
            long long t = row[c];
            if (t == dead) {
                codes[c] = -1;
                continue;
            }
            Py_ssize_t w = where[si * 256 + c];
            if (w >= 0) {
                long long cl = cls[w];
                if (number[cl] < 0) {
                    number[cl] = n_order;
                    order[n_order++] = rep[cl];
                }
                codes[c] = number[cl];
            } else {
                Py_ssize_t e = 0;
                while (e < exits.n && exits.v[e] != t)
                    e++;
                if (e == exits.n && vec_push(&exits, t) < 0)
                    goto done;
                codes[c] = -2 - e;
            }
        }
        unsigned char tail[33];
        pack_bits(x.enters + s * 256, tail);
        tail[32] = x.exit_point[s] ? 'x' : '.';
        if (buf_put(&b, codes, sizeof(codes)) < 0 || buf_put(&b, tail, 33) < 0)
            goto done;
    }
    data = PyBytes_FromStringAndSize(b.v, b.n);
    exits_list = PyList_New(exits.n);
    if (data == NULL || exits_list == NULL)
        goto done;
    for (Py_ssize_t e = 0; e < exits.n; e++) {
        PyObject *v = PyLong_FromLongLong(exits.v[e]);
        if (v == NULL)
            goto done;
        PyList_SET_ITEM(exits_list, e, v);
    }
    result = PyTuple_Pack(2, data, exits_list);
done:
    Py_XDECREF(data);
    Py_XDECREF(exits_list);
    PyMem_Free(cls), PyMem_Free(number), PyMem_Free(rep), PyMem_Free(order), PyMem_Free(where);
    PyMem_Free(exits.v);
    PyMem_Free(b.v);
    loop_release(&x);
    return result;
}

/* ---- a region's tokens by first byte ------------------------------------------------------------------- */

/* The ranks of a region's sorted arrays that start with one of the bytes `firsts` (sorted, distinct) are one
 * slice of each array per byte (region_take.h): the inside ones set in a bitmask by token id, the uncertain
 * ones copied, the leaving nodes' indices listed, in rank order, as the Python's masks over every rank pick
 * them. */
static PyObject *first_parts(PyObject *mod, PyObject *args) {
    PyObject *in_obj, *unc_obj, *lv_obj, *bounds_obj, *r2i_obj;
    const unsigned char *firsts;
    Py_ssize_t n_firsts, n_words;
    if (!PyArg_ParseTuple(args, "OOOOy#On", &in_obj, &unc_obj, &lv_obj, &bounds_obj, &firsts, &n_firsts,
                          &r2i_obj, &n_words))
        return NULL;
    Py_buffer ib, ub, lb, bb, rb;
    int have = 0;
    PyObject *row = NULL, *result = NULL;
    Vec unc = {0}, lv = {0};
    if (get_buffer(in_obj, &ib, "inside", 1, 4, "i", 0) < 0)
        goto done;
    have = 1;
    if (get_buffer(unc_obj, &ub, "uncertain", 1, 4, "i", 0) < 0)
        goto done;
    have = 2;
    if (get_buffer(lv_obj, &lb, "leaving_lo", 1, 8, "lq", 0) < 0)
        goto done;
    have = 3;
    if (get_buffer(bounds_obj, &bb, "bounds", 1, 8, "lq", 0) < 0)
        goto done;
    have = 4;
    if (get_buffer(r2i_obj, &rb, "rank_to_id", 1, 8, "lq", 0) < 0)
        goto done;
    have = 5;
    if (bb.shape[0] != 257 || n_words < 0) {
        PyErr_SetString(PyExc_ValueError, "bounds must have 257 entries");
        goto done;
    }
    row = PyBytes_FromStringAndSize(NULL, n_words * 4);
    if (row == NULL)
        goto done;
    uint32_t *bits = (uint32_t *)PyBytes_AS_STRING(row);
    memset(bits, 0, (size_t)n_words * 4);
    RegionArrays x = {ib.buf, ub.buf, lb.buf, ib.shape[0], ub.shape[0], lb.shape[0]};
    if (region_first_bytes(&x, bb.buf, firsts, n_firsts, rb.buf, rb.shape[0], bits, n_words, &unc, &lv) < 0)
        goto done;
    result = Py_BuildValue("(Oy#y#)", row, unc.n ? (const char *)unc.v : "", unc.n * 8,
                           lv.n ? (const char *)lv.v : "", lv.n * 8);
done:
    Py_XDECREF(row);
    PyMem_Free(unc.v);
    PyMem_Free(lv.v);
    if (have >= 1)
        PyBuffer_Release(&ib);
    if (have >= 2)
        PyBuffer_Release(&ub);
    if (have >= 3)
        PyBuffer_Release(&lb);
    if (have >= 4)
        PyBuffer_Release(&bb);
    if (have >= 5)
        PyBuffer_Release(&rb);
    return result;
}

static PyMethodDef module_methods[] = {
    {"first_parts", first_parts, METH_VARARGS,
     "first_parts(inside, uncertain, leaving_lo, bounds, firsts, rank_to_id, n_words): Region.first_bytes."},
    {"components", components, METH_VARARGS,
     "components(rows, lo, dead, n_live, wide): (each row's loop among wide rows, int64, -1: none; any)."},
    {"funnel", funnel, METH_VARARGS,
     "funnel(rows, lo, dead, comp, s, depth): s's funnel and the loop it leads into (int64 bytes), or None."},
    {"off_loops", off_loops, METH_VARARGS,
     "off_loops(rows, lo, dead, comp, depth): per row, 1 where it is on no loop and funnels into none (bytes)."},
    {"layout", layout, METH_VARARGS,
     "layout(table, members, g, dead, exit_point, enters): the loop's layout relative to g, as bytes."},
    {"classes", classes, METH_VARARGS,
     "classes(table, members, dead, exit_point, enters): loop_classes, as int64 bytes."},
    {"region_bytes", region_bytes, METH_VARARGS,
     "region_bytes(table, members, g, dead, exit_point, enters): (region_key's hashed bytes, its exits)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT, "loops_c", "cfg_loops.py's loop lookup, compiled.", -1, module_methods,
};

PyMODINIT_FUNC PyInit_loops_c(void) { return PyModule_Create(&module_def); }
