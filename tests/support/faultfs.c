/* A fault-injecting file layer for spool's disk-fault tests, preloaded into the broker
 * (LD_PRELOAD). It wraps fsync and fdatasync:
 *   - FAULTFS_FAIL_FSYNC_IF=<path>: while <path> exists, every sync fails with EIO and syncs
 *     nothing (a failing disk).
 *   - FAULTFS_JOURNAL=<path>: before each successful sync of a regular file, the file's size
 *     just before the sync is appended to <path> as "<size> <file path>\n". Everything below
 *     that size was written before the sync and is on stable storage after it, so cutting each
 *     file back to its last journaled size simulates a power loss after a SIGKILL.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

static pthread_mutex_t journal_lock = PTHREAD_MUTEX_INITIALIZER;

static int failing(void) {
    const char *flag = getenv("FAULTFS_FAIL_FSYNC_IF");
    return flag != NULL && access(flag, F_OK) == 0;
}

static int size_before(int fd, long long *size, char *path, size_t cap) {
    char link[64];
    struct stat st;
    ssize_t n;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) return 0;
    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    n = readlink(link, path, cap - 1);
    if (n <= 0) return 0;
    path[n] = '\0';
    *size = (long long)st.st_size;
    return 1;
}

static void journal(long long size, const char *path) {
    const char *journal_path = getenv("FAULTFS_JOURNAL");
    char line[4200];
    int len, fd;
    if (journal_path == NULL) return;
    len = snprintf(line, sizeof line, "%lld %s\n", size, path);
    if (len <= 0 || (size_t)len >= sizeof line) return;
    pthread_mutex_lock(&journal_lock);
    fd = open(journal_path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    if (fd >= 0) {
        ssize_t ignored = write(fd, line, (size_t)len);
        (void)ignored;
        close(fd);
    }
    pthread_mutex_unlock(&journal_lock);
}

static int wrapped(const char *name, int fd) {
    int (*real)(int) = (int (*)(int))dlsym(RTLD_NEXT, name);
    char path[4096];
    long long size = 0;
    int known, result;
    if (failing()) {
        errno = EIO;
        return -1;
    }
    known = size_before(fd, &size, path, sizeof path);
    result = real(fd);
    if (result == 0 && known) journal(size, path);
    return result;
}

int fsync(int fd) { return wrapped("fsync", fd); }
int fdatasync(int fd) { return wrapped("fdatasync", fd); }
