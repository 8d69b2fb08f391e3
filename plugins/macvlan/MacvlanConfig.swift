import CNI
import IPAddressing
import Netlink

/// The macvlan plugin's own keys, with the reference plugin's names and meanings. Unknown keys
/// are ignored; everything that can be refused without the kernel is refused by `validate()`.
struct MacvlanConfig: JSONReadable {
    /// The parent interface; nil means "the interface of the default route".
    var master: String?
    var mode: String = "bridge"
    /// 0 or absent: the kernel's default (the master's MTU).
    var mtu: Int?
    var mac: String?
    /// The master already lives inside the container netns (e.g. an SR-IOV VF moved there).
    var linkInContainer: Bool = false
    /// Broadcast queue length of the master; 0 or absent: the kernel's default.
    var bcqueuelen: Int?

    init(_ reader: JSONReader) throws(CNIError) {
        master = try reader.string("master").flatMap { $0.isEmpty ? nil : $0 }
        mode = try reader.string("mode") ?? "bridge"
        mtu = try reader.int("mtu")
        mac = try reader.string("mac").flatMap { $0.isEmpty ? nil : $0 }
        linkInContainer = try reader.bool("linkInContainer") ?? false
        bcqueuelen = try reader.int("bcqueuelen")
    }

    /// The validated form, ready to create a link from.
    struct Settings {
        var mode: MacvlanMode
        var mtu: UInt32?
        var mac: MACAddress?
        var broadcastQueueLength: UInt32?
    }

    func validate() throws(CNIError) -> Settings {
        guard let mode = Self.mode(named: mode) else {
            throw CNIError(
                .invalidNetworkConfig,
                "unknown macvlan mode \"\(self.mode)\" (expected bridge, private, vepa, passthru or source)")
        }
        var settings = Settings(mode: mode)
        if let mtu {
            // The upper bound is the master's MTU, checked once the master is found.
            guard mtu >= 0 else { throw CNIError(.invalidNetworkConfig, "invalid MTU \(mtu): must not be negative") }
            if mtu > 0 {
                guard mtu >= 68 else {
                    throw CNIError(.invalidNetworkConfig, "invalid MTU \(mtu): the kernel's minimum is 68")
                }
                settings.mtu = UInt32(clamping: mtu)
            }
        }
        if let mac {
            guard let parsed = MACAddress(mac), !parsed.isMulticast else {
                throw CNIError(.invalidNetworkConfig, "invalid MAC address \"\(mac)\"")
            }
            settings.mac = parsed
        }
        if let bcqueuelen {
            guard (0...Int(UInt32.max)).contains(bcqueuelen) else {
                throw CNIError(.invalidNetworkConfig, "invalid bcqueuelen \(bcqueuelen): must be 0...\(UInt32.max)")
            }
            if bcqueuelen > 0 { settings.broadcastQueueLength = UInt32(bcqueuelen) }
        }
        return settings
    }

    /// Mode names as `ip link` and the reference plugin spell them; empty means bridge.
    static func mode(named name: String) -> MacvlanMode? {
        switch name {
        case "", "bridge": return .bridge
        case "private": return .private
        case "vepa": return .vepa
        case "passthru": return .passthru
        case "source": return .source
        default: return nil
        }
    }
}
