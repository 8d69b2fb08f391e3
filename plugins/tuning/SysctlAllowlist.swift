import CNI

#if canImport(Glibc)
    import Glibc
#endif

/// The host's list of sysctls tuning may set, as the reference plugin reads it: one regular
/// expression per line in `/etc/cni/tuning/allowlist.conf`, matched anywhere in the key as the
/// config writes it. No file, no restriction. An administrator's control, so no config key can
/// move or disable it.
struct SysctlAllowlist {
    static let path = "/etc/cni/tuning/allowlist.conf"

    let patterns: [String]
    private let expressions: [Regex<AnyRegexOutput>]

    /// Nil when there is no allowlist.
    static func load(path: String = Self.path) throws -> SysctlAllowlist? {
        guard let text = try readText(path) else { return nil }
        var patterns: [String] = []
        var expressions: [Regex<AnyRegexOutput>] = []
        for line in text.split(separator: "\n") {
            let pattern = line.trimmingCharacters(in: " \t\r")
            guard !pattern.isEmpty else { continue }
            do {
                expressions.append(try Regex(pattern))
            } catch {
                throw CNIError(.internalError, "\(path): invalid pattern \"\(pattern)\": \(error)")
            }
            patterns.append(pattern)
        }
        return SysctlAllowlist(patterns: patterns, expressions: expressions)
    }

    func check(_ keys: [SysctlKey]) throws(CNIError) {
        for key in keys where !expressions.contains(where: { key.key.contains($0) }) {
            throw CNIError(
                .invalidNetworkConfig, "sysctl \(key.key) is not allowed",
                details: "\(Self.path) allows only: \(patterns.joined(separator: ", "))")
        }
    }

    private static func readText(_ path: String) throws -> String? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else {
            if errno == ENOENT || errno == ENOTDIR { return nil }
            throw CNIError(.internalError, "cannot read \(path): \(String(cString: strerror(errno)))")
        }
        defer { close(fd) }
        var data: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            let count = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if count == 0 { return String(decoding: data, as: UTF8.self) }
            if count < 0 {
                if errno == EINTR { continue }
                throw CNIError(.internalError, "cannot read \(path): \(String(cString: strerror(errno)))")
            }
            data.append(contentsOf: buffer[0..<count])
        }
    }
}

extension Substring {
    fileprivate func trimmingCharacters(in set: String) -> String {
        let drop = Set(set)
        return String(self.drop(while: { drop.contains($0) }).reversed().drop(while: { drop.contains($0) }).reversed())
    }
}
