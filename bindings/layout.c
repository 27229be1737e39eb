/*
 * shm.layout: C struct layouts declared in Lua. A layout is a list of fields, each a name and
 * a type (a C type name, "T[N]", "char[N]", or another layout, with an optional array length),
 * laid out by host/core/layout.c exactly as the platform C compiler lays out the same struct.
 * This file builds layouts and answers questions about them (size, offsets, the C
 * declaration); layout_view.c reads and writes segments through them.
 *
 * A layout userdata holds a finished shmh_layout. Its user value 1 maps each field name to
 * the field's 1-based index (views look fields up there, one table lookup per access); its
 * user value 2 maps the index of every nested-layout field to that layout's userdata, which
 * keeps the nested layout alive as long as this one.
 */
#include "bind.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "layout.h"

typedef struct layout_ud {
  shmh_layout l;
} layout_ud;

static layout_ud *layout_get(lua_State *L, int idx) {
  return (layout_ud *)luaL_checkudata(L, idx, SHMH_LAYOUT);
}

const shmh_layout *shmh_layout_check(lua_State *L, int idx) { return &layout_get(L, idx)->l; }

/* Raises "bad argument #1 to 'layout' (field #I: MSG)" for the I-th field of the spec. */
static int layout_field_error(lua_State *L, lua_Integer i, const char *msg) {
  return luaL_argerror(L, 1, lua_pushfstring(L, "field #%I: %s", i, msg));
}

/* The same for a field whose name is known: "field #I 'NAME': MSG". */
static int layout_named_error(lua_State *L, lua_Integer i, const char *name, const char *msg) {
  return luaL_argerror(L, 1, lua_pushfstring(L, "field #%I '%s': %s", i, name, msg));
}

/* Adds spec[i] = {name, type [, count]} to the layout at stack index `ud`. */
static void layout_add_field(lua_State *L, int ud, lua_Integer i) {
  layout_ud *lu = (layout_ud *)lua_touserdata(L, ud);
  if (lua_rawgeti(L, 1, i) != LUA_TTABLE)
    layout_field_error(L, i, lua_pushfstring(L, "table {name, type} expected, got %s",
                                             luaL_typename(L, -1)));
  int fidx = lua_gettop(L);
  if (lua_rawgeti(L, fidx, 1) != LUA_TSTRING)
    layout_field_error(L, i, lua_pushfstring(L, "name (a string) expected as first element, got %s",
                                             luaL_typename(L, -1)));
  const char *name = lua_tostring(L, -1);
  if (!shmh_layout_name_ok(name))
    layout_field_error(L, i, lua_pushfstring(L, "name '%s' is not a C identifier (or is a C keyword)", name));
  if (shmh_layout_field(&lu->l, name) != NULL)
    layout_field_error(L, i, lua_pushfstring(L, "duplicate field name '%s'", name));

  shmh_lelem elem;
  size_t count = 0;
  int tt = lua_rawgeti(L, fidx, 2);
  int sub = 0;
  if (tt == LUA_TSTRING) {
    const char *spec = lua_tostring(L, -1);
    int rc = shmh_lelem_parse(spec, &elem, &count);
    if (rc == -ERANGE)
      layout_named_error(L, i, name, lua_pushfstring(L, "array length in '%s' must be a positive integer", spec));
    else if (rc != 0)
      layout_named_error(L, i, name, lua_pushfstring(L, "unknown type '%s'", spec));
  } else if (tt == LUA_TUSERDATA && luaL_testudata(L, -1, SHMH_LAYOUT)) {
    shmh_lelem_struct(&elem, &((layout_ud *)lua_touserdata(L, -1))->l);
    sub = lua_gettop(L);
  } else {
    layout_named_error(L, i, name, lua_pushfstring(L, "type (a string or a layout) expected, got %s",
                                                   luaL_typename(L, -1)));
  }

  int ct = lua_rawgeti(L, fidx, 3);
  if (ct != LUA_TNIL) {
    int isint = 0;
    lua_Integer n = lua_tointegerx(L, -1, &isint);
    if (ct != LUA_TNUMBER || !isint || n <= 0)
      layout_named_error(L, i, name, "array length must be a positive integer");
    if (count != 0)
      layout_named_error(L, i, name, "arrays of arrays are not supported");
    if ((lua_Unsigned)n > SHMH_LAYOUT_MAX)
      layout_named_error(L, i, name, "layout too large");
    count = (size_t)n;
  }
  lua_Integer extra = (lua_Integer)lua_rawlen(L, fidx);
  if (extra > 3) layout_field_error(L, i, "at most {name, type, count} expected");

  int rc = shmh_layout_add(&lu->l, name, &elem, count);
  if (rc == -EOVERFLOW)
    layout_named_error(L, i, name, "layout too large");
  else if (rc == -ENOMEM)
    luaL_error(L, "shm.layout: out of memory");
  else if (rc != 0)
    layout_named_error(L, i, name, "cannot be added");

  lua_Integer index = (lua_Integer)lu->l.nfields;
  lua_getiuservalue(L, ud, 1);
  lua_pushvalue(L, fidx + 1);  /* the name */
  lua_pushinteger(L, index);
  lua_rawset(L, -3);
  lua_pop(L, 1);
  if (sub) {
    lua_getiuservalue(L, ud, 2);
    lua_pushvalue(L, sub);
    lua_rawseti(L, -2, index);
    lua_pop(L, 1);
  }
  lua_settop(L, fidx - 1);
}

