/* The layout computation against the compiler: every layout built here through the core
 * must agree with offsetof and sizeof of the same struct written in C. */
#include "check.h"
#include "layout.h"

#include <errno.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

static void add(shmh_layout *l, const char *name, const char *spec) {
  shmh_lelem e;
  size_t count;
  CHECK_EQ(shmh_lelem_parse(spec, &e, &count), 0);
  CHECK_EQ(shmh_layout_add(l, name, &e, count), 0);
}

static size_t off(const shmh_layout *l, const char *name) {
  const shmh_lfield *f = shmh_layout_field(l, name);
  CHECK(f != NULL);
  return f->offset;
}

struct day56 {
  pthread_mutex_t lock;
  bool activation;
  int counter;
  char message[256];
};

static void t_day56(void) {
  shmh_layout l;
  shmh_layout_init(&l);
  add(&l, "lock", "mutex");
  add(&l, "activation", "bool");
  add(&l, "counter", "int");
  add(&l, "message", "char[256]");
  CHECK_EQ(shmh_layout_finish(&l), 0);
  CHECK_EQ(off(&l, "lock"), offsetof(struct day56, lock));
  CHECK_EQ(off(&l, "activation"), offsetof(struct day56, activation));
  CHECK_EQ(off(&l, "counter"), offsetof(struct day56, counter));
  CHECK_EQ(off(&l, "message"), offsetof(struct day56, message));
  CHECK_EQ(l.size, sizeof(struct day56));
  CHECK_EQ(l.align, _Alignof(struct day56));
  CHECK_EQ(shmh_layout_field(&l, "message")->elem.kind, SHMH_LK_STRING);
  shmh_layout_free(&l);
}

struct padded {
  char a;
  double b;
  short c;
  sem_t s;
  unsigned char d[3];
  long long e;
  char f;
};

static void t_padding(void) {
  shmh_layout l;
  shmh_layout_init(&l);
  add(&l, "a", "char");
  add(&l, "b", "f64");
  add(&l, "c", "short");
  add(&l, "s", "sem");
  add(&l, "d", "unsigned  char [ 3 ]");
  add(&l, "e", "long long");
  add(&l, "f", "char");
  CHECK_EQ(shmh_layout_finish(&l), 0);
  CHECK_EQ(off(&l, "b"), offsetof(struct padded, b));
  CHECK_EQ(off(&l, "c"), offsetof(struct padded, c));
  CHECK_EQ(off(&l, "s"), offsetof(struct padded, s));
  CHECK_EQ(off(&l, "d"), offsetof(struct padded, d));
  CHECK_EQ(off(&l, "e"), offsetof(struct padded, e));
  CHECK_EQ(off(&l, "f"), offsetof(struct padded, f));
  CHECK_EQ(l.size, sizeof(struct padded));
  CHECK_EQ(shmh_layout_field(&l, "d")->count, 3);
  shmh_layout_free(&l);
}

struct vec3 { float x, y, z; };
struct outer { uint8_t tag; struct vec3 pos; uint16_t n; struct vec3 pts[4]; char names[2][5]; };

static void t_nested(void) {
  shmh_layout v, o;
  shmh_layout_init(&v);
  add(&v, "x", "float");
  add(&v, "y", "float");
  add(&v, "z", "float");
  CHECK_EQ(shmh_layout_finish(&v), 0);
  CHECK_EQ(v.size, sizeof(struct vec3));
  shmh_layout_init(&o);
  add(&o, "tag", "u8");
  shmh_lelem e;
  shmh_lelem_struct(&e, &v);
  CHECK_EQ(shmh_layout_add(&o, "pos", &e, 0), 0);
  add(&o, "n", "uint16_t");
  CHECK_EQ(shmh_layout_add(&o, "pts", &e, 4), 0);
  shmh_lelem s;
  size_t count;
  CHECK_EQ(shmh_lelem_parse("char[5]", &s, &count), 0);
  CHECK_EQ(count, 0);
  CHECK_EQ(shmh_layout_add(&o, "names", &s, 2), 0);
  CHECK_EQ(shmh_layout_finish(&o), 0);
  CHECK_EQ(off(&o, "pos"), offsetof(struct outer, pos));
  CHECK_EQ(off(&o, "n"), offsetof(struct outer, n));
  CHECK_EQ(off(&o, "pts"), offsetof(struct outer, pts));
  CHECK_EQ(off(&o, "names"), offsetof(struct outer, names));
  CHECK_EQ(o.size, sizeof(struct outer));

  char *text = NULL;
  CHECK_EQ(shmh_layout_cdecl(&o, "outer", &text), 0);
  CHECK(strstr(text, "#include <stdint.h>\n") != NULL);
  CHECK(strstr(text, "struct outer {\n") != NULL);
  CHECK(strstr(text, "    } pts[4];\n") != NULL);
  CHECK(strstr(text, "    char names[2][5];\n") != NULL);
  CHECK(strstr(text, "        float x;\n") != NULL);
  free(text);
  CHECK_EQ(shmh_layout_cdecl(&o, "not a name", &text), -EINVAL);
  shmh_layout_free(&o);
  shmh_layout_free(&v);
}

