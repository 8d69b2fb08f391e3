#ifndef PIER_SHIM_H
#define PIER_SHIM_H
// What Swift cannot import on its own: function-like macros, uapi constants that arrive
// as macros of macros, and a few syscalls without a glibc prototype in every version.
#include <netinet/in.h>
#include <net/if.h>
#include <sys/types.h>
#include <stdint.h>
#include <sys/statfs.h>
#include <sys/mount.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <linux/if_link.h>
#include <linux/ip.h>
#include <linux/netconf.h>
#include <linux/if_addr.h>
#include <linux/if_bridge.h>
#include <linux/neighbour.h>
#include <linux/veth.h>
#include <linux/if_ether.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter/nfnetlink_conntrack.h>
#include <linux/netfilter/nf_conntrack_tcp.h>

/// The receive buffer size libmnl recommends (MNL_SOCKET_BUFFER_SIZE is a function-like macro).
size_t pier_mnl_socket_buffer_size(void);

/// setns(2) and unshare(2), declared here so Swift sees them whatever glibc's feature macros say.
int pier_setns(int fd, int nstype);
int pier_unshare(int flags);

/// process_vm_readv(2) of one byte at address 0 of `pid`: -1 with errno ESRCH when there is no
/// such process or it is a zombie (no memory left), EFAULT for a live one (glibc declares it only
/// behind _GNU_SOURCE).
int pier_probe_process_memory(pid_t pid);

/// get_robust_list(2) of `pid` (0: this thread): the address of the robust futex list it registered
/// (glibc registers one for every thread it starts, at an address ASLR places anew in every process;
/// the kernel clears it when the process exits, so a zombie has none), 0 when it has none or on error
/// (ESRCH: no such process; EPERM: not ours to look at).
uint64_t pier_robust_list_head(pid_t pid);

/// pivot_root(2), which glibc does not wrap.
int pier_pivot_root(const char *new_root, const char *put_old);

/// pidfd_open(2) (Linux 5.3): a descriptor that polls readable when `pid` exits, for waiting on
/// a process that is not our child. -1 with errno when there is no such process.
int pier_pidfd_open(pid_t pid);

/// Namespace clone flags (macros in <sched.h> behind _GNU_SOURCE).
int pier_clone_newnet(void);
int pier_clone_newuts(void);
int pier_clone_newns(void);

/// Closes `fd` without waiting for the kernel to release it: a detached grandchild that holds
/// nothing else (stdio on /dev/null, every other descriptor closed) drops the last reference
/// once this process has let go. For sockets whose release waits for an RCU grace period
/// (AF_PACKET). Written in C because the child runs on borrowed memory (vfork) with plain syscalls.
/// Returns 0 if the grandchild took the release over, -1 if it was done here.
int pier_close_detached(int fd);
#endif
