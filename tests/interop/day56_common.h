/*
 * What the Day56 lab's C writer and reader share, the way the lab's shm_common.h does: the
 * struct in the segment, the default names, the control-socket address and the options both
 * take. Written with plain system calls only, so the peers show the classic flow that the
 * shmhost scenarios (scripts/writer.lua, scripts/reader.lua) must interoperate with.
 *
 * The wire between writer and reader (documented at the top of scripts/writer.lua): the
 * writer sends every reader that connects one message whose data is the text
 * "day56 SEGMENT-NAME\n" and whose SCM_RIGHTS carries one descriptor, that reader's own
 * eventfd. The reader opens the segment by name, as the lab's reader does. The connection
 * then stays open with nothing more on it: its end tells either side that the other is gone.
 */
#ifndef DAY56_COMMON_H
#define DAY56_COMMON_H

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>

#define SHM_NAME_DEFAULT "/day56_shm"
#define SOCK_PATH_DEFAULT "/tmp/day56_shm_ctrl.sock"
#define SHM_MSG_SIZE 256
#define DAY56_HELLO "day56 "

struct shm_data {
  pthread_mutex_t lock;
  bool activation;
  int counter;
  char message[SHM_MSG_SIZE];
};

struct day56_opts {
  const char *name;     /* the segment */
  const char *path;     /* the control socket's path, or NULL with `abstract` */
  const char *abstract; /* an abstract socket name (no file; gone with its last holder) */
  int type;             /* SOCK_STREAM or SOCK_SEQPACKET */
  double wait;          /* reader: how long to wait for the writer's socket */
};

/* Parses the options both peers take; `prog` names the program in messages. Exits 2 on a
 * usage error, the way shmhost does. */
static inline void day56_parse(int argc, char **argv, const char *prog, int reader,
                               struct day56_opts *o) {
  o->name = SHM_NAME_DEFAULT;
  o->path = SOCK_PATH_DEFAULT;
  o->abstract = NULL;
  o->type = SOCK_STREAM;
  o->wait = 5;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    int has_value = i + 1 < argc;
    if (strcmp(a, "--seqpacket") == 0) {
      o->type = SOCK_SEQPACKET;
    } else if (strcmp(a, "--name") == 0 && has_value) {
      o->name = argv[++i];
    } else if (strcmp(a, "--socket") == 0 && has_value) {
      o->path = argv[++i];
      o->abstract = NULL;
    } else if (strcmp(a, "--abstract") == 0 && has_value) {
      o->abstract = argv[++i];
    } else if (reader && strcmp(a, "--wait") == 0 && has_value) {
      char *end;
      o->wait = strtod(argv[++i], &end);
      if (*end != '\0' || !(o->wait >= 0)) {
        fprintf(stderr, "%s: --wait needs a number of seconds, got '%s'\n", prog, argv[i]);
        exit(2);
      }
    } else {
      fprintf(stderr, "usage: %s [--name /SEG] [--socket PATH | --abstract NAME] [--seqpacket]%s\n",
              prog, reader ? " [--wait S]" : "");
      exit(2);
    }
  }
  /* A POSIX shared-memory name is one path component after the slash. */
  if (o->name[0] != '/' || strchr(o->name + 1, '/') != NULL || o->name[1] == '\0' ||
      strlen(o->name) > 250) {
    fprintf(stderr, "%s: --name must look like /name (one slash, at the start), got '%s'\n",
            prog, o->name);
    exit(2);
  }
}

/* Fills the control socket's address. An abstract name starts with a NUL byte in sun_path
 * and its length is part of the address, so the returned length must be passed as is. */
static inline socklen_t day56_addr(const struct day56_opts *o, struct sockaddr_un *a) {
  memset(a, 0, sizeof *a);
  a->sun_family = AF_UNIX;
  const char *n = o->abstract ? o->abstract : o->path;
  size_t len = strlen(n);
  /* A path needs its terminating NUL, an abstract name its leading one: 107 bytes either way. */
  if (len == 0 || len > sizeof a->sun_path - 1) return 0;
  if (o->abstract) {
    memcpy(a->sun_path + 1, n, len);
    return (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + len);
  }
  memcpy(a->sun_path, n, len);
  return (socklen_t)sizeof *a;
}

/* The socket's name for messages: its path, or "@name" for an abstract one. */
static inline void day56_sockname(const struct day56_opts *o, char *buf, size_t n) {
  snprintf(buf, n, "%s%s", o->abstract ? "@" : "", o->abstract ? o->abstract : o->path);
}

#endif
