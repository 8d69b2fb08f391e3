import CNI
import IPAddressing
import PierTables

/// The portmap plugin's own keys. The reference's iptables-only keys (`markMasqBit`,
/// `externalSetMarkChain`, `conditionsV4`, `conditionsV6`, `backend`) are accepted and
/// ignored: Pier always uses its nftables maps (`markMasqBit` only with a valid value, 0–31).
struct PortmapConfig: JSONReadable {
    /// Masquerade hairpin and localhost traffic to published ports.
    var snat: Bool = true
    /// Masquerade traffic from any source to the published ports (macvlan-style networks,
    /// where replies would otherwise bypass the host).
    var masqAll: Bool = false

    init() {}

    init(_ reader: JSONReader) throws(CNIError) {
        snat = try reader.bool("snat") ?? true
        masqAll = try reader.bool("masqAll") ?? false
        // Unused here, but a value the reference refuses must not pass silently.
        if let bit = try reader.int("markMasqBit"), !(0...31).contains(bit) {
            throw reader.failure("markMasqBit", "must be between 0 and 31, got \(bit)")
        }
    }
}

/// One entry of the `portMappings` capability, as runtimes send it.
struct PortMapping: JSONReadable, Equatable {
    var hostPort: Int
    var containerPort: Int
    var `protocol`: String?
    var hostIP: String?

    init(_ reader: JSONReader) throws(CNIError) {
        hostPort = try reader.requiredInt("hostPort")
        containerPort = try reader.requiredInt("containerPort")
        `protocol` = try reader.string("protocol")
        hostIP = try reader.string("hostIP")
    }
}

enum MappingError: Error, Equatable {
    case invalid(String)
}

/// Turns the requested mappings into map elements for the container's addresses.
///
/// A mapping without `hostIP` is published for every family the container has; `0.0.0.0`
/// and `::` mean "every host address of that family"; a specific `hostIP` is published only
/// to the container address of its family (and skipped, as by the reference, when the
/// container has none).
func plan(_ mappings: [PortMapping], v4: IPAddress?, v6: IPAddress?) throws(MappingError) -> [PublishedPort] {
    var ports: [PublishedPort] = []
    var keys: [String: PublishedPort] = [:]
    for mapping in mappings {
        guard (1...65535).contains(mapping.hostPort) else {
            throw .invalid("portMappings: invalid hostPort \(mapping.hostPort)")
        }
        guard (1...65535).contains(mapping.containerPort) else {
            throw .invalid("portMappings: invalid containerPort \(mapping.containerPort)")
        }
        let protocolName = mapping.protocol ?? ""
        guard let ipProtocol = protocolName.isEmpty ? IPProtocol.tcp : IPProtocol(name: protocolName) else {
            throw .invalid("portMappings: unknown protocol \"\(protocolName)\"")
        }
        var families: [IPFamily] = [.v4, .v6]
        var hostAddress: IPAddress?
        if let text = mapping.hostIP, !text.isEmpty {
            guard let address = IPAddress(text) else { throw .invalid("portMappings: invalid hostIP \"\(text)\"") }
            families = [address.family]
            let unspecified = address.bytes.allSatisfy { $0 == 0 }
            hostAddress = unspecified ? nil : address
        }
        for family in families {
            guard let container = family == .v4 ? v4 : v6 else { continue }
            let port = PublishedPort(
                ipProtocol: ipProtocol, hostPort: UInt16(mapping.hostPort), hostAddress: hostAddress,
                container: container, containerPort: UInt16(mapping.containerPort))
            // Plain strings only: interpolating an enum goes through reflection, whose first use
            // scans every protocol conformance in the binary (a third of a portmap ADD's work).
            let familyName = family == .v4 ? "4" : "6"
            let key =
                familyName + " " + (hostAddress?.description ?? "*") + " " + String(ipProtocol.rawValue) + " "
                + String(mapping.hostPort)
            if let earlier = keys[key] {
                // The same mapping twice is harmless; one host port to two targets is not.
                if earlier != port { throw .invalid("portMappings: host port requested twice: \(earlier) and \(port)") }
                continue
            }
            keys[key] = port
            ports.append(port)
        }
    }
    return ports
}
