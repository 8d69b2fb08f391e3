import Glibc
import IPAddressing

/// A sockaddr_in or sockaddr_in6 in a sockaddr_storage, for the plain socket calls.
struct SocketAddress {
    var storage = sockaddr_storage()
    var length = socklen_t(MemoryLayout<sockaddr_storage>.size)

    /// An empty address for recvfrom/accept to fill.
    init() {}

    init(_ address: IPAddress, port: UInt16) {
        let bytes = address.bytes
        withUnsafeMutablePointer(to: &storage) { storage in
            switch address.family {
            case .v4:
                storage.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { pointer in
                    pointer.pointee.sin_family = sa_family_t(AF_INET)
                    pointer.pointee.sin_port = port.bigEndian
                    withUnsafeMutableBytes(of: &pointer.pointee.sin_addr) { $0.copyBytes(from: bytes) }
                }
            case .v6:
                storage.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { pointer in
                    pointer.pointee.sin6_family = sa_family_t(AF_INET6)
                    pointer.pointee.sin6_port = port.bigEndian
                    withUnsafeMutableBytes(of: &pointer.pointee.sin6_addr) { $0.copyBytes(from: bytes) }
                }
            }
        }
        length = socklen_t(address.family == .v4 ? MemoryLayout<sockaddr_in>.size : MemoryLayout<sockaddr_in6>.size)
    }

    var address: IPAddress? {
        withUnsafeBytes(of: storage) { raw in
            switch Int32(raw.load(as: sa_family_t.self)) {
            case AF_INET:
                let value = raw.load(as: sockaddr_in.self)
                return withUnsafeBytes(of: value.sin_addr) { IPAddress(bytes: $0) }
            case AF_INET6:
                let value = raw.load(as: sockaddr_in6.self)
                return withUnsafeBytes(of: value.sin6_addr) { IPAddress(bytes: $0) }
            default:
                return nil
            }
        }
    }

    var port: UInt16 {
        withUnsafeBytes(of: storage) { raw in
            switch Int32(raw.load(as: sa_family_t.self)) {
            case AF_INET: UInt16(bigEndian: raw.load(as: sockaddr_in.self).sin_port)
            case AF_INET6: UInt16(bigEndian: raw.load(as: sockaddr_in6.self).sin6_port)
            default: 0
            }
        }
    }

    func withSockaddr<R>(_ body: (UnsafePointer<sockaddr>, socklen_t) -> R) -> R {
        withUnsafePointer(to: storage) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { body($0, length) } }
    }
}

/// Small wrappers over the socket calls the server and its control client make.
enum Sockets {
    static func errorText(_ code: Int32 = errno) -> String { String(cString: strerror(code)) }

    static func setOption(_ fd: Int32, _ level: Int32, _ name: Int32, _ value: Int32) {
        var value = value
        _ = setsockopt(fd, level, name, &value, socklen_t(MemoryLayout<Int32>.size))
    }

    /// A socket of `type` bound to `address:port`. IP_FREEBIND lets it bind an address the
    /// kernel still has tentative (an IPv6 gateway during DAD) or that a bridge is about to get.
    static func bound(_ type: Int32, _ address: IPAddress, port: UInt16) throws(NameServiceError) -> Int32 {
        let family = address.family == .v4 ? AF_INET : AF_INET6
        let fd = socket(family, type | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw NameServiceError("socket: \(errorText())") }
        setOption(fd, SOL_SOCKET, SO_REUSEADDR, 1)
        setOption(fd, Int32(IPPROTO_IP), IP_FREEBIND, 1)
        if family == AF_INET6 { setOption(fd, Int32(IPPROTO_IPV6), IPV6_V6ONLY, 1) }
        let socketAddress = SocketAddress(address, port: port)
        let result = socketAddress.withSockaddr { bind(fd, $0, $1) }
        guard result == 0 else {
            let code = errno
            close(fd)
            throw NameServiceError("bind \(address) port \(port): \(errorText(code))")
        }
        return fd
    }

    /// Writes all of `bytes` to a blocking descriptor (EINTR retried); false on any error.
    @discardableResult
    static func writeAll(_ fd: Int32, _ bytes: [UInt8]) -> Bool {
        var offset = 0
        while offset < bytes.count {
            let count = bytes.withUnsafeBytes {
                send(fd, $0.baseAddress.map { $0 + offset }, $0.count - offset, Int32(MSG_NOSIGNAL))
            }
            if count < 0 {
                if errno == EINTR { continue }
                return false
            }
            offset += count
        }
        return true
    }

    static func unixAddress(_ path: String) -> (sockaddr_un, socklen_t)? {
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        guard bytes.count < MemoryLayout.size(ofValue: address.sun_path) else { return nil }
        withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: bytes) }
        return (address, socklen_t(MemoryLayout<sa_family_t>.size + bytes.count + 1))
    }

    /// accept(2) with close-on-exec (and O_NONBLOCK if asked) set before anything else runs;
    /// accept4 is a GNU extension Swift's Glibc module does not import.
    static func accept(_ listener: Int32, nonBlocking: Bool) -> Int32 {
        let fd = Glibc.accept(listener, nil, nil)
        guard fd >= 0 else { return fd }
        _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
        _ = fcntl(fd, F_SETFL, nonBlocking ? O_NONBLOCK : 0)
        return fd
    }

    static func monotonicSeconds() -> Double {
        var now = timespec()
        clock_gettime(CLOCK_MONOTONIC, &now)
        return Double(now.tv_sec) + Double(now.tv_nsec) / 1e9
    }
}
