/// What a host device looked like before Pier moved it into a container, kept on the device
/// itself (IFLA_IFALIAS) so DEL can put it back with no cached result and no state on disk:
/// `pier-host:<name>:<mtu>:<up|down>[:<the alias it had>]`. Interface names never contain
/// ':', so the fields split unambiguously; the old alias, last, may contain anything.
struct DeviceOrigin: Equatable {
    var name: String
    var mtu: UInt32
    var wasUp: Bool
    /// The device's own alias before the move; empty when it had none.
    var alias: String

    static let prefix = "pier-host"
    /// The kernel refuses an IFLA_IFALIAS of IFALIASZ (256) bytes or more, its NUL included.
    static let maximumLength = 254

    /// The alias to store. An old alias too long to fit beside the rest is given up (and logged
    /// by the caller): putting the device back matters more.
    var encoded: String {
        let base = "\(Self.prefix):\(name):\(mtu):\(wasUp ? "up" : "down")"
        let full = alias.isEmpty ? base : base + ":" + alias
        return full.utf8.count <= Self.maximumLength ? full : base
    }

    init(name: String, mtu: UInt32, wasUp: Bool, alias: String) {
        self.name = name
        self.mtu = mtu
        self.wasUp = wasUp
        self.alias = alias
    }

    /// Nil for any alias Pier did not write.
    init?(alias text: String?) {
        guard let text else { return nil }
        let parts = text.split(separator: ":", maxSplits: 4, omittingEmptySubsequences: false)
        guard parts.count >= 4, parts[0] == Self.prefix, !parts[1].isEmpty, let mtu = UInt32(parts[2]),
            parts[3] == "up" || parts[3] == "down"
        else { return nil }
        self.init(
            name: String(parts[1]), mtu: mtu, wasUp: parts[3] == "up", alias: parts.count == 5 ? String(parts[4]) : "")
    }
}