/* shm.layout{ {"name", "type" | layout [, count]}, ... } */
static int layout_new(lua_State *L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  lua_settop(L, 1);
  lua_Integer n = (lua_Integer)lua_rawlen(L, 1);
  luaL_argcheck(L, n > 0, 1, "empty layout (a layout needs at least one field)");
  /* Only the list part means anything; a stray key is most likely a mistake. */
  lua_pushnil(L);
  while (lua_next(L, 1)) {
    lua_pop(L, 1);
    int isint = 0;
    lua_Integer k = lua_tointegerx(L, -1, &isint);
    if (lua_type(L, -1) != LUA_TNUMBER || !isint || k < 1 || k > n)
      luaL_argerror(L, 1, lua_pushfstring(L, "unexpected key '%s' (a layout is a list of fields)",
                                          luaL_tolstring(L, -1, NULL)));
  }

  /* The userdata first, so a raised error leaves nothing but garbage for __gc to free. */
  layout_ud *lu = (layout_ud *)lua_newuserdatauv(L, sizeof *lu, 2);
  shmh_layout_init(&lu->l);
  luaL_setmetatable(L, SHMH_LAYOUT);
  lua_createtable(L, 0, (int)n);
  lua_setiuservalue(L, 2, 1);
  lua_newtable(L);
  lua_setiuservalue(L, 2, 2);
  for (lua_Integer i = 1; i <= n; i++) layout_add_field(L, 2, i);
  if (shmh_layout_finish(&lu->l) != 0) luaL_argerror(L, 1, "empty layout");
  return 1;
}

static int layout_gc(lua_State *L) {
  layout_ud *lu = (layout_ud *)luaL_checkudata(L, 1, SHMH_LAYOUT);
  shmh_layout_free(&lu->l);
  return 0;
}

/* The field at `path`, a name or dotted names through nested layouts ("pos.x"); adds the
 * offsets of the layouts it passes through to *off. */
static const shmh_lfield *layout_resolve(lua_State *L, const shmh_layout *l, const char *path,
                                         size_t *off) {
  const char *p = path;
  *off = 0;
  for (;;) {
    const char *dot = strchr(p, '.');
    size_t len = dot ? (size_t)(dot - p) : strlen(p);
    const shmh_lfield *f = NULL;
    for (size_t i = 0; i < l->nfields && f == NULL; i++)
      if (strlen(l->fields[i].name) == len && memcmp(l->fields[i].name, p, len) == 0)
        f = &l->fields[i];
    if (f == NULL) {
      luaL_argerror(L, 2, lua_pushfstring(L, "no field '%s' in the layout", path));
      return NULL;
    }
    *off += f->offset;
    if (dot == NULL) return f;
    if (f->elem.kind != SHMH_LK_STRUCT || f->count != 0) {
      luaL_argerror(L, 2, lua_pushfstring(L, "'%s': field '%s' is not a nested layout", path,
                                          f->name));
      return NULL;
    }
    l = f->elem.sub;
    p = dot + 1;
  }
}

/* L:offset(field) -> bytes from the start of the struct. */
static int layout_offset(lua_State *L) {
  layout_ud *lu = layout_get(L, 1);
  const char *path = luaL_checkstring(L, 2);
  size_t off;
  layout_resolve(L, &lu->l, path, &off);
  lua_pushinteger(L, (lua_Integer)off);
  return 1;
}

/* Pushes how a script would spell the element type of `f`. */
static void layout_push_type(lua_State *L, int ud, size_t index, const shmh_lfield *f) {
  switch (f->elem.kind) {
  case SHMH_LK_STRING: lua_pushfstring(L, "char[%I]", (lua_Integer)f->elem.size); break;
  case SHMH_LK_STRUCT:
    lua_getiuservalue(L, ud, 2);
    lua_rawgeti(L, -1, (lua_Integer)index);
    lua_remove(L, -2);
    break;
  default: lua_pushstring(L, f->elem.type->name); break;
  }
}

