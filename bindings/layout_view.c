/*
 * Views and arrays: reading and writing a segment through a layout (see layout.c).
 *
 * A view is (segment, layout, offset); an array is (segment, the layout that owns the array
 * field, the field, offset). Both hold the segment in user value 1, so the mapping is never
 * unmapped under them, and the layout in user value 2; a view also keeps the layout's name
 * index in user value 3, so a field access costs one table lookup. Every access goes through
 * shmh_segment_ptr, which checks bounds, read-only mappings, closed segments and truncation by
 * a peer, and then shmh_segment_touched, which reports a truncation the access ran into.
 *
 * Conversions: integers must be Lua integers (or floats with an exact integer value) within
 * the C type's range, else the assignment raises; 64-bit unsigned fields take any integer and
 * read back values of 2^63 and above as negative integers, as string.unpack("J") does. Floats
 * take any number (a float field raises for a finite value beyond FLT_MAX). bool takes a
 * boolean. char[N] takes a string of at most N-1 bytes without a NUL and zero-fills the rest,
 * as strncpy does. A nested layout takes a table of its fields, an array a list of at most N
 * values; such an assignment is checked whole before anything is written.
 *
 * Field accesses are plain loads and stores, not atomic: fields that processes share guard
 * them with a mutex of the layout, or use seg:load/seg:store at L:offset(field).
 */
#include "bind.h"

#include <float.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "layout.h"
#include "seg.h"

/* A segment on the stack, and its structure (valid while the userdata lives: the object
 * holding it keeps the segment in a user value; whether it is still open is checked by
 * shmh_segment_ptr on every access). Kept so an access checks the segment's type once. */
typedef struct vseg {
  int idx;
  shmh_seg *seg;
} vseg;

typedef struct view_ud {
  const shmh_layout *l; /* owned by the layout userdata in user value 2 */
  shmh_seg *seg;        /* of the segment in user value 1 */
  lua_Integer off;
} view_ud;

typedef struct array_ud {
  const shmh_lfield *f; /* a field of the layout userdata in user value 2 */
  shmh_seg *seg;        /* of the segment in user value 1 */
  lua_Integer index;    /* the field's 1-based index in that layout */
  lua_Integer off;
} array_ud;

/* Where a value goes, for error messages: "pts[2].x". Built only when an error is raised. */
typedef struct vpath {
  const struct vpath *up;
  const char *name; /* NULL for an array index */
  lua_Integer index;
} vpath;

static void vpath_add(luaL_Buffer *b, const vpath *p) {
  if (p == NULL) return;
  vpath_add(b, p->up);
  if (p->name != NULL) {
    if (p->up != NULL) luaL_addchar(b, '.');
    luaL_addstring(b, p->name);
  } else {
    lua_pushfstring(b->L, "[%I]", p->index);
    luaL_addvalue(b);
  }
}

/* Raises "field 'PATH': MSG" (MSG is at the top of the stack). */
static int vpath_error(lua_State *L, const vpath *p) {
  luaL_Buffer b;
  const char *msg = lua_tostring(L, -1);
  luaL_buffinit(L, &b);
  luaL_addstring(&b, "field '");
  vpath_add(&b, p);
  luaL_addstring(&b, "': ");
  luaL_addstring(&b, msg);
  luaL_pushresult(&b);
  return lua_error(L);
}

/* The address of [off, off+len) in the segment at `segidx` after the segment's own checks
 * (open, in bounds, not truncated by a peer); a write to a read-only mapping raises naming
 * the field. */
static unsigned char *view_addr(lua_State *L, const vseg *s, lua_Integer off, size_t len,
                                int write, const vpath *at) {
  unsigned char *p = (unsigned char *)shmh_segment_ptr(L, s->idx, off, len, 0, 0);
  if (write && s->seg->readonly) {
    lua_pushliteral(L, "the segment is mapped read-only");
    vpath_error(L, at);
  }
  return p;
}

/* ------------------------------------------------------------ pushing objects */

static void view_push(lua_State *L, const vseg *s, int layidx, lua_Integer off) {
  const shmh_layout *l = shmh_layout_check(L, layidx);
  view_ud *v = (view_ud *)lua_newuserdatauv(L, sizeof *v, 3);
  v->l = l;
  v->seg = s->seg;
  v->off = off;
  luaL_setmetatable(L, SHMH_VIEW);
  lua_pushvalue(L, s->idx);
  lua_setiuservalue(L, -2, 1);
  lua_pushvalue(L, layidx);
  lua_setiuservalue(L, -2, 2);
  lua_getiuservalue(L, layidx, 1);
  lua_setiuservalue(L, -2, 3);
}

