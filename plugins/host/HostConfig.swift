import CNI
import IPAddressing

/// The host plugin's keys. With none of the device keys it runs in host networking mode;
/// with any of them it moves that host device into the container (the reference `host-device`).
struct HostConfig: JSONReadable {
    var device: String?
    var hwaddr: String?
    var kernelpath: String?
    var pciBusID: String?

    init(_ reader: JSONReader) throws(CNIError) {
        func text(_ key: String) throws(CNIError) -> String? {
            // Hand-edited configs carry stray blanks; no interface name or path has them at either end.
            guard let raw = try reader.string(key) else { return nil }
            let trimmed = raw.drop(while: \.isWhitespace).reversed().drop(while: \.isWhitespace).reversed()
            return trimmed.isEmpty ? nil : String(trimmed)
        }
        device = try text("device")
        hwaddr = try text("hwaddr")
        kernelpath = try text("kernelpath")
        pciBusID = try text("pciBusID")
    }
}

/// How the device to move is named. Several keys may be given; they must then all name the
/// same interface.
enum DeviceSelector: Equatable, CustomStringConvertible {
    case name(String)
    case hardwareAddress(MACAddress)
    /// A `/sys/devices/...` directory whose `net/` subdirectory holds the interface.
    case kernelPath(String)
    /// A PCI address (`0000:03:00.1`).
    case pciAddress(String)
    /// The `deviceID` capability: a PCI address or an auxiliary-bus device name.
    case deviceID(String)

    var description: String {
        switch self {
        case .name(let name): return "device \"\(name)\""
        case .hardwareAddress(let mac): return "hwaddr \(mac)"
        case .kernelPath(let path): return "kernelpath \"\(path)\""
        case .pciAddress(let address): return "pciBusID \"\(address)\""
        case .deviceID(let id): return "runtimeConfig.deviceID \"\(id)\""
        }
    }
}

/// What one invocation is asked to do.
enum HostMode {
    /// The container shares the host's network namespace: report, change nothing.
    case hostNetworking
    /// Move a host device into the container and back.
    case device([DeviceSelector])

    init(_ request: CNIRequest) throws(CNIError) {
        let config = try request.config.decode(HostConfig.self)
        // The capability names the device the runtime allocated (e.g. an SR-IOV VF for this
        // pod): it overrides whatever the static config says, as in the reference plugin.
        if let deviceID = try request.config.runtimeConfig("deviceID", as: String.self), !deviceID.isEmpty {
            self = .device([.deviceID(deviceID)])
            return
        }
        var selectors: [DeviceSelector] = []
        if let device = config.device { selectors.append(.name(device)) }
        if let text = config.hwaddr {
            guard let mac = MACAddress(text) else {
                throw CNIError(.invalidNetworkConfig, "invalid hwaddr \"\(text)\"")
            }
            selectors.append(.hardwareAddress(mac))
        }
        if let path = config.kernelpath { selectors.append(.kernelPath(path)) }
        if let address = config.pciBusID { selectors.append(.pciAddress(address)) }
        self = selectors.isEmpty ? .hostNetworking : .device(selectors)
    }
}
