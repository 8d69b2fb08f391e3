import CNI

/// A sysctl key from the config, resolved to its path below /proc/sys.
///
/// Both spellings of sysctl.d(5) are accepted: dotted (`net.ipv4.conf.eth0/100.rp_filter`, where
/// a `/` stands for a dot inside a component) and slashed (`net/ipv4/conf/eth0.100/rp_filter`,
/// taken literally); the first separator decides. A component that is exactly `IFNAME` becomes
/// `CNI_IFNAME`, after splitting, so an interface name with dots stays one component. Anything
/// that could leave /proc/sys/net is refused: the key must start with `net`, and no component
/// may be empty (a leading or doubled `/`), `.` or `..`.
struct SysctlKey: Equatable {
    /// As written in the config, for messages.
    let key: String
    /// Relative to /proc/sys, slash-separated: `net/core/somaxconn`.
    let path: String

    init(_ key: String, ifName: String) throws(CNIError) {
        self.key = key
        guard !key.isEmpty, !key.utf8.contains(0) else { throw Self.refusal(key, "it is empty or contains NUL") }
        let slashed = key.first(where: { $0 == "." || $0 == "/" }) == "/"
        var components: [String]
        if slashed {
            components = key.split(separator: "/", omittingEmptySubsequences: false).map(String.init)
        } else {
            components = key.split(separator: ".", omittingEmptySubsequences: false).map {
                String($0).replacingSlashesWithDots()
            }
        }
        components = components.map { $0 == "IFNAME" ? ifName : $0 }
        if let bad = components.first(where: { $0.isEmpty || $0 == "." || $0 == ".." }) {
            throw Self.refusal(key, bad.isEmpty ? "it has an empty component" : "it has a \"\(bad)\" component")
        }
        guard components.count >= 2, components[0] == "net" else {
            throw Self.refusal(key, "only net.* sysctls of the container's network namespace can be set")
        }
        path = components.joined(separator: "/")
    }

    /// The dotted form, as `sysctl` prints it, for messages.
    var dotted: String {
        path.split(separator: "/").map { $0.replacingDotsWithSlashes() }.joined(separator: ".")
    }

    private static func refusal(_ key: String, _ reason: String) -> CNIError {
        CNIError(.invalidNetworkConfig, "invalid sysctl key \"\(key)\": \(reason)")
    }
}

extension StringProtocol {
    fileprivate func replacingSlashesWithDots() -> String {
        String(map { $0 == "/" ? "." : $0 })
    }

    fileprivate func replacingDotsWithSlashes() -> String {
        String(map { $0 == "." ? "/" : $0 })
    }
}

/// Sysctl values compare by their fields: the kernel prints multi-value entries with tabs
/// (`net.ipv4.tcp_rmem` is "4096\t131072\t6291456") whatever separator was written.
func sameSysctlValue(_ lhs: String, _ rhs: String) -> Bool {
    lhs.split(whereSeparator: \.isWhitespace) == rhs.split(whereSeparator: \.isWhitespace)
}