void shmh_view_push(lua_State *L, int segidx, int layidx, lua_Integer off) {
  vseg s = {lua_absindex(L, segidx), NULL};
  s.seg = shmh_segment_check(L, s.idx);
  view_push(L, &s, lua_absindex(L, layidx), off);
}

static void array_push(lua_State *L, const vseg *s, int layidx, lua_Integer index,
                       const shmh_lfield *f, lua_Integer off) {
  array_ud *a = (array_ud *)lua_newuserdatauv(L, sizeof *a, 2);
  a->f = f;
  a->seg = s->seg;
  a->index = index;
  a->off = off;
  luaL_setmetatable(L, SHMH_ARRAY);
  lua_pushvalue(L, s->idx);
  lua_setiuservalue(L, -2, 1);
  lua_pushvalue(L, layidx);
  lua_setiuservalue(L, -2, 2);
}

/* ------------------------------------------------------------ reading */

/* Pushes the scalar or string element `e` at `off` in the segment at `segidx`. */
static void scalar_get(lua_State *L, const vseg *s, const shmh_lelem *e, lua_Integer off) {
  const unsigned char *p = view_addr(L, s, off, e->size, 0, NULL);
  switch (e->kind) {
  case SHMH_LK_INT:
    switch (e->size) {
    case 1: { int8_t x; memcpy(&x, p, 1); lua_pushinteger(L, x); break; }
    case 2: { int16_t x; memcpy(&x, p, 2); lua_pushinteger(L, x); break; }
    case 4: { int32_t x; memcpy(&x, p, 4); lua_pushinteger(L, x); break; }
    default: { int64_t x; memcpy(&x, p, 8); lua_pushinteger(L, (lua_Integer)x); break; }
    }
    break;
  case SHMH_LK_UINT:
    switch (e->size) {
    case 1: lua_pushinteger(L, p[0]); break;
    case 2: { uint16_t x; memcpy(&x, p, 2); lua_pushinteger(L, x); break; }
    case 4: { uint32_t x; memcpy(&x, p, 4); lua_pushinteger(L, (lua_Integer)x); break; }
    /* The same bits as a signed 64-bit integer: 2^63 and above come back negative. */
    default: { int64_t x; memcpy(&x, p, 8); lua_pushinteger(L, (lua_Integer)x); break; }
    }
    break;
  case SHMH_LK_FLOAT:
    if (e->size == sizeof(float)) { float x; memcpy(&x, p, sizeof x); lua_pushnumber(L, x); }
    else { double x; memcpy(&x, p, sizeof x); lua_pushnumber(L, x); }
    break;
  case SHMH_LK_BOOL:
    /* Any non-zero byte is true: a C peer may have stored something other than 1. */
    lua_pushboolean(L, p[0] != 0);
    break;
  case SHMH_LK_STRING: {
    const unsigned char *nul = memchr(p, '\0', e->size);
    lua_pushlstring(L, (const char *)p, nul ? (size_t)(nul - p) : e->size);
    break;
  }
  default: lua_pushnil(L); break;
  }
  shmh_segment_touched(L, s->seg);
}

/* Pushes element `e` of field `index` of the layout at `layidx`, at `off`. */
static void elem_push(lua_State *L, const vseg *s, int layidx, lua_Integer index,
                      const shmh_lelem *e, lua_Integer off) {
  switch (e->kind) {
  case SHMH_LK_MUTEX: shmh_mutex_push(L, s->idx, off); break;
  case SHMH_LK_SEM: shmh_sem_push(L, s->idx, off); break;
  case SHMH_LK_STRUCT:
    lua_getiuservalue(L, layidx, 2);
    lua_rawgeti(L, -1, index);
    view_push(L, s, lua_gettop(L), off);
    lua_replace(L, -3);
    lua_pop(L, 1);
    break;
  default: scalar_get(L, s, e, off); break;
  }
}

/* ------------------------------------------------------------ writing */

static int value_set(lua_State *L, const vseg *s, int layidx, lua_Integer index,
                     const shmh_lfield *f, int whole, lua_Integer off, int v, const vpath *at,
                     int dry);

