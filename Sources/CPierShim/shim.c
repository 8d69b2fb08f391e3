#define _GNU_SOURCE
#include <sched.h>
#include <unistd.h>
#include <sys/uio.h>
#include <sys/syscall.h>
#include <errno.h>
#include <libmnl/libmnl.h>
#include "CPierShim.h"

size_t pier_mnl_socket_buffer_size(void) { return MNL_SOCKET_BUFFER_SIZE; }
int pier_setns(int fd, int nstype) { return setns(fd, nstype); }
int pier_unshare(int flags) { return unshare(flags); }
int pier_probe_process_memory(pid_t pid) {
    char byte;
    struct iovec local = {&byte, 1}, remote = {0, 1};
    return process_vm_readv(pid, &local, 1, &remote, 1, 0) < 0 ? -1 : 0;
}
uint64_t pier_robust_list_head(pid_t pid) {
    void *head = 0;
    size_t length = 0;
    if (syscall(SYS_get_robust_list, pid, &head, &length) != 0) return 0;
    return (uint64_t)(uintptr_t)head;
}
int pier_pivot_root(const char *new_root, const char *put_old) {
    return (int)syscall(SYS_pivot_root, new_root, put_old);
}
int pier_pidfd_open(pid_t pid) {
#ifdef SYS_pidfd_open
    return (int)syscall(SYS_pidfd_open, pid, 0);
#else
    errno = ENOSYS;
    return -1;
#endif
}
int pier_clone_newnet(void) { return CLONE_NEWNET; }
int pier_clone_newuts(void) { return CLONE_NEWUTS; }
int pier_clone_newns(void) { return CLONE_NEWNS; }

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <pthread.h>
#include <signal.h>
#include <sys/syscall.h>
#include <sys/wait.h>

// Closes every descriptor from `first` up except `keepA` and `keepB` (close_range(2), Linux 5.9;
// the raw syscall so the binary needs no glibc 2.34).
static int close_all_but(int first, int keepA, int keepB) {
    int low = keepA < keepB ? keepA : keepB, high = keepA < keepB ? keepB : keepA;
    int bounds[][2] = {{first, low - 1}, {low + 1, high - 1}, {high + 1, -1}};
    for (int i = 0; i < 3; i++) {
        if (bounds[i][1] != -1 && bounds[i][0] > bounds[i][1]) continue;
        if (syscall(SYS_close_range, (unsigned)bounds[i][0], (unsigned)bounds[i][1], 0) != 0) return -1;
    }
    return 0;
}

int pier_close_detached(int fd) {
    int gate[2];
    int handedOver = -1;
    int devNull = open("/dev/null", O_RDWR | O_CLOEXEC);
    if (devNull >= 0 && pipe2(gate, O_CLOEXEC) == 0) {
        // No signal handler may run in the children: the first one borrows this thread's stack.
        sigset_t all, previous;
        sigfillset(&all);
        pthread_sigmask(SIG_BLOCK, &all, &previous);
        // vfork: no copy of the address space to make, or to tear down while this thread waits
        // (a fork and reap cost ~2 ms at a plugin's 10 MB, ~13 ms at 50 MB on a loaded host).
        pid_t child = vfork();
        if (child == 0) {
            // Shares this process's memory while this thread is suspended: plain syscalls only.
            // It drops everything but the socket and the gate's read end before making the
            // grandchild, so once it has exited no copy of the plugin's stdout or of a lock
            // file is left outside this process.
            int keep = fcntl(fd, F_DUPFD, 3), gateIn = fcntl(gate[0], F_DUPFD, 3);
            if (keep < 0 || gateIn < 0 || dup2(devNull, 0) < 0 || dup2(devNull, 1) < 0 || dup2(devNull, 2) < 0
                || close_all_but(3, keep, gateIn) != 0)
                _exit(1);
            // A fork without atfork handlers (they must not run on borrowed memory).
            pid_t grandchild = (pid_t)syscall(SYS_clone, SIGCHLD, 0, 0, 0, 0);
            if (grandchild != 0) _exit(grandchild > 0 ? 0 : 1);
            // Its own copy of memory; reparented to init (or the nearest subreaper), which
            // reaps it. The read returns once every write end is closed: this process closes
            // its only one after `fd`.
            char byte;
            while (read(gateIn, &byte, 1) < 0 && errno == EINTR) {}
            _exit(0);  // drops the last reference to the socket
        }
        pthread_sigmask(SIG_SETMASK, &previous, 0);
        close(gate[0]);
        if (child > 0) {
            int status = 0;
            pid_t reaped;
            while ((reaped = waitpid(child, &status, 0)) < 0 && errno == EINTR) {}
            handedOver = reaped == child && WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : -1;
        }
        // `fd` before the gate: the grandchild must outlive this process's reference.
        close(fd);
        close(gate[1]);
        close(devNull);
        return handedOver;
    }
    if (devNull >= 0) close(devNull);
    close(fd);
    return -1;
}
