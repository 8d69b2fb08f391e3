#if canImport(Glibc)
    import Glibc
#endif

/// Reads and writes `/proc/sys` entries. Entries under `net/` belong to the calling thread's
/// network namespace, so wrap calls in `NetworkNamespace.perform` to reach a container's.
public enum Sysctl {
    public struct Failure: Error, CustomStringConvertible, Equatable {
        public let key: String
        public let operation: String
        public let errno: Int32
        public var description: String {
            "\(operation) sysctl \(key): \(String(cString: strerror(errno))) (errno \(errno))"
        }
    }

    /// `key` is a path below /proc/sys such as `net/ipv4/ip_forward`; dots are not accepted,
    /// because interface names may contain them.
    public static func read(_ key: String) throws(Failure) -> String {
        let path = try self.path(for: key)
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw Failure(key: key, operation: "open", errno: errno) }
        defer { close(fd) }
        var buffer = [UInt8](repeating: 0, count: 4096)
        let count = buffer.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
        guard count >= 0 else { throw Failure(key: key, operation: "read", errno: errno) }
        var text = String(decoding: buffer[0..<count], as: UTF8.self)
        while text.last == "\n" { text.removeLast() }
        return text
    }

    public static func write(_ key: String, _ value: String) throws(Failure) {
        let path = try self.path(for: key)
        let fd = open(path, O_WRONLY | O_CLOEXEC)
        guard fd >= 0 else { throw Failure(key: key, operation: "open", errno: errno) }
        defer { close(fd) }
        let bytes = Array(value.utf8)
        let written = bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
        guard written == bytes.count else { throw Failure(key: key, operation: "write", errno: errno) }
    }

    /// Writes only when the value differs, as the reference plugins do for `ip_forward`.
    public static func ensure(_ key: String, _ value: String) throws(Failure) {
        if (try? read(key)) == value { return }
        try write(key, value)
    }

    private static func path(for key: String) throws(Failure) -> String {
        let parts = key.split(separator: "/", omittingEmptySubsequences: false)
        guard !parts.isEmpty, parts.allSatisfy({ !$0.isEmpty && $0 != "." && $0 != ".." }) else {
            throw Failure(key: key, operation: "validate", errno: EINVAL)
        }
        return "/proc/sys/" + key
    }
}
