#ifndef PIER_CMNL_SHIM_H
#define PIER_CMNL_SHIM_H
// netinet/in.h and net/if.h first: the uapi headers below otherwise redefine their structs.
#include <netinet/in.h>
#include <net/if.h>
#include <libmnl/libmnl.h>
#endif
