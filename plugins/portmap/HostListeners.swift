import CNI
import Glibc
import IPAddressing
import PierTables

/// A published port takes every packet for its host port, so a server already listening there on the
/// host would silently lose its traffic. Like Docker, refuse: try to bind each host address and port
/// the way a listener would; a socket holding it (listening TCP, bound UDP) makes bind fail with
/// EADDRINUSE. SO_REUSEADDR keeps TIME_WAIT leftovers from counting as listeners, and lets two
/// plugins racing for one port probe it at once (two bound, non-listening sockets that both ask
/// for reuse do not conflict), so the race is settled by the DNAT map, not by the probes.
enum HostListeners {
    static func refuseOccupied(_ ports: [PublishedPort]) throws {
        for port in ports where port.ipProtocol == .tcp || port.ipProtocol == .udp {
            guard isInUse(port) else { continue }
            let address =
                port.hostAddress.map { $0.family == .v6 ? "[\($0)]" : "\($0)" }
                ?? (port.family == .v4 ? "0.0.0.0" : "[::]")
            throw CNIError(
                .internalError,
                "failed to publish \(address):\(port.hostPort)/\(port.ipProtocol.name): address already in use",
                details: "a process on the host listens on it; stop it or pick another host port")
        }
    }

    private static func isInUse(_ port: PublishedPort) -> Bool {
        let family = port.family == .v4 ? AF_INET : AF_INET6
        let type = port.ipProtocol == .tcp ? SOCK_STREAM : SOCK_DGRAM
        let descriptor = socket(family, Int32(type.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard descriptor >= 0 else { return false }
        defer { close(descriptor) }
        var on: Int32 = 1
        let size = socklen_t(MemoryLayout<Int32>.size)
        _ = setsockopt(descriptor, SOL_SOCKET, SO_REUSEADDR, &on, size)
        let result: Int32
        if port.family == .v4 {
            var address = sockaddr_in()
            address.sin_family = sa_family_t(AF_INET)
            address.sin_port = port.hostPort.bigEndian
            if let host = port.hostAddress {
                withUnsafeMutableBytes(of: &address.sin_addr) { $0.copyBytes(from: host.bytes) }
            }
            result = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    bind(descriptor, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
                }
            }
        } else {
            // Only this family: a v4 listener is the IPv4 mapping's business.
            _ = setsockopt(descriptor, Int32(IPPROTO_IPV6), IPV6_V6ONLY, &on, size)
            var address = sockaddr_in6()
            address.sin6_family = sa_family_t(AF_INET6)
            address.sin6_port = port.hostPort.bigEndian
            if let host = port.hostAddress {
                withUnsafeMutableBytes(of: &address.sin6_addr) { $0.copyBytes(from: host.bytes) }
            }
            result = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    bind(descriptor, $0, socklen_t(MemoryLayout<sockaddr_in6>.size))
                }
            }
        }
        return result != 0 && errno == EADDRINUSE
    }
}