/* Stores the value at `v` as element `e` at `off`; with `dry`, only checks it. */
static void scalar_set(lua_State *L, const vseg *s, const shmh_lelem *e, lua_Integer off, int v,
                       const vpath *at, int dry) {
  unsigned char buf[8];
  size_t n = e->size;
  const void *src = buf;
  switch (e->kind) {
  case SHMH_LK_INT:
  case SHMH_LK_UINT: {
    int isint = 0;
    lua_Integer x = lua_tointegerx(L, v, &isint);
    if (lua_type(L, v) != LUA_TNUMBER) {
      lua_pushfstring(L, "integer expected, got %s", luaL_typename(L, v));
      vpath_error(L, at);
    }
    if (!isint) {
      lua_pushfstring(L, "number %f has no integer representation", lua_tonumber(L, v));
      vpath_error(L, at);
    }
    if (n < 8) {
      int bits = (int)n * 8;
      lua_Integer lo = e->kind == SHMH_LK_INT ? -((lua_Integer)1 << (bits - 1)) : 0;
      lua_Integer hi = e->kind == SHMH_LK_INT ? ((lua_Integer)1 << (bits - 1)) - 1
                                              : ((lua_Integer)1 << bits) - 1;
      if (x < lo || x > hi) {
        lua_pushfstring(L, "value %I out of range for %s (%I..%I)", x, e->type->cname, lo, hi);
        vpath_error(L, at);
      }
    }
    switch (n) {
    case 1: { uint8_t y = (uint8_t)x; memcpy(buf, &y, 1); break; }
    case 2: { uint16_t y = (uint16_t)x; memcpy(buf, &y, 2); break; }
    case 4: { uint32_t y = (uint32_t)x; memcpy(buf, &y, 4); break; }
    default: { uint64_t y = (uint64_t)x; memcpy(buf, &y, 8); break; }
    }
    break;
  }
  case SHMH_LK_FLOAT: {
    if (lua_type(L, v) != LUA_TNUMBER) {
      lua_pushfstring(L, "number expected, got %s", luaL_typename(L, v));
      vpath_error(L, at);
    }
    double d = lua_tonumber(L, v);
    if (n == sizeof(float)) {
      /* Converting a finite double beyond the float range is undefined in C. */
      if (isfinite(d) && fabs(d) > FLT_MAX) {
        lua_pushfstring(L, "value %f out of range for float", d);
        vpath_error(L, at);
      }
      float y = (float)d;
      memcpy(buf, &y, sizeof y);
    } else {
      memcpy(buf, &d, sizeof d);
    }
    break;
  }
  case SHMH_LK_BOOL:
    if (!lua_isboolean(L, v)) {
      lua_pushfstring(L, "boolean expected, got %s", luaL_typename(L, v));
      vpath_error(L, at);
    }
    buf[0] = (unsigned char)lua_toboolean(L, v);
    n = 1;
    break;
  case SHMH_LK_STRING: {
    size_t len;
    if (lua_type(L, v) != LUA_TSTRING) {
      lua_pushfstring(L, "string expected, got %s", luaL_typename(L, v));
      vpath_error(L, at);
    }
    const char *str = lua_tolstring(L, v, &len);
    if (len > e->size - 1) {
      lua_pushfstring(L, "string of %I bytes too long for char[%I] (at most %I bytes)",
                      (lua_Integer)len, (lua_Integer)e->size, (lua_Integer)e->size - 1);
      vpath_error(L, at);
    }
    if (memchr(str, '\0', len) != NULL) {
      lua_pushliteral(L, "string contains a NUL byte (a C string would end there)");
      vpath_error(L, at);
    }
    if (dry) return;
    unsigned char *p = view_addr(L, s, off, e->size, 1, at);
    memcpy(p, str, len);
    memset(p + len, 0, e->size - len);
    shmh_segment_touched(L, s->seg);
    return;
  }
  case SHMH_LK_MUTEX:
  case SHMH_LK_SEM:
    lua_pushfstring(L, "a %s cannot be assigned (use its methods)",
                    e->kind == SHMH_LK_MUTEX ? "mutex" : "semaphore");
    vpath_error(L, at);
    return;
  default: return;
  }
  if (dry) return;
  unsigned char *p = view_addr(L, s, off, n, 1, at);
  memcpy(p, src, n);
  shmh_segment_touched(L, s->seg);
}

