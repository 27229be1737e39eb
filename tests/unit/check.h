/*
 * A small harness for the C unit tests of the core. Each case runs in a forked child with a
 * deadline, so a case that crashes or hangs fails alone and cannot take the others with it.
 *
 *     static void t_basic(void) { CHECK(1 + 1 == 2); CHECK_EQ(shmh_x(), 0); }
 *     int main(void) { return RUN(t_basic, t_other); }
 *
 * Cases print nothing on success. RUN prints one line per case and a closing
 * "N passed, N failed" line, and exits non-zero when any case failed.
 */
#ifndef SHMHOST_CHECK_H
#define SHMHOST_CHECK_H

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef CHECK_DEADLINE
#define CHECK_DEADLINE 60
#endif

#define CHECK(cond) do { if (!(cond)) { \
  fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); _exit(1); } } while (0)

#define CHECK_EQ(a, b) do { long long check_a_ = (long long)(a), check_b_ = (long long)(b); \
  if (check_a_ != check_b_) { fprintf(stderr, "%s:%d: %s == %s failed: %lld != %lld\n", \
    __FILE__, __LINE__, #a, #b, check_a_, check_b_); _exit(1); } } while (0)

#define CHECK_STR(a, b) do { const char *check_a_ = (a), *check_b_ = (b); \
  if (strcmp(check_a_, check_b_) != 0) { fprintf(stderr, "%s:%d: \"%s\" != \"%s\"\n", \
    __FILE__, __LINE__, check_a_, check_b_); _exit(1); } } while (0)

typedef void (*check_case_fn)(void);

static int check_run(const char *const names[], const check_case_fn cases[], int n) {
  int failed = 0;
  for (int i = 0; i < n; i++) {
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid < 0) { perror("fork"); return 1; }
    if (pid == 0) {
      /* A new process group, so the parent can kill whatever the case started. */
      setpgid(0, 0);
      alarm(CHECK_DEADLINE);
      cases[i]();
      fflush(stdout);
      _exit(0);
    }
    int status;
    while (waitpid(pid, &status, 0) < 0) {}
    kill(-pid, SIGKILL);
    int ok = WIFEXITED(status) && WEXITSTATUS(status) == 0;
    if (ok) printf("ok   %s\n", names[i]);
    else if (WIFSIGNALED(status))
      printf("FAIL %s (signal %d%s)\n", names[i], WTERMSIG(status),
             WTERMSIG(status) == SIGALRM ? ", deadline passed" : "");
    else printf("FAIL %s (status %d)\n", names[i], WEXITSTATUS(status));
    failed += !ok;
  }
  printf("%d passed, %d failed\n", n - failed, failed);
  return failed ? 1 : 0;
}

#define CHECK_STRINGIFY_(...) #__VA_ARGS__
#define RUN(...) run_cases_(CHECK_STRINGIFY_(__VA_ARGS__), \
  (const check_case_fn[]){__VA_ARGS__}, \
  (int)(sizeof((const check_case_fn[]){__VA_ARGS__}) / sizeof(check_case_fn)))

/* Splits the stringified list of case names at commas. */
static int run_cases_(const char *list, const check_case_fn cases[], int n) {
  static char buf[4096];
  const char *names[256];
  snprintf(buf, sizeof buf, "%s", list);
  int k = 0;
  for (char *tok = strtok(buf, ", "); tok && k < n && k < 256; tok = strtok(NULL, ", "))
    names[k++] = tok;
  while (k < n) names[k++] = "?";
  return check_run(names, cases, n);
}

#endif
