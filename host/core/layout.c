#include "layout.h"

#include <errno.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

/* The alignment a type gets as a struct member. On some ABIs this differs from _Alignof (on
 * i386, _Alignof(double) is 8 but a double member is aligned to 4), and a layout must match
 * what the compiler does inside a struct, so measure it there. */
#define MEMBER_ALIGN(T) offsetof(struct { char c_; T x_; }, x_)
/* -1 converted to T halves to 0 only when T is signed (written so, not as "< 0", to keep
 * -Wtype-limits quiet about the unsigned types). */
#define SIGNED_KIND(T) (((T)-1 / 2 == 0) ? SHMH_LK_INT : SHMH_LK_UINT)

#define INTEGER(name, cname, header, T) \
  { name, cname, header, SIGNED_KIND(T), sizeof(T), MEMBER_ALIGN(T) }
#define OTHER(name, cname, header, kind, T) \
  { name, cname, header, kind, sizeof(T), MEMBER_ALIGN(T) }

static const shmh_ltype types[] = {
  INTEGER("char", "char", NULL, char),
  INTEGER("signed char", "signed char", NULL, signed char),
  INTEGER("unsigned char", "unsigned char", NULL, unsigned char),
  OTHER("bool", "bool", "stdbool.h", SHMH_LK_BOOL, bool),
  INTEGER("int8_t", "int8_t", "stdint.h", int8_t),
  INTEGER("uint8_t", "uint8_t", "stdint.h", uint8_t),
  INTEGER("int16_t", "int16_t", "stdint.h", int16_t),
  INTEGER("uint16_t", "uint16_t", "stdint.h", uint16_t),
  INTEGER("int32_t", "int32_t", "stdint.h", int32_t),
  INTEGER("uint32_t", "uint32_t", "stdint.h", uint32_t),
  INTEGER("int64_t", "int64_t", "stdint.h", int64_t),
  INTEGER("uint64_t", "uint64_t", "stdint.h", uint64_t),
  INTEGER("i8", "int8_t", "stdint.h", int8_t),
  INTEGER("u8", "uint8_t", "stdint.h", uint8_t),
  INTEGER("i16", "int16_t", "stdint.h", int16_t),
  INTEGER("u16", "uint16_t", "stdint.h", uint16_t),
  INTEGER("i32", "int32_t", "stdint.h", int32_t),
  INTEGER("u32", "uint32_t", "stdint.h", uint32_t),
  INTEGER("i64", "int64_t", "stdint.h", int64_t),
  INTEGER("u64", "uint64_t", "stdint.h", uint64_t),
  INTEGER("short", "short", NULL, short),
  INTEGER("unsigned short", "unsigned short", NULL, unsigned short),
  INTEGER("int", "int", NULL, int),
  INTEGER("unsigned", "unsigned int", NULL, unsigned),
  INTEGER("unsigned int", "unsigned int", NULL, unsigned),
  INTEGER("long", "long", NULL, long),
  INTEGER("unsigned long", "unsigned long", NULL, unsigned long),
  INTEGER("long long", "long long", NULL, long long),
  INTEGER("unsigned long long", "unsigned long long", NULL, unsigned long long),
  INTEGER("size_t", "size_t", "stddef.h", size_t),
  INTEGER("ssize_t", "ssize_t", "sys/types.h", ssize_t),
  INTEGER("pid_t", "pid_t", "sys/types.h", pid_t),
  OTHER("float", "float", NULL, SHMH_LK_FLOAT, float),
  OTHER("double", "double", NULL, SHMH_LK_FLOAT, double),
  OTHER("f32", "float", NULL, SHMH_LK_FLOAT, float),
  OTHER("f64", "double", NULL, SHMH_LK_FLOAT, double),
  OTHER("mutex", "pthread_mutex_t", "pthread.h", SHMH_LK_MUTEX, pthread_mutex_t),
  OTHER("pthread_mutex_t", "pthread_mutex_t", "pthread.h", SHMH_LK_MUTEX, pthread_mutex_t),
  OTHER("sem", "sem_t", "semaphore.h", SHMH_LK_SEM, sem_t),
  OTHER("sem_t", "sem_t", "semaphore.h", SHMH_LK_SEM, sem_t),
};
#define NTYPES (sizeof types / sizeof types[0])

/* The order #include lines come out in. */
static const char *const headers[] = {
  "pthread.h", "semaphore.h", "stdbool.h", "stddef.h", "stdint.h", "sys/types.h"
};
#define NHEADERS (sizeof headers / sizeof headers[0])

