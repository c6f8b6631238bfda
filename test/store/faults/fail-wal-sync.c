/*
 * Preloaded into a child process (LD_PRELOAD) by sqlite-wal-sync-fault.test.ts: the next fsync
 * or fdatasync of a SQLite WAL (a path ending in "-wal") after the file named by
 * CONVEYOR_FAIL_WAL_SYNC appears fails with EIO, and that file is removed, so each trigger
 * fails one call, as a disk reports a write-back error to one fsync. SQLite's own fsync in a
 * COMMIT and Node's fdatasync both reach libc through these symbols. Likewise the next one
 * after the file named by CONVEYOR_SLOW_WAL_SYNC appears takes 300 ms longer, so that another
 * fsync can meet the failure while it runs.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Whether the file named by the variable exists and fd is a WAL: true for one caller only per trigger. */
static int triggered(const char *variable, int fd) {
  const char *trigger = getenv(variable);
  if (trigger == NULL) return 0;
  char link[64], path[4096];
  snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
  ssize_t n = readlink(link, path, sizeof path - 1);
  if (n < 4) return 0;
  path[n] = '\0';
  if (strcmp(path + n - 4, "-wal") != 0) return 0;
  /* unlink succeeds for one caller only, whichever thread asks first */
  return unlink(trigger) == 0;
}

static int fail_now(int fd) {
  if (triggered("CONVEYOR_SLOW_WAL_SYNC", fd)) usleep(300 * 1000);
  return triggered("CONVEYOR_FAIL_WAL_SYNC", fd);
}

int fsync(int fd) {
  static int (*real)(int);
  if (real == NULL) real = (int (*)(int))dlsym(RTLD_NEXT, "fsync");
  if (fail_now(fd)) {
    errno = EIO;
    return -1;
  }
  return real(fd);
}

int fdatasync(int fd) {
  static int (*real)(int);
  if (real == NULL) real = (int (*)(int))dlsym(RTLD_NEXT, "fdatasync");
  if (fail_now(fd)) {
    errno = EIO;
    return -1;
  }
  return real(fd);
}
