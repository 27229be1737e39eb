/*
 * C-compatible struct layouts: the table of C types a layout may use (sizes and alignments
 * measured by this compiler, never written down by hand), the computation of field offsets
 * with natural alignment the way the platform C compiler does it, and the C declaration of a
 * layout as text. Plain C: the Lua binding (bindings/layout.c) and the C tests share it.
 *
 * A layout is built field by field (shmh_layout_add) and then closed (shmh_layout_finish),
 * which rounds its size up to its alignment, as C pads the end of a struct so that the
 * elements of an array of it stay aligned.
 */
#ifndef SHMHOST_LAYOUT_H
#define SHMHOST_LAYOUT_H

#include <stddef.h>

enum shmh_lkind {
  SHMH_LK_INT = 1, /* a signed integer (char too where char is signed) */
  SHMH_LK_UINT,    /* an unsigned integer */
  SHMH_LK_FLOAT,   /* float or double */
  SHMH_LK_BOOL,    /* C bool */
  SHMH_LK_MUTEX,   /* pthread_mutex_t */
  SHMH_LK_SEM,     /* sem_t */
  SHMH_LK_STRING,  /* char[N]: a C string of at most N-1 bytes and a NUL */
  SHMH_LK_STRUCT   /* a nested layout */
};

/* One C type as scripts name it. */
typedef struct shmh_ltype {
  const char *name;   /* the script's spelling: "int", "u32", "size_t" */
  const char *cname;  /* the C spelling: "int", "uint32_t", "size_t" */
  const char *header; /* the header that declares it, or NULL for a built-in type */
  enum shmh_lkind kind;
  size_t size;
  size_t align; /* its alignment as a struct member */
} shmh_ltype;

typedef struct shmh_layout shmh_layout;

/* What one element of a field is: a scalar type, a C string of `size` bytes, or a layout. */
typedef struct shmh_lelem {
  enum shmh_lkind kind;
  const shmh_ltype *type;   /* scalar kinds; NULL for strings and layouts */
  const shmh_layout *sub;   /* SHMH_LK_STRUCT: borrowed, must outlive the layout using it */
  size_t size;
  size_t align;
} shmh_lelem;

typedef struct shmh_lfield {
  char *name;
  shmh_lelem elem;
  size_t count;  /* number of elements of an array field; 0 for a single element */
  size_t offset; /* from the start of the struct */
} shmh_lfield;

struct shmh_layout {
  shmh_lfield *fields;
  size_t nfields, cap;
  size_t end;   /* where the next field may start, before alignment */
  size_t size;  /* set by shmh_layout_finish */
  size_t align;
  int finished;
};

/* The type table: the type named `name`, or NULL. shmh_ltype_at(i) for i = 0, 1, ... walks
 * the whole table and returns NULL past its end. */
const shmh_ltype *shmh_ltype_find(const char *name);
const shmh_ltype *shmh_ltype_at(size_t i);

/* Parses a type spelling: "int", "unsigned char", "u8[4]", "char[16]". A "char[N]" is one
 * string element; any other "T[N]" is an array of N elements of T (*count = N, else 0).
 * Returns 0, -EINVAL for an unknown type or a malformed spelling, -ERANGE when N is not a
 * positive integer that fits. */
int shmh_lelem_parse(const char *spec, shmh_lelem *elem, size_t *count);

/* An element that is the finished layout `sub`. */
void shmh_lelem_struct(shmh_lelem *elem, const shmh_layout *sub);

void shmh_layout_init(shmh_layout *l);
void shmh_layout_free(shmh_layout *l);

/* Appends a field of `count` elements (0: a single element). Returns 0, -EINVAL when `name`
 * is not a C identifier or is a C keyword (the declaration must compile) or the layout is
 * already finished, -EEXIST for a duplicate name, -EOVERFLOW when the struct would pass
 * SHMH_LAYOUT_MAX bytes, -ENOMEM. */
#define SHMH_LAYOUT_MAX ((size_t)1 << 40)
int shmh_layout_add(shmh_layout *l, const char *name, const shmh_lelem *elem, size_t count);

/* Closes the layout: pads its size to its alignment. -EINVAL when it has no field. */
int shmh_layout_finish(shmh_layout *l);

/* The field named `name` (exact), or NULL. A linear search: bindings keep their own index. */
const shmh_lfield *shmh_layout_field(const shmh_layout *l, const char *name);

/* Whether `name` is a C identifier that is not a keyword (so it can name a struct or a
 * member). */
int shmh_layout_name_ok(const char *name);

/* The C declaration of the layout as `struct NAME { ... };`, preceded by the #include lines
 * its types need, as a malloc'ed string in *out. Nested layouts are written as unnamed struct
 * members, which C lays out as the same struct. Returns 0, -EINVAL for a bad name or an
 * unfinished layout, -ENOMEM. */
int shmh_layout_cdecl(const shmh_layout *l, const char *name, char **out);

#endif
