import CNI
import PierState

/// The host's list of sysctls tuning may set, as the reference plugin reads it: one regular
/// expression per line in `/etc/cni/tuning/allowlist.conf`, matched anywhere in the key as the
/// config writes it. No file, no restriction. An administrator's control, so no config key can
/// move or disable it.
struct SysctlAllowlist {
    static let path = "/etc/cni/tuning/allowlist.conf"

    let patterns: [String]
    private let expressions: [SysctlPattern]

    /// Nil when there is no allowlist.
    static func load(path: String = Self.path) throws -> SysctlAllowlist? {
        let bytes: [UInt8]?
        do {
            bytes = try FileSystem.read(path)
        } catch {
            throw CNIError(.internalError, "cannot read the sysctl allowlist: \(error)")
        }
        guard let bytes else { return nil }
        let text = String(decoding: bytes, as: UTF8.self)
        var patterns: [String] = []
        var expressions: [SysctlPattern] = []
        for line in text.split(separator: "\n") {
            let pattern = line.trimmingCharacters(in: " \t\r")
            guard !pattern.isEmpty else { continue }
            do {
                expressions.append(try SysctlPattern(pattern))
            } catch {
                throw CNIError(.internalError, "\(path): invalid pattern \"\(pattern)\": \(error)")
            }
            patterns.append(pattern)
        }
        return SysctlAllowlist(patterns: patterns, expressions: expressions)
    }

    func check(_ keys: [SysctlKey]) throws(CNIError) {
        for key in keys where !expressions.contains(where: { $0.matches(key.key) }) {
            throw CNIError(
                .invalidNetworkConfig, "sysctl \(key.key) is not allowed",
                details: "\(Self.path) allows only: \(patterns.joined(separator: ", "))")
        }
    }
}

extension Substring {
    fileprivate func trimmingCharacters(in set: String) -> String {
        let drop = Set(set)
        return String(self.drop(while: { drop.contains($0) }).reversed().drop(while: { drop.contains($0) }).reversed())
    }
}