/* Writes a table of field values into the struct of the layout at `sublay` at `off`. Every
 * key must name a field; fields the table leaves out keep their value. */
static void struct_set(lua_State *L, const vseg *s, int sublay, lua_Integer off, int v,
                       const vpath *at, int dry) {
  if (!lua_istable(L, v)) {
    lua_pushfstring(L, "table of fields expected, got %s", luaL_typename(L, v));
    vpath_error(L, at);
  }
  /* Each nesting level holds a few values on the stack while it walks its fields. */
  luaL_checkstack(L, 8, "layout nesting too deep");
  const shmh_layout *l = shmh_layout_check(L, sublay);
  if (dry) {
    lua_getiuservalue(L, sublay, 1);
    int names = lua_gettop(L);
    lua_pushnil(L);
    while (lua_next(L, v)) {
      lua_pop(L, 1);
      int known = 0;
      if (lua_type(L, -1) == LUA_TSTRING) {
        lua_pushvalue(L, -1);
        known = lua_rawget(L, names) != LUA_TNIL;
        lua_pop(L, 1);
      }
      if (!known) {
        lua_pushfstring(L, "no field '%s' in the nested layout", luaL_tolstring(L, -1, NULL));
        vpath_error(L, at);
      }
    }
    lua_pop(L, 1);
  }
  for (size_t i = 0; i < l->nfields; i++) {
    const shmh_lfield *f = &l->fields[i];
    lua_pushstring(L, f->name);
    if (lua_rawget(L, v) != LUA_TNIL) {
      vpath sub = {at, f->name, 0};
      value_set(L, s, sublay, (lua_Integer)i + 1, f, 1, off + (lua_Integer)f->offset,
                lua_gettop(L), &sub, dry);
    }
    lua_pop(L, 1);
  }
}

/* Stores one element of field `index` (of the layout at `layidx`) at `off`. */
static void elem_set(lua_State *L, const vseg *s, int layidx, lua_Integer index,
                     const shmh_lelem *e, lua_Integer off, int v, const vpath *at, int dry) {
  if (e->kind != SHMH_LK_STRUCT) {
    scalar_set(L, s, e, off, v, at, dry);
    return;
  }
  lua_getiuservalue(L, layidx, 2);
  lua_rawgeti(L, -1, index);
  struct_set(L, s, lua_gettop(L), off, v, at, dry);
  lua_pop(L, 2);
}

/* Stores the value at `v` into field `f` (the whole field when `whole`, else one element of
 * it) at `off`. An array field takes a list of at most N values and writes those given. */
static int value_set(lua_State *L, const vseg *s, int layidx, lua_Integer index,
                     const shmh_lfield *f, int whole, lua_Integer off, int v, const vpath *at,
                     int dry) {
  if (!whole || f->count == 0) {
    elem_set(L, s, layidx, index, &f->elem, off, v, at, dry);
    return 0;
  }
  if (!lua_istable(L, v)) {
    lua_pushfstring(L, "table of at most %I values expected, got %s", (lua_Integer)f->count,
                    luaL_typename(L, v));
    vpath_error(L, at);
  }
  lua_Unsigned n = lua_rawlen(L, v);
  if (n > f->count) {
    lua_pushfstring(L, "table of %I values for an array of %I", (lua_Integer)n,
                    (lua_Integer)f->count);
    vpath_error(L, at);
  }
  for (lua_Unsigned i = 1; i <= n; i++) {
    lua_rawgeti(L, v, (lua_Integer)i);
    vpath el = {at, NULL, (lua_Integer)i};
    elem_set(L, s, layidx, index, &f->elem,
             off + (lua_Integer)((i - 1) * f->elem.size), lua_gettop(L), &el, dry);
    lua_pop(L, 1);
  }
  return 0;
}

/* A table assignment is checked whole first, so a bad value deep inside it leaves the
 * segment unchanged. */
static void assign(lua_State *L, const vseg *s, int layidx, lua_Integer index, const shmh_lfield *f,
                   int whole, lua_Integer off, int v, const vpath *at) {
  if (lua_type(L, v) == LUA_TTABLE)
    value_set(L, s, layidx, index, f, whole, off, v, at, 1);
  value_set(L, s, layidx, index, f, whole, off, v, at, 0);
}

