#define _GNU_SOURCE
#include <sched.h>
#include <unistd.h>
#include <libmnl/libmnl.h>
#include "CPierShim.h"

size_t pier_mnl_socket_buffer_size(void) { return MNL_SOCKET_BUFFER_SIZE; }
int pier_setns(int fd, int nstype) { return setns(fd, nstype); }
int pier_unshare(int flags) { return unshare(flags); }
int pier_clone_newnet(void) { return CLONE_NEWNET; }
int pier_clone_newuts(void) { return CLONE_NEWUTS; }
int pier_clone_newns(void) { return CLONE_NEWNS; }
