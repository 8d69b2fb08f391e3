// The transport, its socket and the recording fake live in NetlinkCore, shared with the
// nf_tables and conntrack clients; re-exported so `import Netlink` keeps offering
// `NetlinkTransport`, `NetlinkError` and `RecordingTransport`.
@_exported import NetlinkCore