/* ------------------------------------------------------------ views */

/* The object at index 1 when its metatable is the one in upvalue 1 (the type's own), else
 * raises as luaL_checkudata does. Cheaper than a registry lookup by name on every access. */
static void *self_check(lua_State *L, const char *tname) {
  void *p = lua_touserdata(L, 1);
  if (p == NULL || !lua_getmetatable(L, 1)) luaL_typeerror(L, 1, tname);
  if (!lua_rawequal(L, -1, lua_upvalueindex(1))) luaL_typeerror(L, 1, tname);
  lua_pop(L, 1);
  return p;
}

/* Pushes field `index` (1-based) of the view at stack index 1. */
static void view_field_push(lua_State *L, view_ud *vw, lua_Integer index) {
  const shmh_lfield *f = &vw->l->fields[index - 1];
  lua_Integer off = vw->off + (lua_Integer)f->offset;
  lua_getiuservalue(L, 1, 1);
  lua_getiuservalue(L, 1, 2);
  vseg s = {lua_gettop(L) - 1, vw->seg};
  if (f->count) array_push(L, &s, s.idx + 1, index, f, off);
  else elem_push(L, &s, s.idx + 1, index, &f->elem, off);
  lua_replace(L, s.idx);
  lua_pop(L, 1);
}

/* The 1-based index of the field named by the key at `k`, or raises naming it. */
static lua_Integer view_lookup(lua_State *L, int k) {
  lua_getiuservalue(L, 1, 3);
  lua_pushvalue(L, k);
  if (lua_rawget(L, -2) != LUA_TNUMBER) {
    if (lua_type(L, k) == LUA_TSTRING)
      luaL_error(L, "%s: no field '%s' in the layout", SHMH_VIEW, lua_tostring(L, k));
    luaL_error(L, "%s: no field %s in the layout (field names are strings)", SHMH_VIEW,
               luaL_tolstring(L, k, NULL));
  }
  lua_Integer index = lua_tointeger(L, -1);
  lua_pop(L, 2);
  return index;
}

static int view_index(lua_State *L) {
  view_ud *vw = (view_ud *)self_check(L, SHMH_VIEW);
  view_field_push(L, vw, view_lookup(L, 2));
  return 1;
}

static int view_newindex(lua_State *L) {
  view_ud *vw = (view_ud *)self_check(L, SHMH_VIEW);
  lua_Integer index = view_lookup(L, 2);
  const shmh_lfield *f = &vw->l->fields[index - 1];
  lua_settop(L, 3);
  lua_getiuservalue(L, 1, 1);
  lua_getiuservalue(L, 1, 2);
  vpath at = {NULL, f->name, 0};
  vseg s = {4, vw->seg};
  assign(L, &s, 5, index, f, 1, vw->off + (lua_Integer)f->offset, 3, &at);
  return 0;
}

/* The iterator of pairs(view): field names in declaration order, with their values. */
static int view_next(lua_State *L) {
  view_ud *vw = (view_ud *)luaL_checkudata(L, 1, SHMH_VIEW);
  lua_Integer index = lua_isnil(L, 2) ? 0 : view_lookup(L, 2);
  if ((size_t)index >= vw->l->nfields) return 0;
  lua_pushstring(L, vw->l->fields[index].name);
  view_field_push(L, vw, index + 1);
  return 2;
}

static int view_pairs(lua_State *L) {
  luaL_checkudata(L, 1, SHMH_VIEW);
  lua_pushcfunction(L, view_next);
  lua_pushvalue(L, 1);
  lua_pushnil(L);
  return 3;
}

static int view_tostring(lua_State *L) {
  view_ud *vw = (view_ud *)luaL_checkudata(L, 1, SHMH_VIEW);
  lua_pushfstring(L, "%s: %I bytes at offset %I (%p)", SHMH_VIEW, (lua_Integer)vw->l->size,
                  vw->off, (void *)vw);
  return 1;
}

/* ------------------------------------------------------------ arrays */

/* The byte offset of element `i` (1-based) of the array at stack index 1, or raises. */
static lua_Integer array_elem(lua_State *L, array_ud *a, int k) {
  int isint = 0;
  lua_Integer i = lua_tointegerx(L, k, &isint);
  if (!isint || lua_type(L, k) != LUA_TNUMBER)
    luaL_error(L, "%s: index must be an integer, got %s", SHMH_ARRAY, luaL_typename(L, k));
  if (i < 1 || (lua_Unsigned)i > a->f->count)
    luaL_error(L, "%s: index %I out of range (1..%I)", SHMH_ARRAY, i, (lua_Integer)a->f->count);
  return a->off + (i - 1) * (lua_Integer)a->f->elem.size;
}

