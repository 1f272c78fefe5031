/* The oracle's measured hot paths in compiled code (docs/oracle.md "Cost"; issue #12 item 3).
 *
 * Each function here is the exact counterpart of a pure-Python/numpy reference in
 * semafore/oracle (named beside each one); the reference stays and
 * tests/oracle/test_compiled.py checks both give the same answers, bit for bit, and the same
 * hits. Tables (the byte-pair tables, the magics, the fixed-Huffman tables) are not copied here:
 * the Python modules pass the ones they define, so there is one list per concept.
 *
 * Memory safety: every input arrives through the buffer protocol with its length; every index
 * is checked against that length (reads past the end of a stream read zero bytes, exactly as
 * the references pad), and positions handed in by the caller are range-checked (ValueError).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

#define API_VERSION 1
#define PLAUSIBLE_BYTES 32
#define PLAUSIBLE_ROW (PLAUSIBLE_BYTES + 4)
#define FIXED_CODES_CHECKED 8
#define TEXT_RUN 16
#define GOLDEN 0x9E3779B97F4A7C15ULL
#define MAX_MAGIC 16
#define MAX_MAGICS 64

/* --- buffers ------------------------------------------------------------------------------ */

typedef struct {
    Py_buffer view;
    int held;
} Buf;

static int get_buf(PyObject *obj, Buf *b, const char *name) {
    if (PyObject_GetBuffer(obj, &b->view, PyBUF_C_CONTIGUOUS) < 0) {
        PyErr_Format(PyExc_TypeError, "%s: a C-contiguous buffer is needed", name);
        return -1;
    }
    b->held = 1;
    return 0;
}

static void release(Buf *b) {
    if (b->held) {
        PyBuffer_Release(&b->view);
        b->held = 0;
    }
}

static inline uint64_t load_u64le(const uint8_t *p) {
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) v = (v << 8) | p[i];
    return v;
}

static inline int64_t load_i64(const uint8_t *base, Py_ssize_t i) {
    int64_t v;
    memcpy(&v, base + i * 8, 8); /* native order: numpy int64 arrays */
    return v;
}

static inline uint64_t load_u64(const uint8_t *base, Py_ssize_t i) {
    uint64_t v;
    memcpy(&v, base + i * 8, 8);
    return v;
}

/* Byte ``i`` of ``s`` (zero past either end). */
static inline unsigned byte_at(const uint8_t *s, Py_ssize_t n, Py_ssize_t i) {
    return (i >= 0 && i < n) ? s[i] : 0;
}

/* The byte read from bit ``shift`` of byte ``m`` (``(B[m] << 8 | B[m+1]) >> (8 - shift)``). */
static inline unsigned shifted_byte(const uint8_t *s, Py_ssize_t n, Py_ssize_t m, int shift) {
    unsigned pair = (byte_at(s, n, m) << 8) | byte_at(s, n, m + 1);
    return (pair >> (8 - shift)) & 0xFF;
}

/* --- matcher.Matcher.find: the strided window filter and binary search -------------------- */

static Py_ssize_t lower_bound(const uint8_t *keys, Py_ssize_t count, uint64_t x) {
    Py_ssize_t lo = 0, hi = count;
    while (lo < hi) {
        Py_ssize_t mid = lo + (hi - lo) / 2;
        if (load_u64(keys, mid) < x) lo = mid + 1; else hi = mid;
    }
    return lo;
}

static Py_ssize_t upper_bound(const uint8_t *keys, Py_ssize_t count, uint64_t x) {
    Py_ssize_t lo = 0, hi = count;
    while (lo < hi) {
        Py_ssize_t mid = lo + (hi - lo) / 2;
        if (load_u64(keys, mid) <= x) lo = mid + 1; else hi = mid;
    }
    return lo;
}

/* A cache-sized blocked Bloom filter in front of the matcher's one-bit filter: two bits of
 * one 64-byte block per key, so a data window costs one cache line that stays in L2 instead of
 * a random read of the 16 MiB filter (about 1 in 15 windows still reaches that filter).
 * Exact-preserving: every key sets its bits, so a window that is a key always passes. */
#define NEAR_GOLDEN 0xC2B2AE3D27D4EB4FULL

static inline int near_bits(int64_t bits, uint64_t w, Py_ssize_t *b1, Py_ssize_t *b2) {
    uint64_t h = w * NEAR_GOLDEN;
    Py_ssize_t block = (Py_ssize_t)(h >> (64 - (bits - 9))) << 6;
    *b1 = block + (Py_ssize_t)((h & 511) >> 3);
    *b2 = block + (Py_ssize_t)(((h >> 9) & 511) >> 3);
    return (int)(((h & 7) << 4) | ((h >> 9) & 7));
}

static PyObject *near_filter(PyObject *self, PyObject *args) {
    PyObject *keys_o, *out = NULL;
    int bits;
    Buf keys = {0};
    if (!PyArg_ParseTuple(args, "Oi:near_filter", &keys_o, &bits)) return NULL;
    if (bits < 12 || bits > 28) return PyErr_Format(PyExc_ValueError, "bits: must be 12..28");
    if (get_buf(keys_o, &keys, "keys") < 0) return NULL;
    if (keys.view.len % 8) {
        PyErr_Format(PyExc_ValueError, "keys: not a whole number of uint64");
        goto done;
    }
    out = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)1 << (bits - 3));
    if (out == NULL) goto done;
    {
        uint8_t *f = (uint8_t *)PyBytes_AS_STRING(out);
        memset(f, 0, (size_t)1 << (bits - 3));
        for (Py_ssize_t i = 0; i < keys.view.len / 8; i++) {
            Py_ssize_t b1, b2;
            int sh = near_bits(bits, load_u64(keys.view.buf, i), &b1, &b2);
            f[b1] |= (uint8_t)(1u << (sh >> 4));
            f[b2] |= (uint8_t)(1u << (sh & 7));
        }
    }
done:
    release(&keys);
    return out;
}

