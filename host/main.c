/*
 * shmhost's command line: parse it, find the script, hand over to the runtime.
 *
 *   shmhost [options] SCRIPT [ARG...]   a path, or the name of a bundled scenario
 *   shmhost -e CODE [ARG...]
 *   shmhost -l | --list,  -v | --version,  -h | --help
 *
 * Exit status: 0 done, 1 uncaught error, 2 usage error, 128+N after signal N.
 */
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <lauxlib.h>
#include <lua.h>
#include <uv.h>

#include "runtime_internal.h"

#define EXIT_USAGE 2

static const char usage_text[] =
  "usage: shmhost [options] SCRIPT [ARG...]   run SCRIPT (a path or a bundled name)\n"
  "       shmhost -e CODE [ARG...]            run CODE\n"
  "       shmhost -l | --list                 list bundled scenarios and exercises\n"
  "       shmhost -v | --version              print the version\n"
  "       shmhost -h | --help                 print this help\n"
  "Scripts are looked up in $SHMHOST_PATH (colon-separated), then in this binary's scripts/\n"
  "and examples/ (the source tree's for a build, the installed ones for an installed binary).\n"
  "Docs: docs/api.md, man shmhost.\n";

/* ------------------------------------------------------------ script directories */

struct dirlist {
  char *dirs[64];
  int n;
};

static void dirs_add(struct dirlist *d, const char *dir) {
  if (d->n < 64 && dir[0] != '\0') d->dirs[d->n++] = strdup(dir);
}

/* True when this process runs the installed binary, not one in a build tree. */
static int running_installed(void) {
  char self[PATH_MAX], installed[PATH_MAX];
  if (realpath("/proc/self/exe", self) == NULL) return 0;
  if (realpath(SHMHOST_INSTALLED_BIN, installed) == NULL) return 0;
  return strcmp(self, installed) == 0;
}

/* The search path, in order: $SHMHOST_PATH, then the scripts and examples that belong to this
 * binary. An installed binary uses the installed ones; a binary in a build tree uses its
 * source tree's first, so an older installed copy never shadows the scripts being worked on. */
static void dirs_init(struct dirlist *d) {
  d->n = 0;
  const char *env = getenv("SHMHOST_PATH");
  if (env) {
    char *copy = strdup(env), *save = NULL;
    for (char *p = strtok_r(copy, ":", &save); p; p = strtok_r(NULL, ":", &save)) dirs_add(d, p);
    free(copy);
  }
  if (!running_installed()) {
    dirs_add(d, SHMHOST_SRC_SCRIPTDIR);
    dirs_add(d, SHMHOST_SRC_EXAMPLEDIR);
  }
  dirs_add(d, SHMHOST_SCRIPTDIR);
  dirs_add(d, SHMHOST_EXAMPLEDIR);
}

static void dirs_free(struct dirlist *d) {
  for (int i = 0; i < d->n; i++) free(d->dirs[i]);
  d->n = 0;
}