static void array_elem_push(lua_State *L, array_ud *a, lua_Integer off) {
  lua_getiuservalue(L, 1, 1);
  lua_getiuservalue(L, 1, 2);
  vseg s = {lua_gettop(L) - 1, a->seg};
  elem_push(L, &s, s.idx + 1, a->index, &a->f->elem, off);
  lua_replace(L, s.idx);
  lua_pop(L, 1);
}

static int array_index(lua_State *L) {
  array_ud *a = (array_ud *)self_check(L, SHMH_ARRAY);
  array_elem_push(L, a, array_elem(L, a, 2));
  return 1;
}

static int array_newindex(lua_State *L) {
  array_ud *a = (array_ud *)self_check(L, SHMH_ARRAY);
  lua_Integer off = array_elem(L, a, 2);
  lua_settop(L, 3);
  lua_getiuservalue(L, 1, 1);
  lua_getiuservalue(L, 1, 2);
  vpath at = {NULL, a->f->name, lua_tointeger(L, 2)};
  vpath el = {&at, NULL, lua_tointeger(L, 2)};
  vseg s = {4, a->seg};
  assign(L, &s, 5, a->index, a->f, 0, off, 3, &el);
  return 0;
}

static int array_len(lua_State *L) {
  array_ud *a = (array_ud *)luaL_checkudata(L, 1, SHMH_ARRAY);
  lua_pushinteger(L, (lua_Integer)a->f->count);
  return 1;
}

/* The iterator of pairs(array): 1..N with the elements. (ipairs would read one past the end,
 * which raises; pairs or `for i = 1, #a` are the ways to walk an array.) */
static int array_next(lua_State *L) {
  array_ud *a = (array_ud *)luaL_checkudata(L, 1, SHMH_ARRAY);
  lua_Integer i = lua_isnil(L, 2) ? 1 : luaL_checkinteger(L, 2) + 1;
  if (i < 1 || (lua_Unsigned)i > a->f->count) return 0;
  lua_pushinteger(L, i);
  array_elem_push(L, a, a->off + (i - 1) * (lua_Integer)a->f->elem.size);
  return 2;
}

static int array_pairs(lua_State *L) {
  luaL_checkudata(L, 1, SHMH_ARRAY);
  lua_pushcfunction(L, array_next);
  lua_pushvalue(L, 1);
  lua_pushnil(L);
  return 3;
}

static int array_tostring(lua_State *L) {
  array_ud *a = (array_ud *)luaL_checkudata(L, 1, SHMH_ARRAY);
  lua_pushfstring(L, "%s: %s, %I elements at offset %I (%p)", SHMH_ARRAY, a->f->name,
                  (lua_Integer)a->f->count, a->off, (void *)a);
  return 1;
}

static const luaL_Reg view_meta[] = {
  {"__pairs", view_pairs},
  {"__tostring", view_tostring},
  {NULL, NULL}
};

static const luaL_Reg array_meta[] = {
  {"__len", array_len},
  {"__pairs", array_pairs},
  {"__tostring", array_tostring},
  {NULL, NULL}
};

/* __index and __newindex get their own metatable as upvalue, for self_check. */
static void view_accessors(lua_State *L, const char *tname, lua_CFunction index,
                           lua_CFunction newindex) {
  luaL_getmetatable(L, tname);
  lua_pushvalue(L, -1);
  lua_pushcclosure(L, index, 1);
  lua_setfield(L, -2, "__index");
  lua_pushvalue(L, -1);
  lua_pushcclosure(L, newindex, 1);
  lua_setfield(L, -2, "__newindex");
  lua_pop(L, 1);
}

void shmh_bind_view(lua_State *L) {
  shmh_newtype(L, SHMH_VIEW, NULL, view_meta);
  view_accessors(L, SHMH_VIEW, view_index, view_newindex);
  shmh_newtype(L, SHMH_ARRAY, NULL, array_meta);
  view_accessors(L, SHMH_ARRAY, array_index, array_newindex);
}
