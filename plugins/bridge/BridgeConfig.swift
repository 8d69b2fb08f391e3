import CNI
import IPAddressing
import PluginSupport

/// The bridge plugin's own configuration keys, with the reference plugin's meanings and
/// defaults. Unknown keys are ignored; contradictory values are rejected by `validate()`
/// before anything in the kernel changes.
struct BridgeConfig: JSONReadable {
    var bridge: String = PluginDefaults.bridgeName
    var isGateway: Bool = false
    var isDefaultGateway: Bool = false
    var forceAddress: Bool = false
    var ipMasq: Bool = false
    var mtu: Int?
    var hairpinMode: Bool = false
    var promiscMode: Bool = false
    var vlan: Int = 0
    var vlanTrunk: [TrunkEntry]?
    var preserveDefaultVlan: Bool = false
    var macspoofchk: Bool = false
    var enabledad: Bool = false
    var disableContainerInterface: Bool = false
    var portIsolation: Bool = false
    /// Pier's own: drop traffic between this network and other isolated bridge networks, as
    /// Docker does between its networks. Off means this network may talk to the others.
    var isolation: Bool = PluginDefaults.bridgeIsolation
    /// Pier's own: nothing is routed out of this network or into it (`pier network create
    /// --internal`); its containers reach each other and the gateway only.
    var isInternal: Bool = false

    struct TrunkEntry: JSONReadable, Equatable {
        var id: Int?
        var minID: Int?
        var maxID: Int?

        init(_ reader: JSONReader) throws(CNIError) {
            id = try reader.int("id")
            minID = try reader.int("minID")
            maxID = try reader.int("maxID")
        }
    }

    init() {}

    init(_ reader: JSONReader) throws(CNIError) {
        bridge = try reader.string("bridge") ?? bridge
        isGateway = try reader.bool("isGateway") ?? false
        isDefaultGateway = try reader.bool("isDefaultGateway") ?? false
        forceAddress = try reader.bool("forceAddress") ?? false
        ipMasq = try reader.bool("ipMasq") ?? false
        mtu = try reader.int("mtu")
        hairpinMode = try reader.bool("hairpinMode") ?? false
        promiscMode = try reader.bool("promiscMode") ?? false
        vlan = try reader.int("vlan") ?? 0
        vlanTrunk = try reader.readAll("vlanTrunk", as: TrunkEntry.self)
        preserveDefaultVlan = try reader.bool("preserveDefaultVlan") ?? false
        macspoofchk = try reader.bool("macspoofchk") ?? false
        enabledad = try reader.bool("enabledad") ?? false
        disableContainerInterface = try reader.bool("disableContainerInterface") ?? false
        portIsolation = try reader.bool("portIsolation") ?? false
        isolation = try reader.bool("isolation") ?? PluginDefaults.bridgeIsolation
        isInternal = try reader.bool("internal") ?? false
        // The reference: a default gateway is a gateway.
        if isDefaultGateway { isGateway = true }
    }

    /// VLAN IDs to put on the host veth as tagged members, expanded from `vlanTrunk`.
    func trunkVLANs() throws(BridgeConfigError) -> [ClosedRange<Int>] {
        guard let vlanTrunk else { return [] }
        var ranges: [ClosedRange<Int>] = []
        for entry in vlanTrunk {
            if let id = entry.id {
                guard (1...4094).contains(id) else { throw .invalid("vlanTrunk id \(id) is not in 1..4094") }
                ranges.append(id...id)
            }
            if entry.minID != nil || entry.maxID != nil {
                guard let low = entry.minID, let high = entry.maxID else {
                    throw .invalid("vlanTrunk needs both minID and maxID")
                }
                guard (1...4094).contains(low), (1...4094).contains(high) else {
                    throw .invalid("vlanTrunk range \(low)-\(high) is not in 1..4094")
                }
                guard low <= high else { throw .invalid("vlanTrunk minID \(low) is greater than maxID \(high)") }
                ranges.append(low...high)
            }
            if entry.id == nil && entry.minID == nil && entry.maxID == nil {
                throw .invalid("vlanTrunk entry needs id or minID/maxID")
            }
        }
        return ranges
    }

    /// Everything that can be refused without touching the kernel.
    func validate(hasIPAM: Bool) throws(BridgeConfigError) {
        guard InterfaceName.isValid(bridge) else {
            throw .invalid("bridge name \"\(bridge)\" is not a valid interface name")
        }
        if hairpinMode && promiscMode {
            throw .invalid("cannot set hairpin mode and promiscuous mode at the same time")
        }
        guard (0...4094).contains(vlan) else { throw .invalid("invalid VLAN ID \(vlan) (must be between 0 and 4094)") }
        if isGateway && vlan != 0 {
            let gateway = VLANGateway.interfaceName(bridge: bridge, vlan: UInt16(vlan))
            guard InterfaceName.isValid(gateway) else {
                throw .invalid(
                    "the VLAN gateway interface name \"\(gateway)\" is longer than 15 bytes: shorten the bridge name")
            }
        }
        _ = try trunkVLANs()
        if let mtu, mtu < 68 || mtu > 65535 { throw .invalid("mtu \(mtu) is out of range (68..65535)") }
        if disableContainerInterface && hasIPAM {
            throw .invalid("cannot use IPAM when disableContainerInterface is set")
        }
    }

    /// True when any VLAN key asks for bridge VLAN filtering.
    var usesVLANs: Bool { vlan != 0 || !(vlanTrunk ?? []).isEmpty }

    var bridgeSpec: BridgeSpec {
        BridgeSpec(name: bridge, mtu: mtu.map { UInt32($0) }, promiscuous: promiscMode, vlanFiltering: usesVLANs)
    }

    var l3: BridgedL3 {
        BridgedL3(
            isGateway: isGateway, isDefaultGateway: isDefaultGateway, enableDAD: enabledad, forceAddress: forceAddress)
    }

    var vethOptions: VethSetup.Options {
        VethSetup.Options(mtu: mtu.map { UInt32($0) }, hairpin: hairpinMode, isolated: portIsolation)
    }
}

enum BridgeConfigError: Error, Equatable {
    case invalid(String)
}