static int is_file(const char *path) {
  struct stat st;
  return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

/* Finds NAME (".lua" optional) in the search path; returns a malloc'd path or NULL. */
static char *find_script(const struct dirlist *d, const char *name) {
  char path[PATH_MAX];
  size_t len = strlen(name);
  int has_ext = len > 4 && strcmp(name + len - 4, ".lua") == 0;
  for (int i = 0; i < d->n; i++) {
    snprintf(path, sizeof path, "%s/%s%s", d->dirs[i], name, has_ext ? "" : ".lua");
    if (is_file(path)) return strdup(path);
  }
  return NULL;
}

struct entry {
  char name[256];
  char desc[256];
};

/* The description of a script: its first comment line. */
static void read_desc(const char *path, char *out, size_t n) {
  out[0] = '\0';
  FILE *f = fopen(path, "r");
  if (f == NULL) return;
  char line[512];
  while (fgets(line, sizeof line, f)) {
    if (line[0] == '#' && line[1] == '!') continue;
    char *p = line;
    while (*p == ' ' || *p == '\t') p++;
    if (p[0] != '-' || p[1] != '-') break;
    p += 2;
    while (*p == '-' || *p == ' ' || *p == '\t' || *p == '[') p++;
    p[strcspn(p, "\r\n")] = '\0';
    if (*p == '\0') continue;
    snprintf(out, n, "%s", p);
    break;
  }
  fclose(f);
}

static int entry_cmp(const void *a, const void *b) {
  return strcmp(((const struct entry *)a)->name, ((const struct entry *)b)->name);
}

/* Collects the *.lua files of DIR (names prefixed with PREFIX) that no earlier directory
 * provided. */
static void collect(const char *dir, const char *prefix, struct entry **list, int *n, int *cap) {
  DIR *dp = opendir(dir);
  if (dp == NULL) return;
  struct dirent *de;
  while ((de = readdir(dp)) != NULL) {
    size_t len = strlen(de->d_name);
    if (len <= 4 || strcmp(de->d_name + len - 4, ".lua") != 0 || de->d_name[0] == '.') continue;
    char name[256], path[PATH_MAX];
    snprintf(name, sizeof name, "%s%.*s", prefix, (int)(len - 4), de->d_name);
    snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
    if (!is_file(path)) continue;
    int dup = 0;
    for (int i = 0; i < *n && !dup; i++) dup = strcmp((*list)[i].name, name) == 0;
    if (dup) continue;
    if (*n == *cap) {
      *cap = *cap ? *cap * 2 : 64;
      *list = realloc(*list, (size_t)*cap * sizeof **list);
      if (*list == NULL) { perror("shmhost"); exit(1); }
    }
    snprintf((*list)[*n].name, sizeof (*list)[*n].name, "%s", name);
    read_desc(path, (*list)[*n].desc, sizeof (*list)[*n].desc);
    (*n)++;
  }
  closedir(dp);
}

static int list_scripts(FILE *out, const char *indent) {
  struct dirlist d;
  dirs_init(&d);
  struct entry *list = NULL;
  int n = 0, cap = 0;
  char sub[PATH_MAX];
  for (int i = 0; i < d.n; i++) {
    collect(d.dirs[i], "", &list, &n, &cap);
    snprintf(sub, sizeof sub, "%s/exercises", d.dirs[i]);
    collect(sub, "exercises/", &list, &n, &cap);
  }
  if (n > 0) qsort(list, (size_t)n, sizeof *list, entry_cmp);
  int width = 0;
  for (int i = 0; i < n; i++) {
    int w = (int)strlen(list[i].name);
    if (w > width) width = w;
  }
  for (int i = 0; i < n; i++)
    fprintf(out, "%s%-*s  %s\n", indent, width, list[i].name, list[i].desc);
  free(list);
  dirs_free(&d);
  return n;
}

/* ------------------------------------------------------------ running */

static void set_arg_table(lua_State *L, const char *arg0, char **argv, int argc, int first) {
  lua_createtable(L, argc - first, 2);
  lua_pushstring(L, "shmhost");
  lua_rawseti(L, -2, -1);
  lua_pushstring(L, arg0);
  lua_rawseti(L, -2, 0);
  for (int i = first; i < argc; i++) {
    lua_pushstring(L, argv[i]);
    lua_rawseti(L, -2, i - first + 1);
  }
  lua_setglobal(L, "arg");
}

/* Bundled scripts share modules kept in a lib/ folder beside them (scripts/lib/x.lua is
 * `require "x"`): put those folders of the search path first in package.path. */
static void set_package_path(lua_State *L) {
  struct dirlist d;
  dirs_init(&d);
  luaL_Buffer b;
  lua_getglobal(L, "package");
  luaL_buffinit(L, &b);
  for (int i = 0; i < d.n; i++) {
    luaL_addstring(&b, d.dirs[i]);
    luaL_addstring(&b, "/lib/?.lua;");
  }
  lua_getfield(L, -2, "path");
  luaL_addvalue(&b);
  luaL_pushresult(&b);
  lua_setfield(L, -2, "path");
  lua_pop(L, 1);
  dirs_free(&d);
}

static int usage_error(const char *fmt, const char *what) {
  fprintf(stderr, "shmhost: ");
  fprintf(stderr, fmt, what);
  fprintf(stderr, "\n%s", usage_text);
  return EXIT_USAGE;
}

int main(int argc, char **argv) {
  const char *code = NULL;
  int i = 1;
  for (; i < argc; i++) {
    const char *a = argv[i];
    if (strcmp(a, "--") == 0) { i++; break; }
    if (a[0] != '-' || a[1] == '\0') break;
    if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
      fputs(usage_text, stdout);
      return 0;
    } else if (strcmp(a, "-v") == 0 || strcmp(a, "--version") == 0) {
      printf("shmhost %s (%s, libuv %s)\n", SHMHOST_VERSION, LUA_RELEASE, uv_version_string());
      return 0;
    } else if (strcmp(a, "-l") == 0 || strcmp(a, "--list") == 0) {
      list_scripts(stdout, "");
      return 0;
    } else if (strcmp(a, "-e") == 0) {
      if (i + 1 >= argc) return usage_error("%s needs an argument", "-e");
      code = argv[++i];
      i++;
      break;
    } else {
      return usage_error("unknown option '%s'", a);
    }
  }

  char *path = NULL;
  const char *script = NULL;
  if (code == NULL) {
    if (i >= argc) {
      fputs(usage_text, stderr);
      return EXIT_USAGE;
    }
    script = argv[i++];
    if (strcmp(script, "-") == 0 || is_file(script)) {
      path = strdup(script);
    } else {
      struct dirlist d;
      dirs_init(&d);
      path = find_script(&d, script);
      dirs_free(&d);
      if (path == NULL) {
        fprintf(stderr, "shmhost: no script '%s': not a file and not a bundled name\n", script);
        fprintf(stderr, "bundled scenarios and exercises:\n");
        if (list_scripts(stderr, "  ") == 0) fprintf(stderr, "  (none found)\n");
        return EXIT_USAGE;
      }
    }
  }

  if (shmh_rt_init() != 0) {
    fprintf(stderr, "shmhost: cannot initialise the runtime\n");
    return 1;
  }
  lua_State *L = shmh_rt_state();
  set_package_path(L);
  set_arg_table(L, code ? "-e" : path, argv, argc, i);
  int status;
  if (code) status = luaL_loadbuffer(L, code, strlen(code), "=(command line)");
  else status = luaL_loadfile(L, strcmp(path, "-") == 0 ? NULL : path);
  free(path);
  if (status != LUA_OK) {
    shmh_rt_report(lua_tostring(L, -1));
    lua_pop(L, 1);
    return shmh_rt_finish(1);
  }
  int nargs = argc - i;
  luaL_checkstack(L, nargs + 1, "too many arguments");
  for (int k = i; k < argc; k++) lua_pushstring(L, argv[k]);
  int code_out = shmh_rt_run_main(nargs);
  return shmh_rt_finish(code_out);
}