static PyObject *window_candidates(PyObject *self, PyObject *args) {
    PyObject *data_o, *filter_o, *keys_o, *near_o;
    Py_ssize_t stride;
    int bits, nbits;
    Buf data = {0}, filter = {0}, keys = {0}, near = {0};
    PyObject *out = NULL;
    if (!PyArg_ParseTuple(args, "OnOiOOi:window_candidates", &data_o, &stride, &filter_o, &bits,
                          &keys_o, &near_o, &nbits))
        return NULL;
    if (stride < 1) return PyErr_Format(PyExc_ValueError, "stride: must be >= 1");
    if (bits < 3 || bits > 40) return PyErr_Format(PyExc_ValueError, "bits: must be 3..40");
    if (nbits < 12 || nbits > 28) return PyErr_Format(PyExc_ValueError, "near_bits: 12..28");
    if (get_buf(data_o, &data, "data") < 0 || get_buf(filter_o, &filter, "filter") < 0 ||
        get_buf(keys_o, &keys, "keys") < 0 || get_buf(near_o, &near, "near") < 0)
        goto done;
    if (filter.view.len < ((Py_ssize_t)1 << (bits - 3))) {
        PyErr_Format(PyExc_ValueError, "filter: needs 2**(bits-3) bytes");
        goto done;
    }
    if (near.view.len < ((Py_ssize_t)1 << (nbits - 3))) {
        PyErr_Format(PyExc_ValueError, "near: needs 2**(near_bits-3) bytes");
        goto done;
    }
    if (keys.view.len % 8) {
        PyErr_Format(PyExc_ValueError, "keys: not a whole number of uint64");
        goto done;
    }
    out = PyList_New(0);
    if (out == NULL) goto done;
    {
        const uint8_t *d = data.view.buf, *f = filter.view.buf, *k = keys.view.buf,
                      *nf = near.view.buf;
        Py_ssize_t n = data.view.len, nkeys = keys.view.len / 8;
        /* in batches: the filter lines of a batch are requested before any is read, so
           their cache misses overlap instead of following one another */
        enum { BATCH = 32 };
        uint64_t ws[BATCH];
        Py_ssize_t qs[BATCH], b1s[BATCH], b2s[BATCH];
        int shs[BATCH];
        if (stride > n) stride = n + 1; /* one window at most: no overflow of q below */
        Py_ssize_t q = 0;
        while (q + 8 <= n) {
            int count = 0;
            for (; count < BATCH && q + 8 <= n; q += stride, count++) {
                qs[count] = q;
                ws[count] = load_u64le(d + q);
                shs[count] = near_bits(nbits, ws[count], &b1s[count], &b2s[count]);
                __builtin_prefetch(nf + b1s[count]);
            }
            int passed = 0;
            for (int j = 0; j < count; j++) {
                if (!((nf[b1s[j]] >> (shs[j] >> 4)) & (nf[b2s[j]] >> (shs[j] & 7)) & 1)) continue;
                uint64_t slot = (ws[j] * GOLDEN) >> (64 - bits);
                __builtin_prefetch(f + (slot >> 3));
                qs[passed] = qs[j];
                ws[passed] = ws[j];
                b1s[passed] = (Py_ssize_t)slot; /* reused: the slot of a passing window */
                passed++;
            }
            for (int j = 0; j < passed; j++) {
                uint64_t w = ws[j], slot = (uint64_t)b1s[j];
                Py_ssize_t at = qs[j];
                if (!((f[slot >> 3] >> (slot & 7)) & 1)) continue;
                Py_ssize_t lo = lower_bound(k, nkeys, w);
                if (lo >= nkeys || load_u64(k, lo) != w) continue;
                Py_ssize_t hi = upper_bound(k, nkeys, w);
                PyObject *t = Py_BuildValue("(nnn)", at, lo, hi);
                if (t == NULL || PyList_Append(out, t) < 0) {
                    Py_XDECREF(t);
                    Py_CLEAR(out);
                    goto done;
                }
                Py_DECREF(t);
            }
        }
    }
done:
    release(&data);
    release(&filter);
    release(&keys);
    release(&near);
    return out;
}

/* --- radix._nested_shifted: the pair-table candidates at every shift ---------------------- */

static PyObject *pair_candidates(PyObject *self, PyObject *args) {
    PyObject *stream_o, *text_o, *zero_o, *first_o, *second_o;
    unsigned int shifts;
    Buf st = {0}, tt = {0}, zt = {0}, ft = {0}, sc = {0};
    PyObject *at_o = NULL, *flags_o = NULL, *result = NULL;
    uint8_t *text = NULL, *wide = NULL;
    if (!PyArg_ParseTuple(args, "OIOOOO:pair_candidates", &stream_o, &shifts, &text_o, &zero_o,
                          &first_o, &second_o))
        return NULL;
    if (get_buf(stream_o, &st, "stream") < 0 || get_buf(text_o, &tt, "text_pairs") < 0 ||
        get_buf(zero_o, &zt, "zero_pairs") < 0 || get_buf(first_o, &ft, "magic_first") < 0 ||
        get_buf(second_o, &sc, "magic_second") < 0)
        goto done;
    if (tt.view.len != 65536 || zt.view.len != 65536 || ft.view.len != 65536 ||
        sc.view.len != 65536) {
        PyErr_Format(PyExc_ValueError, "pair tables: 65536 bytes each");
        goto done;
    }
    {
        const uint8_t *s = st.view.buf, *T = tt.view.buf, *Z = zt.view.buf, *F = ft.view.buf,
                      *S = sc.view.buf;
        Py_ssize_t n = st.view.len;
        uint8_t mask = (uint8_t)(shifts & 0xFF);
        Py_ssize_t alloc = n > 0 ? n : 1;
        text = PyMem_Malloc(alloc);
        wide = PyMem_Malloc(alloc);
        at_o = PyBytes_FromStringAndSize(NULL, alloc * 8);
        flags_o = PyBytes_FromStringAndSize(NULL, alloc * 4);
        if (text == NULL || wide == NULL || at_o == NULL || flags_o == NULL) {
            if (!PyErr_Occurred()) PyErr_NoMemory();
            goto done;
        }
        for (Py_ssize_t m = 0; m < n; m++) {
            unsigned pair = (s[m] << 8) | byte_at(s, n, m + 1);
            text[m] = T[pair] & mask;
            wide[m] = Z[pair] & mask;
        }
        /* text-like runs of TEXT_RUN: AND-doubling in place (valid for m < n - 15) */
        Py_ssize_t valid = n;
        for (Py_ssize_t step = 1; step < TEXT_RUN; step *= 2) {
            for (Py_ssize_t m = 0; m + step < valid; m++) text[m] &= text[m + step];
            valid = valid > step ? valid - step : 0;
        }
        Py_ssize_t text_len = valid;
        Py_ssize_t wide_len = n > 12 ? n - 12 : 0;
        Py_ssize_t magic_len = n > 1 ? n - 1 : 0;
        uint8_t *at_p = (uint8_t *)PyBytes_AS_STRING(at_o);
        uint8_t *fl_p = (uint8_t *)PyBytes_AS_STRING(flags_o);
        Py_ssize_t count = 0;
        for (Py_ssize_t m = 0; m < n; m++) {
            uint32_t flag = 0;
            if (m < text_len) flag |= text[m];
            if (m < wide_len)
                flag |= (uint32_t)(wide[m] & wide[m + 4] & wide[m + 8] & wide[m + 12]) << 8;
            if (m < magic_len) {
                unsigned p0 = (s[m] << 8) | s[m + 1];
                unsigned p1 = (s[m + 1] << 8) | byte_at(s, n, m + 2);
                flag |= (uint32_t)(F[p0] & S[p1] & mask) << 16;
            }
            if (flag) {
                int64_t m64 = (int64_t)m;
                memcpy(at_p + count * 8, &m64, 8);
                memcpy(fl_p + count * 4, &flag, 4);
                count++;
            }
        }
        if (_PyBytes_Resize(&at_o, count * 8) < 0 || _PyBytes_Resize(&flags_o, count * 4) < 0)
            goto done;
        result = PyTuple_Pack(2, at_o, flags_o);
    }
done:
    PyMem_Free(text);
    PyMem_Free(wide);
    Py_XDECREF(at_o);
    Py_XDECREF(flags_o);
    release(&st);
    release(&tt);
    release(&zt);
    release(&ft);
    release(&sc);
    return result;
}