/* Words that cannot name a member: C11 keywords, and the macros <stdbool.h> defines (the
 * declaration includes it when a layout has a bool). */
static const char *const keywords[] = {
  "auto", "break", "case", "char", "const", "continue", "default", "do", "double", "else",
  "enum", "extern", "float", "for", "goto", "if", "inline", "int", "long", "register",
  "restrict", "return", "short", "signed", "sizeof", "static", "struct", "switch", "typedef",
  "union", "unsigned", "void", "volatile", "while", "_Alignas", "_Alignof", "_Atomic",
  "_Bool", "_Complex", "_Generic", "_Imaginary", "_Noreturn", "_Static_assert",
  "_Thread_local", "bool", "true", "false"
};

const shmh_ltype *shmh_ltype_at(size_t i) { return i < NTYPES ? &types[i] : NULL; }

const shmh_ltype *shmh_ltype_find(const char *name) {
  for (size_t i = 0; i < NTYPES; i++)
    if (strcmp(types[i].name, name) == 0) return &types[i];
  return NULL;
}

static int is_space(char c) { return c == ' ' || c == '\t' || c == '\n'; }
static int is_digit(char c) { return c >= '0' && c <= '9'; }
static int is_ident_start(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}

int shmh_lelem_parse(const char *spec, shmh_lelem *elem, size_t *count) {
  /* The base name with runs of blanks folded to one space, so "unsigned  char" is found. */
  char base[64];
  size_t n = 0;
  const char *p = spec;
  while (is_space(*p)) p++;
  for (; *p != '\0' && *p != '['; p++) {
    if (is_space(*p)) {
      if (n > 0 && base[n - 1] != ' ' && n < sizeof base - 1) base[n++] = ' ';
      continue;
    }
    if (n >= sizeof base - 1) return -EINVAL;
    base[n++] = *p;
  }
  if (n > 0 && base[n - 1] == ' ') n--;
  base[n] = '\0';
  const shmh_ltype *t = shmh_ltype_find(base);
  if (t == NULL) return -EINVAL;

  size_t len = 0;
  int array = 0;
  if (*p == '[') {
    array = 1;
    p++;
    while (is_space(*p)) p++;
    if (*p == '-' || *p == '+') {
      while (*p != '\0' && *p != ']') p++;
      return *p == ']' ? -ERANGE : -EINVAL;
    }
    if (!is_digit(*p)) return -EINVAL;
    for (; is_digit(*p); p++) {
      if (len > SHMH_LAYOUT_MAX / 10) return -ERANGE;
      len = len * 10 + (size_t)(*p - '0');
    }
    while (is_space(*p)) p++;
    if (*p != ']') return -EINVAL;
    p++;
    if (len == 0 || len > SHMH_LAYOUT_MAX) return -ERANGE;
  }
  while (is_space(*p)) p++;
  if (*p != '\0') return -EINVAL; /* trailing text, "int[2][3]" among it */

  *count = 0;
  elem->sub = NULL;
  if (array && strcmp(t->name, "char") == 0) {
    /* char[N] is a C string: one element of N bytes, aligned as char. */
    elem->kind = SHMH_LK_STRING;
    elem->type = NULL;
    elem->size = len;
    elem->align = t->align;
    return 0;
  }
  elem->kind = t->kind;
  elem->type = t;
  elem->size = t->size;
  elem->align = t->align;
  if (array) *count = len;
  return 0;
}

void shmh_lelem_struct(shmh_lelem *elem, const shmh_layout *sub) {
  elem->kind = SHMH_LK_STRUCT;
  elem->type = NULL;
  elem->sub = sub;
  elem->size = sub->size;
  elem->align = sub->align;
}

void shmh_layout_init(shmh_layout *l) { memset(l, 0, sizeof *l); }

void shmh_layout_free(shmh_layout *l) {
  for (size_t i = 0; i < l->nfields; i++) free(l->fields[i].name);
  free(l->fields);
  shmh_layout_init(l);
}

int shmh_layout_name_ok(const char *name) {
  if (!is_ident_start(name[0])) return 0;
  size_t n = 1;
  for (; name[n] != '\0'; n++)
    if (!is_ident_start(name[n]) && !is_digit(name[n])) return 0;
  if (n > 255) return 0;
  for (size_t i = 0; i < sizeof keywords / sizeof keywords[0]; i++)
    if (strcmp(keywords[i], name) == 0) return 0;
  return 1;
}