/* L:fields() -> { {name=, type=, offset=, size=, count=}, ... } in declaration order; `type`
 * is the element type (a string, or the nested layout), `count` the array length or nil,
 * `size` the bytes of the whole field. */
static int layout_fields(lua_State *L) {
  layout_ud *lu = layout_get(L, 1);
  lua_createtable(L, (int)lu->l.nfields, 0);
  for (size_t i = 0; i < lu->l.nfields; i++) {
    const shmh_lfield *f = &lu->l.fields[i];
    lua_createtable(L, 0, 5);
    lua_pushstring(L, f->name);
    lua_setfield(L, -2, "name");
    layout_push_type(L, 1, i + 1, f);
    lua_setfield(L, -2, "type");
    lua_pushinteger(L, (lua_Integer)f->offset);
    lua_setfield(L, -2, "offset");
    lua_pushinteger(L, (lua_Integer)(f->elem.size * (f->count ? f->count : 1)));
    lua_setfield(L, -2, "size");
    if (f->count) {
      lua_pushinteger(L, (lua_Integer)f->count);
      lua_setfield(L, -2, "count");
    }
    lua_rawseti(L, -2, (lua_Integer)i + 1);
  }
  return 1;
}

/* L:cdecl(name) -> "#include ...\n\nstruct name { ... };\n" */
static int layout_cdecl(lua_State *L) {
  layout_ud *lu = layout_get(L, 1);
  const char *name = luaL_checkstring(L, 2);
  char *text = NULL;
  int rc = shmh_layout_cdecl(&lu->l, name, &text);
  if (rc == -EINVAL)
    return luaL_argerror(L, 2, lua_pushfstring(L, "'%s' is not a C identifier (or is a C keyword)", name));
  if (rc != 0) return luaL_error(L, "cdecl: out of memory");
  lua_pushstring(L, text);
  free(text);
  return 1;
}

/* L:view(seg [, offset]) -> a view of the struct at `offset` (default 0) in the segment. */
static int layout_view(lua_State *L) {
  layout_ud *lu = layout_get(L, 1);
  shmh_segment_check(L, 2);
  lua_Integer off = luaL_optinteger(L, 3, 0);
  luaL_argcheck(L, off >= 0, 3, "offset must not be negative");
  if ((lua_Unsigned)off % lu->l.align != 0)
    luaL_argerror(L, 3, lua_pushfstring(L, "offset %I is not a multiple of the layout's alignment %I",
                                        off, (lua_Integer)lu->l.align));
  /* Raises when the struct does not fit in the segment from `off`. */
  shmh_segment_ptr(L, 2, off, lu->l.size, 0, lua_isnoneornil(L, 3) ? 2 : 3);
  shmh_view_push(L, 2, 1, off);
  return 1;
}

static int layout_tostring(lua_State *L) {
  layout_ud *lu = layout_get(L, 1);
  lua_pushfstring(L, "%s: %I fields, size %I, align %I (%p)", SHMH_LAYOUT,
                  (lua_Integer)lu->l.nfields, (lua_Integer)lu->l.size, (lua_Integer)lu->l.align,
                  (void *)lu);
  return 1;
}

/* `size` and `align` read as fields; everything else is a method. */
static int layout_index(lua_State *L) {
  layout_ud *lu = layout_get(L, 1);
  const char *key = lua_tostring(L, 2);
  if (key != NULL && lua_type(L, 2) == LUA_TSTRING) {
    if (strcmp(key, "size") == 0) {
      lua_pushinteger(L, (lua_Integer)lu->l.size);
      return 1;
    }
    if (strcmp(key, "align") == 0) {
      lua_pushinteger(L, (lua_Integer)lu->l.align);
      return 1;
    }
  }
  lua_pushvalue(L, 2);
  lua_rawget(L, lua_upvalueindex(1));
  return 1;
}

static const luaL_Reg layout_methods[] = {
  {"offset", layout_offset},
  {"fields", layout_fields},
  {"cdecl", layout_cdecl},
  {"view", layout_view},
  {NULL, NULL}
};

static const luaL_Reg layout_meta[] = {
  {"__gc", layout_gc},
  {"__tostring", layout_tostring},
  {NULL, NULL}
};

void shmh_bind_layout(lua_State *L) {
  shmh_newtype(L, SHMH_LAYOUT, NULL, layout_meta);
  luaL_getmetatable(L, SHMH_LAYOUT);
  luaL_newlib(L, layout_methods);
  lua_pushcclosure(L, layout_index, 1);
  lua_setfield(L, -2, "__index");
  lua_pop(L, 1);
  shmh_bind_view(L);
  lua_pushcfunction(L, layout_new);
  lua_setfield(L, -2, "layout");
}