/* --- decoders.deflate_plausible: the first block of a would-be raw deflate stream --------- */

typedef struct {
    int ready;
    uint8_t kind[512], width[512];
    int64_t length[512];
    int64_t length_extra[29], length_base[29], dist_extra[32], dist_base[32], reversed5[32];
} Tables;

static Tables T; /* set by init_deflate, only ever as a whole checked set */

static int copy_table(PyObject *obj, void *dst, Py_ssize_t bytes, const char *name) {
    Buf b = {0};
    if (get_buf(obj, &b, name) < 0) return -1;
    if (b.view.len != bytes) {
        release(&b);
        PyErr_Format(PyExc_ValueError, "%s: expected %zd bytes", name, bytes);
        return -1;
    }
    memcpy(dst, b.view.buf, bytes);
    release(&b);
    return 0;
}

static PyObject *init_deflate(PyObject *self, PyObject *args) {
    PyObject *o[8];
    Tables t;
    if (!PyArg_ParseTuple(args, "OOOOOOOO:init_deflate", &o[0], &o[1], &o[2], &o[3], &o[4],
                          &o[5], &o[6], &o[7]))
        return NULL;
    if (copy_table(o[0], t.kind, 512, "kind") < 0 || copy_table(o[1], t.width, 512, "width") < 0 ||
        copy_table(o[2], t.length, 512 * 8, "length") < 0 ||
        copy_table(o[3], t.length_extra, 29 * 8, "length_extra") < 0 ||
        copy_table(o[4], t.length_base, 29 * 8, "length_base") < 0 ||
        copy_table(o[5], t.dist_extra, 32 * 8, "dist_extra") < 0 ||
        copy_table(o[6], t.dist_base, 32 * 8, "dist_base") < 0 ||
        copy_table(o[7], t.reversed5, 32 * 8, "reversed5") < 0)
        return NULL;
    for (int i = 0; i < 512; i++) {
        if (t.kind[i] > 3 || t.width[i] > 9 || t.length[i] < 0 || t.length[i] > 28)
            return PyErr_Format(PyExc_ValueError, "fixed tables: entry %d out of range", i);
    }
    for (int i = 0; i < 32; i++) {
        if (t.reversed5[i] < 0 || t.reversed5[i] > 31 || t.dist_extra[i] < 0 ||
            t.dist_extra[i] > 13 || (i < 29 && (t.length_extra[i] < 0 || t.length_extra[i] > 5)))
            return PyErr_Format(PyExc_ValueError,
                                "length/distance tables: entry %d out of range", i);
    }
    t.ready = 1;
    T = t;
    Py_RETURN_NONE;
}

/* ``count`` (<= 25) bits of a padded row read LSB first from bit ``at`` (at <= 8 * 32). */
static inline int64_t row_bits(const uint8_t *row, int64_t at, int count) {
    int64_t b = at >> 3;
    uint32_t word = (uint32_t)row[b] | ((uint32_t)row[b + 1] << 8) | ((uint32_t)row[b + 2] << 16) |
                    ((uint32_t)row[b + 3] << 24);
    return (int64_t)((word >> (at & 7)) & ((1u << count) - 1));
}

/* One row of PLAUSIBLE_ROW bytes (the first PLAUSIBLE_BYTES of the stream, zeros after).
 * ``strict``: a fixed block's codes are checked as long as a whole code (at most 32 bits with
 * its extra bits) fits in the row, not only the first FIXED_CODES_CHECKED: still only what
 * zlib rejects, for a caller that inflates exactly these bytes (see plausible_at). */
static int plausible_row_as(const uint8_t *row, int strict) {
    int btype = (row[0] >> 1) & 3;
    if (btype == 0)
        return (((unsigned)row[1] | ((unsigned)row[2] << 8)) ^
                ((unsigned)row[3] | ((unsigned)row[4] << 8))) == 0xFFFF;
    if (btype == 3) return 0;
    if (btype == 2) {
        int64_t hlit = row_bits(row, 3, 5), hdist = row_bits(row, 8, 5);
        int64_t hclen = row_bits(row, 13, 4) + 4, kraft = 0;
        for (int i = 0; i < 19; i++) {
            int64_t length = row_bits(row, 17 + 3 * i, 3);
            if (i < hclen && length > 0) kraft += 128 >> length;
        }
        return hlit <= 29 && hdist <= 29 && (kraft == 128 || kraft == 0);
    }
    /* fixed Huffman: the first FIXED_CODES_CHECKED codes (strict: all that fit) */
    int64_t at = 3, out = 0;
    for (int c = 0; strict ? at + 32 <= 8 * PLAUSIBLE_BYTES : c < FIXED_CODES_CHECKED; c++) {
        int64_t peek = row_bits(row, at, 9);
        int kind = T.kind[peek];
        at += T.width[peek];
        int64_t index = T.length[peek];
        int64_t extra = T.length_extra[index];
        int64_t copy = T.length_base[index] + row_bits(row, at, 5) % ((int64_t)1 << extra);
        if (kind == 2) at += extra;
        int64_t dcode = T.reversed5[row_bits(row, at, 5)];
        if (kind == 2) at += 5;
        int64_t dextra = T.dist_extra[dcode];
        int64_t dat = at < 8 * PLAUSIBLE_BYTES - 8 ? at : 8 * PLAUSIBLE_BYTES - 8;
        int64_t distance = T.dist_base[dcode] + row_bits(row, dat, 13) % ((int64_t)1 << dextra);
        if (kind == 2) at += dextra;
        if (kind == 3 || (kind == 2 && distance > out)) return 0;
        out += kind == 0 ? 1 : (kind == 2 ? copy : 0);
        if (kind == 1) return 1; /* end of block: nothing further to check */
        if (!strict && at > 8 * PLAUSIBLE_BYTES - 25) at = 8 * PLAUSIBLE_BYTES - 25;
    }
    return 1;
}

