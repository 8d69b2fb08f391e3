import ClusterStore
import Foundation
import IPAddressing

@testable import IPAM

/// A directory under /tmp removed (with everything in it) when the value goes away.
final class TemporaryDirectory {
    let path: String

    init() throws {
        let base = FileManager.default.temporaryDirectory.appendingPathComponent("pier-ipam-test-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: base, withIntermediateDirectories: true)
        path = base.path
    }

    deinit { try? FileManager.default.removeItem(atPath: path) }

    func names(_ sub: String) -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: path + "/" + sub)) ?? []).sorted()
    }

    func bytes(_ sub: String) -> [UInt8]? {
        FileManager.default.contents(atPath: path + "/" + sub).map { Array($0) }
    }

    func write(_ sub: String, _ text: String) throws {
        let url = URL(fileURLWithPath: path + "/" + sub)
        try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
        try Data(text.utf8).write(to: url)
    }
}

/// Builds a network config JSON with the given `ipam` body (a JSON object's inside).
func netconf(
    name: String = "testnet", version: String = "1.0.0", ipam: String, extra: String = ""
) -> [UInt8] {
    // An `ipam` that names its own type replaces the default: a repeated key is refused.
    let type = ipam.hasPrefix(#""type":"#) ? "" : #""type":"ipam","#
    return Array(
        #"{"cniVersion":"\#(version)","name":"\#(name)","type":"bridge","ipam":{\#(type)\#(ipam)}\#(extra)}"#.utf8
    )
}

func config(
    _ ipam: String, name: String = "testnet", version: String = "1.0.0", extra: String = "",
    environmentIPs: [String] = []
) throws(IPAMError) -> IPAMSettings {
    try IPAMSettings(
        json: netconf(name: name, version: version, ipam: ipam, extra: extra), environmentIPs: environmentIPs)
}

/// The error kind and message a config produces, or nil when it is valid.
func configError(_ ipam: String, extra: String = "", version: String = "1.0.0") -> IPAMError? {
    do {
        _ = try config(ipam, version: version, extra: extra)
        return nil
    } catch {
        return error
    }
}

func ip(_ text: String) -> IPAddress {
    guard let address = IPAddress(text) else { fatalError("bad test address \(text)") }
    return address
}

/// In-memory backend, for allocation logic without a filesystem.
final class MemoryBackend: LeaseBackend {
    var records: [IPAddress: Lease] = [:]
    var markers: [Int: IPAddress] = [:]
    var reserveCalls = 0

    func exclusively<T>(_ body: () throws(IPAMError) -> T) throws(IPAMError) -> T { try body() }
    func leases() throws(IPAMError) -> [Lease] { records.values.sorted { $0.address < $1.address } }
    func reserve(_ address: IPAddress, for attachment: LeaseOwner) throws(IPAMError) -> Bool {
        reserveCalls += 1
        guard records[address] == nil else { return false }
        records[address] = Lease(address: address, containerID: attachment.containerID, ifname: attachment.ifname)
        return true
    }
    func release(_ lease: Lease) throws(IPAMError) { records[lease.address] = nil }
    func lastReserved(rangeSetIndex index: Int) -> IPAddress? { markers[index] }
    func recordLastReserved(_ address: IPAddress, rangeSetIndex index: Int) throws(IPAMError) {
        markers[index] = address
    }
    func isLocal(_ lease: Lease) -> Bool { true }
    func unavailableReason() -> String? { nil }
}

func attachment(_ id: String, _ ifname: String = "eth0") -> LeaseOwner {
    LeaseOwner(containerID: id, ifname: ifname)
}

extension IPAMResult {
    var addressTexts: [String] { ips.map(\.address.description) }
}
