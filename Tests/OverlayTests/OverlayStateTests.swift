import ClusterStore
import Foundation
import IPAddressing
import Netlink
import Testing

@testable import Overlay

/// Pure logic: key layout, record coding and which entries a host should hold.
@Suite struct OverlayStateTests {
    let keys = OverlayKeys(network: "blue")

    func record(_ key: String, _ value: some StoredRecord, revision: UInt64 = 1) -> StoreRecord {
        StoreRecord(key: key, value: RecordCoding.encode(value), revision: revision)
    }

    func endpoint(_ host: String, _ cid: String, _ mac: String, _ ip: String) throws -> EndpointRecord {
        EndpointRecord(
            network: "blue", containerID: cid, ifname: "eth0", host: host, mac: try #require(MACAddress(mac)),
            ips: [try #require(IPPrefix(ip))])
    }

    @Test func keysAreValidStoreKeysAndOddInterfaceNamesAreHashed() throws {
        let key = keys.endpoint(host: "node-1", containerID: "abc", ifname: "eth0")
        #expect(key == "pier/overlay/blue/endpoints/node-1/abc/eth0")
        try StoreKey.validate(key, operation: "test")
        let odd = keys.endpoint(host: "node-1", containerID: "abc", ifname: "net@1")
        try StoreKey.validate(odd, operation: "test")
        #expect(odd != keys.endpoint(host: "node-1", containerID: "abc", ifname: "net@2"))
        #expect(OverlayDevices.vxlanName(vni: 4242) == "vx-001092")
        #expect(OverlayDevices.bridgeName(vni: 16_777_215) == "pov-ffffff")
    }

    @Test func recordsEncodeStablyAndRoundTrip() throws {
        let value = try endpoint("h1", "c1", "02:00:00:00:00:01", "10.0.0.2/24")
        let text = RecordCoding.encode(value)
        #expect(text == RecordCoding.encode(value))
        #expect(
            text
                == #"{"containerID":"c1","host":"h1","ifname":"eth0","ips":["10.0.0.2/24"],"mac":"02:00:00:00:00:01","network":"blue"}"#
        )
        #expect(RecordCoding.decode(EndpointRecord.self, text) == value)
        // Records written before Pier's own JSON writer escaped the slash; they still read.
        #expect(RecordCoding.decode(EndpointRecord.self, text.replacingOccurrences(of: "/", with: "\\/")) == value)
        let host = HostRecord(host: "h1", vtep: try #require(IPAddress("fd00::1")))
        #expect(RecordCoding.encode(host) == #"{"host":"h1","vtep":"fd00::1"}"#)
        #expect(RecordCoding.decode(HostRecord.self, RecordCoding.encode(host)) == host)
        #expect(RecordCoding.encode(NetworkRecord(vni: 7, port: 4789)) == #"{"port":4789,"vni":7}"#)
        #expect(
            RecordCoding.decode(NetworkRecord.self, #"{"vni":7,"port":4789,"future":true}"#)
                == .init(vni: 7, port: 4789))
    }

    @Test(arguments: [
        #"{"vni":7}"#, #"{"vni":"7","port":4789}"#, #"{"vni":7,"port":70000}"#, #"{"vni":-1,"port":1}"#, "[]", "{",
    ])
    func malformedNetworkRecordsAreUnreadable(text: String) {
        #expect(RecordCoding.decode(NetworkRecord.self, text) == nil)
    }

    @Test(arguments: [
        #"{"host":"h","vtep":"nope"}"#, #"{"vtep":"10.0.0.1"}"#,
        #"{"containerID":"c","host":"h","ifname":"e","ips":["10.0.0.2/24"],"mac":"zz","network":"n"}"#,
        #"{"containerID":"c","host":"h","ifname":"e","ips":[7],"mac":"02:00:00:00:00:01","network":"n"}"#,
    ])
    func malformedHostAndEndpointRecordsAreUnreadable(text: String) {
        #expect(RecordCoding.decode(HostRecord.self, text) == nil)
        #expect(RecordCoding.decode(EndpointRecord.self, text) == nil)
    }

    @Test func remoteEntriesSkipLocalEndpointsAndHostsWithoutRecords() throws {
        let snapshot = StoreSnapshot(
            records: [
                record(keys.networkRecord, NetworkRecord(vni: 7, port: 4789)),
                record(keys.host("h0"), HostRecord(host: "h0", vtep: try #require(IPAddress("192.168.0.1")))),
                record(keys.host("h1"), HostRecord(host: "h1", vtep: try #require(IPAddress("192.168.0.2")))),
                record(
                    keys.endpoint(host: "h0", containerID: "a", ifname: "eth0"),
                    try endpoint("h0", "a", "02:00:00:00:00:0a", "10.0.0.10/24")),
                record(
                    keys.endpoint(host: "h1", containerID: "b", ifname: "eth0"),
                    try endpoint("h1", "b", "02:00:00:00:00:0b", "10.0.0.11/24")),
                // Its host record is gone: not reachable, so not programmed.
                record(
                    keys.endpoint(host: "h2", containerID: "c", ifname: "eth0"),
                    try endpoint("h2", "c", "02:00:00:00:00:0c", "10.0.0.12/24")),
                StoreRecord(key: keys.endpointsPrefix + "h1/bad/eth0", value: "{", revision: 2),
            ], revision: 9)
        let state = OverlayState(snapshot: snapshot, keys: keys)
        #expect(state.network == NetworkRecord(vni: 7, port: 4789))
        #expect(state.unreadable == [keys.endpointsPrefix + "h1/bad/eth0"])
        let vtep0 = try #require(IPAddress("192.168.0.1"))
        let fromH0 = state.remoteEntries(localHost: "h0", localVTEP: vtep0)
        #expect(fromH0.fdb == [try #require(MACAddress("02:00:00:00:00:0b")): try #require(IPAddress("192.168.0.2"))])
        #expect(
            fromH0.neighbors == [try #require(IPAddress("10.0.0.11")): try #require(MACAddress("02:00:00:00:00:0b"))])
        // Without a host name the VTEP alone tells local endpoints apart.
        #expect(state.remoteEntries(localHost: nil, localVTEP: vtep0) == fromH0)
    }

    /// What a host announces after a reconcile: the newly installed addresses at the MAC the
    /// records give them, and nothing for an address no record holds.
    @Test func announcementsNameTheRecordedMAC() throws {
        var desired = DesiredEntries()
        let reused = try #require(IPAddress("10.0.0.5"))
        let reused6 = try #require(IPAddress("fd00::5"))
        let newMAC = try #require(MACAddress("52:54:00:ab:cd:ef"))
        desired.neighbors = [reused: newMAC, reused6: newMAC]
        let unknown = try #require(IPAddress("10.0.0.6"))
        #expect(
            desired.announcements(of: [reused6, unknown, reused]) == [
                NeighbourAnnouncement(address: reused6, mac: newMAC),
                NeighbourAnnouncement(address: reused, mac: newMAC),
            ])
    }
}