static int plausible_row(const uint8_t *row) { return plausible_row_as(row, 0); }

static int need_tables(void) {
    if (!T.ready) {
        PyErr_SetString(PyExc_RuntimeError, "init_deflate() was not called");
        return -1;
    }
    return 0;
}

/* The row read from bit offset ``bit`` of ``s`` (zeros past its end). */
static void fill_row(const uint8_t *s, Py_ssize_t n, int64_t bit, uint8_t *row, Py_ssize_t width) {
    Py_ssize_t at = (Py_ssize_t)(bit >> 3);
    int shift = (int)(bit & 7);
    for (Py_ssize_t k = 0; k < width; k++)
        row[k] = shift ? (uint8_t)shifted_byte(s, n, at + k, shift) : (uint8_t)byte_at(s, n, at + k);
}

static PyObject *plausible_rows(PyObject *self, PyObject *args) {
    PyObject *heads_o, *out = NULL;
    Py_ssize_t width;
    Buf h = {0};
    if (!PyArg_ParseTuple(args, "On:plausible_rows", &heads_o, &width)) return NULL;
    if (need_tables() < 0) return NULL;
    if (width < 1) return PyErr_Format(PyExc_ValueError, "width: must be >= 1");
    if (get_buf(heads_o, &h, "heads") < 0) return NULL;
    if (h.view.len % width) {
        PyErr_Format(PyExc_ValueError, "heads: not a whole number of rows of width %zd", width);
        goto done;
    }
    {
        Py_ssize_t rows = h.view.len / width, take = width < PLAUSIBLE_BYTES ? width : PLAUSIBLE_BYTES;
        out = PyBytes_FromStringAndSize(NULL, rows);
        if (out == NULL) goto done;
        uint8_t *o = (uint8_t *)PyBytes_AS_STRING(out);
        const uint8_t *src = h.view.buf;
        uint8_t row[PLAUSIBLE_ROW];
        for (Py_ssize_t i = 0; i < rows; i++) {
            memset(row, 0, sizeof row);
            memcpy(row, src + i * width, take);
            o[i] = (uint8_t)plausible_row(row);
        }
    }
done:
    release(&h);
    return out;
}

static int check_starts(const Buf *b, const char *name) {
    if (b->view.len % 8) {
        PyErr_Format(PyExc_ValueError, "%s: not a whole number of int64", name);
        return -1;
    }
    for (Py_ssize_t i = 0; i < b->view.len / 8; i++) {
        int64_t v = load_i64(b->view.buf, i);
        if (v < 0 || v > ((int64_t)PY_SSIZE_T_MAX >> 4)) {
            PyErr_Format(PyExc_ValueError, "%s: entry %zd out of range", name, i);
            return -1;
        }
    }
    return 0;
}

static PyObject *plausible_at(PyObject *self, PyObject *args) {
    PyObject *stream_o, *starts_o, *out = NULL;
    int strict;
    Buf st = {0}, bs = {0};
    if (!PyArg_ParseTuple(args, "OOp:plausible_at", &stream_o, &starts_o, &strict)) return NULL;
    if (need_tables() < 0) return NULL;
    if (get_buf(stream_o, &st, "stream") < 0 || get_buf(starts_o, &bs, "bit_starts") < 0 ||
        check_starts(&bs, "bit_starts") < 0)
        goto done;
    {
        Py_ssize_t count = bs.view.len / 8;
        out = PyBytes_FromStringAndSize(NULL, count);
        if (out == NULL) goto done;
        uint8_t *o = (uint8_t *)PyBytes_AS_STRING(out);
        uint8_t row[PLAUSIBLE_ROW];
        for (Py_ssize_t i = 0; i < count; i++) {
            memset(row, 0, sizeof row);
            fill_row(st.view.buf, st.view.len, load_i64(bs.view.buf, i), row, PLAUSIBLE_BYTES);
            o[i] = (uint8_t)plausible_row_as(row, strict);
        }
    }
done:
    release(&st);
    release(&bs);
    return out;
}

/* --- radix._heads / radix.shifted ----------------------------------------------------------- */

static PyObject *heads(PyObject *self, PyObject *args) {
    PyObject *stream_o, *starts_o, *out = NULL;
    Py_ssize_t width;
    Buf st = {0}, bs = {0};
    if (!PyArg_ParseTuple(args, "OOn:heads", &stream_o, &starts_o, &width)) return NULL;
    if (width < 0 || width > (1 << 20)) return PyErr_Format(PyExc_ValueError, "width: 0..2**20");
    if (get_buf(stream_o, &st, "stream") < 0 || get_buf(starts_o, &bs, "bit_starts") < 0 ||
        check_starts(&bs, "bit_starts") < 0)
        goto done;
    {
        Py_ssize_t count = bs.view.len / 8;
        if (count && width > PY_SSIZE_T_MAX / count) {
            PyErr_NoMemory();
            goto done;
        }
        out = PyBytes_FromStringAndSize(NULL, count * width);
        if (out == NULL) goto done;
        uint8_t *o = (uint8_t *)PyBytes_AS_STRING(out);
        for (Py_ssize_t i = 0; i < count; i++)
            fill_row(st.view.buf, st.view.len, load_i64(bs.view.buf, i), o + i * width, width);
    }
done:
    release(&st);
    release(&bs);
    return out;
}

