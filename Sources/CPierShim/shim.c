#define _GNU_SOURCE
#include <sched.h>
#include <unistd.h>
#include <sys/uio.h>
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
int pier_clone_newnet(void) { return CLONE_NEWNET; }
int pier_clone_newuts(void) { return CLONE_NEWUTS; }
int pier_clone_newns(void) { return CLONE_NEWNS; }