const shmh_lfield *shmh_layout_field(const shmh_layout *l, const char *name) {
  for (size_t i = 0; i < l->nfields; i++)
    if (strcmp(l->fields[i].name, name) == 0) return &l->fields[i];
  return NULL;
}

int shmh_layout_add(shmh_layout *l, const char *name, const shmh_lelem *elem, size_t count) {
  if (l->finished || !shmh_layout_name_ok(name)) return -EINVAL;
  if (elem->size == 0 || elem->align == 0 || (elem->align & (elem->align - 1)) != 0)
    return -EINVAL;
  if (shmh_layout_field(l, name) != NULL) return -EEXIST;
  size_t n = count ? count : 1;
  if (n > SHMH_LAYOUT_MAX / elem->size) return -EOVERFLOW;
  size_t off = (l->end + elem->align - 1) & ~(elem->align - 1);
  size_t end = off + n * elem->size;
  if (end > SHMH_LAYOUT_MAX) return -EOVERFLOW;
  if (l->nfields == l->cap) {
    size_t ncap = l->cap ? l->cap * 2 : 8;
    shmh_lfield *nf = realloc(l->fields, ncap * sizeof *nf);
    if (nf == NULL) return -ENOMEM;
    l->fields = nf;
    l->cap = ncap;
  }
  char *copy = strdup(name);
  if (copy == NULL) return -ENOMEM;
  shmh_lfield *f = &l->fields[l->nfields++];
  f->name = copy;
  f->elem = *elem;
  f->count = count;
  f->offset = off;
  l->end = end;
  if (elem->align > l->align) l->align = elem->align;
  return 0;
}

int shmh_layout_finish(shmh_layout *l) {
  if (l->nfields == 0) return -EINVAL;
  /* C pads the end of a struct to its alignment, so that in an array of it every element
   * starts aligned. */
  l->size = (l->end + l->align - 1) & ~(l->align - 1);
  l->finished = 1;
  return 0;
}

static void need_headers(const shmh_layout *l, int need[]) {
  for (size_t i = 0; i < l->nfields; i++) {
    const shmh_lelem *e = &l->fields[i].elem;
    if (e->kind == SHMH_LK_STRUCT) need_headers(e->sub, need);
    else if (e->type != NULL && e->type->header != NULL)
      for (size_t h = 0; h < NHEADERS; h++)
        if (strcmp(headers[h], e->type->header) == 0) need[h] = 1;
  }
}

static void write_members(FILE *out, const shmh_layout *l, int depth) {
  for (size_t i = 0; i < l->nfields; i++) {
    const shmh_lfield *f = &l->fields[i];
    int ind = 4 * depth;
    char dim[32] = "";
    if (f->count) snprintf(dim, sizeof dim, "[%zu]", f->count);
    switch (f->elem.kind) {
    case SHMH_LK_STRING:
      fprintf(out, "%*schar %s%s[%zu];\n", ind, "", f->name, dim, f->elem.size);
      break;
    case SHMH_LK_STRUCT:
      fprintf(out, "%*sstruct {\n", ind, "");
      write_members(out, f->elem.sub, depth + 1);
      fprintf(out, "%*s} %s%s;\n", ind, "", f->name, dim);
      break;
    default:
      fprintf(out, "%*s%s %s%s;\n", ind, "", f->elem.type->cname, f->name, dim);
      break;
    }
  }
}

int shmh_layout_cdecl(const shmh_layout *l, const char *name, char **out) {
  if (!l->finished || !shmh_layout_name_ok(name)) return -EINVAL;
  char *text = NULL;
  size_t len = 0;
  FILE *f = open_memstream(&text, &len);
  if (f == NULL) return -ENOMEM;
  int need[NHEADERS] = {0};
  need_headers(l, need);
  int any = 0;
  for (size_t h = 0; h < NHEADERS; h++)
    if (need[h]) {
      fprintf(f, "#include <%s>\n", headers[h]);
      any = 1;
    }
  if (any) fputc('\n', f);
  fprintf(f, "struct %s {\n", name);
  write_members(f, l, 1);
  fprintf(f, "};\n");
  if (ferror(f)) {
    fclose(f);
    free(text);
    return -ENOMEM;
  }
  if (fclose(f) != 0) {
    free(text);
    return -ENOMEM;
  }
  *out = text;
  return 0;
}