static PyObject *shifted(PyObject *self, PyObject *args) {
    PyObject *stream_o, *out = NULL;
    int shift;
    Py_ssize_t lo, hi;
    Buf st = {0};
    if (!PyArg_ParseTuple(args, "Oinn:shifted", &stream_o, &shift, &lo, &hi)) return NULL;
    if (shift < 0 || shift > 7) return PyErr_Format(PyExc_ValueError, "shift: must be 0..7");
    if (lo < 0) return PyErr_Format(PyExc_ValueError, "lo: must be >= 0");
    if (get_buf(stream_o, &st, "stream") < 0) return NULL;
    {
        const uint8_t *s = st.view.buf;
        Py_ssize_t n = st.view.len;
        if (hi > n) hi = n;
        Py_ssize_t len = hi > lo ? hi - lo : 0;
        out = PyBytes_FromStringAndSize(NULL, len);
        if (out != NULL) {
            uint8_t *o = (uint8_t *)PyBytes_AS_STRING(out);
            if (shift == 0) {
                if (len) memcpy(o, s + lo, len);
            } else {
                const uint8_t *p = s + lo;
                Py_ssize_t inner = lo + len < n ? len : len - 1; /* B[lo+i+1] exists */
                for (Py_ssize_t i = 0; i < inner; i++)
                    o[i] = (uint8_t)((p[i] << shift) | (p[i + 1] >> (8 - shift)));
                if (len > 0 && inner < len) o[len - 1] = (uint8_t)(p[len - 1] << shift);
            }
        }
    }
    release(&st);
    return out;
}

/* --- radix._exact_magics ------------------------------------------------------------------- */

typedef struct {
    const uint8_t *magic[MAX_MAGICS];
    Py_ssize_t len[MAX_MAGICS], count, longest;
} Magics;

static int parse_magics(PyObject *tuple, Magics *m) {
    if (!PyTuple_Check(tuple)) {
        PyErr_SetString(PyExc_TypeError, "magics: a tuple of bytes");
        return -1;
    }
    m->count = PyTuple_GET_SIZE(tuple);
    m->longest = 0;
    if (m->count > MAX_MAGICS) {
        PyErr_SetString(PyExc_ValueError, "magics: at most 64");
        return -1;
    }
    for (Py_ssize_t i = 0; i < m->count; i++) {
        PyObject *b = PyTuple_GET_ITEM(tuple, i);
        if (!PyBytes_Check(b) || PyBytes_GET_SIZE(b) < 1 || PyBytes_GET_SIZE(b) > MAX_MAGIC) {
            PyErr_SetString(PyExc_ValueError, "magics: bytes of 1..16");
            return -1;
        }
        m->magic[i] = (const uint8_t *)PyBytes_AS_STRING(b);
        m->len[i] = PyBytes_GET_SIZE(b);
        if (m->len[i] > m->longest) m->longest = m->len[i];
    }
    return 0;
}

/* Whether a magic's fixed bytes are all there at byte ``a`` (0 <= a < n), shift ``shift`` of
 * the stream, and, for a zlib magic, its deflate data (after it, or reversed before it) starts
 * plausibly where all of it lies inside the stream. */
static int magic_at(const uint8_t *s, Py_ssize_t n, Py_ssize_t a, int shift, const Magics *mg) {
    uint8_t window[MAX_MAGIC], row[PLAUSIBLE_ROW];
    for (Py_ssize_t k = 0; k < mg->longest; k++) { /* positions clipped to the last pair */
        Py_ssize_t m = a + k < n - 1 ? a + k : n - 1;
        window[k] = (uint8_t)shifted_byte(s, n, m, shift);
    }
    int found = 0, forward = 0, backward = 0;
    for (Py_ssize_t j = 0; j < mg->count; j++) {
        if (memcmp(window, mg->magic[j], mg->len[j]) != 0) continue;
        found = 1;
        if (mg->len[j] == 2) {
            if (mg->magic[j][0] == 0x78) forward = 1; else backward = 1;
        }
    }
    if (found && forward != backward) {
        memset(row, 0, sizeof row);
        int inside;
        if (forward) {
            inside = a + 2 + PLAUSIBLE_BYTES - 1 < n;
            for (Py_ssize_t k = 0; inside && k < PLAUSIBLE_BYTES; k++)
                row[k] = (uint8_t)shifted_byte(s, n, a + 2 + k, shift);
        } else {
            inside = a - PLAUSIBLE_BYTES >= 0;
            for (Py_ssize_t k = 0; inside && k < PLAUSIBLE_BYTES; k++)
                row[k] = (uint8_t)shifted_byte(s, n, a - 1 - k, shift);
        }
        if (inside && !plausible_row(row)) found = 0;
    }
    return found;
}

static PyObject *exact_magics(PyObject *self, PyObject *args) {
    PyObject *stream_o, *at_o, *magics_o, *out = NULL;
    int shift;
    Buf st = {0}, ab = {0};
    Magics mg;
    if (!PyArg_ParseTuple(args, "OOiO:exact_magics", &stream_o, &at_o, &shift, &magics_o))
        return NULL;
    if (need_tables() < 0) return NULL;
    if (shift < 0 || shift > 7) return PyErr_Format(PyExc_ValueError, "shift: must be 0..7");
    if (parse_magics(magics_o, &mg) < 0) return NULL;
    if (get_buf(stream_o, &st, "stream") < 0 || get_buf(at_o, &ab, "at") < 0 ||
        check_starts(&ab, "at") < 0)
        goto done;
    {
        const uint8_t *s = st.view.buf;
        Py_ssize_t n = st.view.len, count = ab.view.len / 8, kept = 0;
        out = PyBytes_FromStringAndSize(NULL, count * 8);
        if (out == NULL) goto done;
        uint8_t *o = (uint8_t *)PyBytes_AS_STRING(out);
        for (Py_ssize_t i = 0; i < count; i++) {
            int64_t a = load_i64(ab.view.buf, i);
            if (a >= n) {
                PyErr_Format(PyExc_ValueError, "at: entry %zd past the stream", i);
                Py_CLEAR(out);
                goto done;
            }
            if (magic_at(s, n, (Py_ssize_t)a, shift, &mg)) {
                memcpy(o + kept * 8, &a, 8);
                kept++;
            }
        }
        if (_PyBytes_Resize(&out, kept * 8) < 0) out = NULL;
    }
done:
    release(&st);
    release(&ab);
    return out;
}

/* --- radix._nested_shifted, whole: the candidates of every shift ---------------------------- */