/* The table's sizes come from the compiler; spot-check that a few match the C types. */
static void t_table(void) {
  CHECK_EQ(shmh_ltype_find("mutex")->size, sizeof(pthread_mutex_t));
  CHECK_EQ(shmh_ltype_find("sem")->size, sizeof(sem_t));
  CHECK_EQ(shmh_ltype_find("long")->size, sizeof(long));
  CHECK_EQ(shmh_ltype_find("pid_t")->kind, SHMH_LK_INT);
  CHECK_EQ(shmh_ltype_find("size_t")->kind, SHMH_LK_UINT);
  CHECK_EQ(shmh_ltype_find("char")->kind, (char)-1 < 0 ? SHMH_LK_INT : SHMH_LK_UINT);
  CHECK_EQ(shmh_ltype_find("double")->align, offsetof(struct { char c; double d; }, d));
  CHECK(shmh_ltype_find("int128") == NULL);
  size_t n = 0;
  while (shmh_ltype_at(n) != NULL) n++;
  CHECK(n >= 30);
}

static void t_errors(void) {
  shmh_lelem e;
  size_t count;
  CHECK_EQ(shmh_lelem_parse("integer", &e, &count), -EINVAL);
  CHECK_EQ(shmh_lelem_parse("int[0]", &e, &count), -ERANGE);
  CHECK_EQ(shmh_lelem_parse("int[-3]", &e, &count), -ERANGE);
  CHECK_EQ(shmh_lelem_parse("int[2][3]", &e, &count), -EINVAL);
  CHECK_EQ(shmh_lelem_parse("int[x]", &e, &count), -EINVAL);
  CHECK_EQ(shmh_lelem_parse("int[3", &e, &count), -EINVAL);
  CHECK_EQ(shmh_lelem_parse("char[99999999999999999999999]", &e, &count), -ERANGE);
  CHECK_EQ(shmh_lelem_parse("", &e, &count), -EINVAL);

  shmh_layout l;
  shmh_layout_init(&l);
  CHECK_EQ(shmh_layout_finish(&l), -EINVAL);
  CHECK_EQ(shmh_lelem_parse("int", &e, &count), 0);
  CHECK_EQ(shmh_layout_add(&l, "x", &e, 0), 0);
  CHECK_EQ(shmh_layout_add(&l, "x", &e, 0), -EEXIST);
  CHECK_EQ(shmh_layout_add(&l, "int", &e, 0), -EINVAL);
  CHECK_EQ(shmh_layout_add(&l, "9lives", &e, 0), -EINVAL);
  CHECK_EQ(shmh_layout_add(&l, "a-b", &e, 0), -EINVAL);
  CHECK_EQ(shmh_layout_add(&l, "huge", &e, SHMH_LAYOUT_MAX), -EOVERFLOW);
  CHECK_EQ(shmh_layout_finish(&l), 0);
  CHECK_EQ(shmh_layout_add(&l, "late", &e, 0), -EINVAL);
  CHECK_EQ(l.size, sizeof(int));
  shmh_layout_free(&l);
}

int main(void) { return RUN(t_day56, t_padding, t_nested, t_table, t_errors); }