/* Union of [m, m + width) over ascending starts, as a list of (lo, hi). */
static int add_run(PyObject *runs, Py_ssize_t *lo, Py_ssize_t *hi, Py_ssize_t m, Py_ssize_t width) {
    if (*hi >= 0 && m <= *hi) {
        *hi = m + width;
        return 0;
    }
    if (*hi >= 0) {
        PyObject *t = Py_BuildValue("(nn)", *lo, *hi);
        if (t == NULL || PyList_Append(runs, t) < 0) {
            Py_XDECREF(t);
            return -1;
        }
        Py_DECREF(t);
    }
    *lo = m;
    *hi = m + width;
    return 0;
}

static int close_runs(PyObject *runs, Py_ssize_t lo, Py_ssize_t hi) {
    return hi >= 0 ? add_run(runs, &lo, &hi, PY_SSIZE_T_MAX / 2, 0) : 0;
}

static PyObject *nested_candidates(PyObject *self, PyObject *args) {
    PyObject *stream_o, *at_o = NULL, *flags_o = NULL, *result = NULL, *pc_args = NULL;
    PyObject *t_o, *z_o, *f_o, *s_o, *magics_o;
    unsigned int shifts;
    Magics mg;
    Buf st = {0};
    if (!PyArg_ParseTuple(args, "OIOOOOO:nested_candidates", &stream_o, &shifts, &t_o, &z_o,
                          &f_o, &s_o, &magics_o))
        return NULL;
    if (need_tables() < 0 || parse_magics(magics_o, &mg) < 0) return NULL;
    pc_args = Py_BuildValue("(OIOOOO)", stream_o, shifts, t_o, z_o, f_o, s_o);
    if (pc_args == NULL) return NULL;
    PyObject *pc = pair_candidates(self, pc_args);
    Py_DECREF(pc_args);
    if (pc == NULL) return NULL;
    at_o = PyTuple_GET_ITEM(pc, 0);
    flags_o = PyTuple_GET_ITEM(pc, 1);
    if (get_buf(stream_o, &st, "stream") < 0) goto done;
    result = PyList_New(0);
    if (result == NULL) goto done;
    {
        const uint8_t *s = st.view.buf, *at_p = (const uint8_t *)PyBytes_AS_STRING(at_o),
                      *fl_p = (const uint8_t *)PyBytes_AS_STRING(flags_o);
        Py_ssize_t n = st.view.len, count = PyBytes_GET_SIZE(at_o) / 8;
        for (int sh = 0; sh < 8; sh++) {
            if (!(shifts & (1u << sh))) continue;
            PyObject *text = PyList_New(0), *wide = PyList_New(0), *magic = PyList_New(0);
            PyObject *entry = NULL;
            Py_ssize_t tlo = -1, thi = -1, wlo = -1, whi = -1;
            int failed = text == NULL || wide == NULL || magic == NULL;
            for (Py_ssize_t i = 0; !failed && i < count; i++) {
                int64_t m;
                uint32_t flag;
                memcpy(&m, at_p + i * 8, 8);
                memcpy(&flag, fl_p + i * 4, 4);
                if ((flag >> sh) & 1)
                    failed |= add_run(text, &tlo, &thi, (Py_ssize_t)m, TEXT_RUN) < 0;
                if ((flag >> (sh + 8)) & 1)
                    failed |= add_run(wide, &wlo, &whi, m >= 4 ? (Py_ssize_t)m - 4 : 0, 24) < 0;
                if (((flag >> (sh + 16)) & 1) && magic_at(s, n, (Py_ssize_t)m, sh, &mg)) {
                    PyObject *v = PyLong_FromSsize_t((Py_ssize_t)m);
                    failed |= v == NULL || PyList_Append(magic, v) < 0;
                    Py_XDECREF(v);
                }
            }
            if (!failed) failed = close_runs(text, tlo, thi) < 0 || close_runs(wide, wlo, whi) < 0;
            if (!failed) entry = Py_BuildValue("(iOOO)", sh, text, wide, magic);
            Py_XDECREF(text);
            Py_XDECREF(wide);
            Py_XDECREF(magic);
            if (entry == NULL || PyList_Append(result, entry) < 0) {
                Py_XDECREF(entry);
                Py_CLEAR(result);
                goto done;
            }
            Py_DECREF(entry);
        }
    }
done:
    Py_DECREF(pc);
    release(&st);
    return result;
}

/* --- radix.pack / radix.base85_alignments ---------------------------------------------------- */

static PyObject *pack(PyObject *self, PyObject *args) {
    PyObject *values_o, *out = NULL;
    int bits;
    Buf v = {0};
    if (!PyArg_ParseTuple(args, "Oi:pack", &values_o, &bits)) return NULL;
    if (bits != 1 && bits != 4 && bits != 5 && bits != 6)
        return PyErr_Format(PyExc_ValueError, "bits: 1, 4, 5 or 6");
    if (get_buf(values_o, &v, "values") < 0) return NULL;
    {
        Py_ssize_t group = bits == 4 ? 2 : (bits == 6 ? 4 : 8);
        Py_ssize_t n = v.view.len, padded = n + (group - n % group) % group;
        Py_ssize_t size = padded / group * (group * bits / 8);
        out = PyBytes_FromStringAndSize(NULL, size);
        if (out != NULL) {
            uint8_t *o = (uint8_t *)PyBytes_AS_STRING(out);
            const uint8_t *src = v.view.buf;
            uint32_t acc = 0, mask = (1u << bits) - 1;
            int have = 0;
            Py_ssize_t w = 0;
            for (Py_ssize_t i = 0; i < padded; i++) {
                acc = (acc << bits) | (i < n ? (src[i] & mask) : 0);
                have += bits;
                if (have >= 8) {
                    have -= 8;
                    if (w < size) o[w++] = (uint8_t)(acc >> have);
                    acc &= (1u << have) - 1;
                }
            }
        }
    }
    release(&v);
    return out;
}

static PyObject *base85_alignments(PyObject *self, PyObject *args) {
    PyObject *values_o, *out = NULL;
    Buf v = {0};
    if (!PyArg_ParseTuple(args, "O:base85_alignments", &values_o)) return NULL;
    if (get_buf(values_o, &v, "values") < 0) return NULL;
    out = PyList_New(0);
    if (out == NULL || v.view.len < 5) goto done;
    {
        const uint8_t *src = v.view.buf;
        Py_ssize_t n = v.view.len;
        for (Py_ssize_t k = 0; k < 5; k++) {
            Py_ssize_t words = (n - k + 4) / 5; /* i = k, k + 5, ... < n */
            PyObject *b = PyBytes_FromStringAndSize(NULL, words * 4);
            if (b == NULL || PyList_Append(out, b) < 0) {
                Py_XDECREF(b);
                Py_CLEAR(out);
                goto done;
            }
            uint8_t *o = (uint8_t *)PyBytes_AS_STRING(b);
            for (Py_ssize_t w = 0; w < words; w++) {
                Py_ssize_t i = k + 5 * w;
                uint32_t word = 0;
                for (Py_ssize_t j = 0; j < 5; j++) /* past the end: the highest symbol, 84 */
                    word = word * 85u + (i + j < n ? (uint32_t)src[i + j] : 84u);
                o[4 * w] = (uint8_t)(word >> 24);
                o[4 * w + 1] = (uint8_t)(word >> 16);
                o[4 * w + 2] = (uint8_t)(word >> 8);
                o[4 * w + 3] = (uint8_t)word;
            }
            Py_DECREF(b);
        }
    }
done:
    release(&v);
    return out;
}

/* --- radix.symbols: the symbols of the long-enough regions of a span ------------------------ */

/* One pass over ``src``: separators (``deleted[c]``) dropped, every other byte its value or
 * 0xFF (a break); regions (runs between breaks) of fewer than ``min_symbols`` symbols dropped.
 * Fills ``values`` (and ``where``, the src offset of each kept symbol, if not NULL), ``firsts``
 * and ``counts`` (one per kept region); returns the number of kept symbols. */
static Py_ssize_t scan_symbols(const uint8_t *src, Py_ssize_t n, const uint8_t *value,
                               const uint8_t *deleted, Py_ssize_t min_symbols, uint8_t *values,
                               int64_t *where, int64_t *firsts, int64_t *counts,
                               Py_ssize_t *regions) {
    Py_ssize_t kept = 0, current = 0;
    *regions = 0;
    for (Py_ssize_t i = 0; i <= n; i++) {
        uint8_t v;
        if (i < n) {
            if (deleted[src[i]]) continue;
            v = value[src[i]];
        } else {
            v = 0xFF; /* the end closes the last region */
        }
        if (v == 0xFF) {
            if (current >= min_symbols) {
                firsts[*regions] = kept;
                counts[*regions] = current;
                (*regions)++;
                kept += current;
            }
            current = 0;
            continue;
        }
        values[kept + current] = v;
        if (where != NULL) where[kept + current] = i;
        current++;
    }
    return kept;
}

static PyObject *symbols(PyObject *self, PyObject *args) {
    PyObject *src_o, *value_o, *deleted_o, *result = NULL;
    Py_ssize_t min_symbols;
    int with_offsets;
    Buf src = {0}, vt = {0}, dt = {0};
    uint8_t *values = NULL;
    int64_t *where = NULL, *firsts = NULL, *counts = NULL;
    if (!PyArg_ParseTuple(args, "OOOnp:symbols", &src_o, &value_o, &deleted_o, &min_symbols,
                          &with_offsets))
        return NULL;
    if (get_buf(src_o, &src, "data") < 0 || get_buf(value_o, &vt, "value_table") < 0 ||
        get_buf(deleted_o, &dt, "deleted") < 0)
        goto done;
    if (vt.view.len != 256 || dt.view.len != 256) {
        PyErr_SetString(PyExc_ValueError, "value_table, deleted: 256 bytes each");
        goto done;
    }
    {
        Py_ssize_t n = src.view.len, regions = 0, cap = n > 0 ? n : 1;
        values = PyMem_Malloc(cap);
        firsts = PyMem_Malloc(cap * sizeof(int64_t));
        counts = PyMem_Malloc(cap * sizeof(int64_t));
        where = with_offsets ? PyMem_Malloc(cap * sizeof(int64_t)) : NULL;
        if (values == NULL || firsts == NULL || counts == NULL || (with_offsets && where == NULL)) {
            PyErr_NoMemory();
            goto done;
        }
        Py_ssize_t kept = scan_symbols(src.view.buf, n, vt.view.buf, dt.view.buf, min_symbols,
                                       values, where, firsts, counts, &regions);
        if (regions == 0) {
            result = Py_None;
            Py_INCREF(result);
            goto done;
        }
        result = Py_BuildValue("(y#y#y#y#)", (const char *)values, kept, (const char *)firsts,
                               regions * (Py_ssize_t)sizeof(int64_t), (const char *)counts,
                               regions * (Py_ssize_t)sizeof(int64_t),
                               with_offsets ? (const char *)where : "",
                               with_offsets ? kept * (Py_ssize_t)sizeof(int64_t) : 0);
    }
done:
    PyMem_Free(values);
    PyMem_Free(where);
    PyMem_Free(firsts);
    PyMem_Free(counts);
    release(&src);
    release(&vt);
    release(&dt);
    return result;
}

/* --- decoders._zero_lanes_possible --------------------------------------------------------- */

static PyObject *zero_lanes(PyObject *self, PyObject *args) {
    PyObject *data_o;
    Buf d = {0};
    if (!PyArg_ParseTuple(args, "O:zero_lanes", &data_o)) return NULL;
    if (get_buf(data_o, &d, "data") < 0) return NULL;
    const uint8_t *p = d.view.buf;
    Py_ssize_t n = d.view.len, last = -1000, close = 0;
    int found = 0;
    for (Py_ssize_t i = 0; i < n && !found; i++) {
        if (p[i]) continue;
        close = (last >= 0 && i - last <= 4) ? close + 1 : 0;
        last = i;
        found = close >= 7; /* 8 zeros, each within 4 bytes of the next */
    }
    release(&d);
    return PyBool_FromLong(found);
}

/* --- decoders._numbers: the runs a byte list can be in ---------------------------------------- */

static PyObject *number_runs(PyObject *self, PyObject *args) {
    PyObject *data_o, *table_o, *out = NULL;
    Py_ssize_t shortest, fewest;
    Buf d = {0}, t = {0};
    if (!PyArg_ParseTuple(args, "OOnn:number_runs", &data_o, &table_o, &shortest, &fewest))
        return NULL;
    if (get_buf(data_o, &d, "data") < 0 || get_buf(table_o, &t, "table") < 0) goto done;
    if (t.view.len != 256) {
        PyErr_SetString(PyExc_ValueError, "table: 256 bytes");
        goto done;
    }
    out = PyList_New(0);
    if (out == NULL) goto done;
    {
        const uint8_t *p = d.view.buf, *cls = t.view.buf;
        Py_ssize_t n = d.view.len, start = -1, groups = 0;
        int prev_digit = 0;
        for (Py_ssize_t i = 0; i <= n; i++) {
            uint8_t c = i < n ? cls[p[i]] : 0; /* 2: a digit, 1: a sign or separator */
            if (c == 0) {
                if (start >= 0 && i - start >= shortest && groups >= fewest) {
                    PyObject *r = Py_BuildValue("(nn)", start, i);
                    if (r == NULL || PyList_Append(out, r) < 0) {
                        Py_XDECREF(r);
                        Py_CLEAR(out);
                        goto done;
                    }
                    Py_DECREF(r);
                }
                start = -1;
                groups = 0;
                prev_digit = 0;
                continue;
            }
            if (start < 0) start = i;
            if (c == 2 && !prev_digit) groups++;
            prev_digit = c == 2;
        }
    }
done:
    release(&d);
    release(&t);
    return out;
}

/* --- radix._nested_aligned: runs of text-like bytes ------------------------------------------ */

static PyObject *table_runs(PyObject *self, PyObject *args) {
    PyObject *data_o, *table_o, *out = NULL;
    Py_ssize_t shortest;
    Buf d = {0}, t = {0};
    if (!PyArg_ParseTuple(args, "OOn:table_runs", &data_o, &table_o, &shortest)) return NULL;
    if (shortest < 1) return PyErr_Format(PyExc_ValueError, "shortest: must be >= 1");
    if (get_buf(data_o, &d, "data") < 0 || get_buf(table_o, &t, "table") < 0) goto done;
    if (t.view.len != 256) {
        PyErr_SetString(PyExc_ValueError, "table: 256 bytes");
        goto done;
    }
    out = PyList_New(0);
    if (out == NULL) goto done;
    {
        const uint8_t *p = d.view.buf, *cls = t.view.buf;
        Py_ssize_t n = d.view.len, i = 0; /* invariant: i == 0 or p[i - 1] is not in a run */
        while (shortest <= n - i) {
            Py_ssize_t last = i + shortest - 1, j = last;
            while (j >= i && cls[p[j]]) j--; /* the last byte of [i, last] outside the table */
            if (j >= i) { /* no run can start at or before j: skip past it */
                i = j + 1;
                continue;
            }
            Py_ssize_t end = last + 1;
            while (end < n && cls[p[end]]) end++;
            PyObject *r = Py_BuildValue("(nn)", i, end);
            if (r == NULL || PyList_Append(out, r) < 0) {
                Py_XDECREF(r);
                Py_CLEAR(out);
                goto done;
            }
            Py_DECREF(r);
            i = end + 1;
        }
    }
done:
    release(&d);
    release(&t);
    return out;
}

/* --- the module ---------------------------------------------------------------------------- */

static PyMethodDef methods[] = {
    {"window_candidates", window_candidates, METH_VARARGS,
     "(data, stride, filter, bits, keys, near, near_bits) -> [(q, lo, hi)]: matcher windows that pass the filter "
     "and are in the sorted keys (keys[lo:hi] equal the window at data offset q)."},
    {"near_filter", near_filter, METH_VARARGS,
     "(keys, bits) -> the 2**bits-bit blocked Bloom filter window_candidates reads first."},
    {"pair_candidates", pair_candidates, METH_VARARGS,
     "(stream, shifts, text_pairs, zero_pairs, magic_first, magic_second) -> (at, flags): "
     "int64 offsets and uint32 flags (text | wide << 8 | magic << 16) where any is set."},
    {"init_deflate", init_deflate, METH_VARARGS,
     "The fixed-Huffman and length/distance tables of decoders.deflate_plausible."},
    {"plausible_rows", plausible_rows, METH_VARARGS,
     "(heads, width) -> one 0/1 byte per row: deflate_plausible for every row."},
    {"plausible_at", plausible_at, METH_VARARGS,
     "(stream, bit_starts, strict) -> one 0/1 byte per start: deflate_plausible of the stream "
     "read from each bit offset (strict: every fixed-Huffman code that fits, for a caller that "
     "inflates exactly the stream)."},
    {"heads", heads, METH_VARARGS,
     "(stream, bit_starts, width) -> rows of width bytes read from each bit offset."},
    {"shifted", shifted, METH_VARARGS, "(stream, shift, lo, hi) -> bytes lo..hi read from bit shift."},
    {"nested_candidates", nested_candidates, METH_VARARGS,
     "(stream, shifts, text_pairs, zero_pairs, magic_first, magic_second, magics) -> "
     "[(shift, text runs [(lo, hi)], wide runs [(lo, hi)], exact magic offsets)]."},
    {"symbols", symbols, METH_VARARGS,
     "(data, value_table, deleted, min_symbols, with_offsets) -> None | (values, firsts, counts,"
     " offsets): the symbols of every region of at least min_symbols (int64 arrays as bytes)."},
    {"zero_lanes", zero_lanes, METH_VARARGS,
     "(data) -> whether 8 zero bytes lie each within 4 bytes of the next."},
    {"number_runs", number_runs, METH_VARARGS,
     "(data, table, shortest, fewest) -> [(lo, hi)]: runs of table-nonzero bytes at least "
     "shortest long holding at least fewest groups of digits (table value 2)."},
    {"table_runs", table_runs, METH_VARARGS,
     "(data, table, shortest) -> [(lo, hi)]: maximal runs of bytes with a nonzero table entry, "
     "at least shortest long."},
    {"pack", pack, METH_VARARGS, "(values, bits) -> symbols packed into bytes from the first bit."},
    {"base85_alignments", base85_alignments, METH_VARARGS,
     "(values) -> the base85 stream decoded from each of its first five symbols."},
    {"exact_magics", exact_magics, METH_VARARGS,
     "(stream, at, shift, magics) -> int64 candidates where a magic is all there."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_fast",
    "The oracle's hot paths in C (semafore/oracle/native.py; docs/oracle.md \"Cost\").", -1,
    methods,
};

PyMODINIT_FUNC PyInit__fast(void) {
    PyObject *m = PyModule_Create(&module);
    if (m == NULL) return NULL;
    if (PyModule_AddIntConstant(m, "API", API_VERSION) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
