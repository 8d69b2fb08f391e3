import PierTables
import Testing

/// The watcher behind `pier firewall reload --watch` reloads on removals of Pier's own objects
/// only (not element removals: every container DEL makes those; not additions), and settles
/// other tables' forward chains when another IP table's tables, chains or rules change.
struct PierTablesWatchTests {
    /// One nf_tables notification: nlmsghdr, nfgenmsg, and the table-name attribute.
    private func notification(type: UInt8, family: UInt8, table: String) -> [UInt8] {
        var name = Array(table.utf8) + [0]
        let attributeLength = 4 + name.count
        while name.count % 4 != 0 { name.append(0) }
        let payload = [family, 0, 0, 0] + le16(UInt16(attributeLength)) + le16(1) + name
        let length = 16 + payload.count
        return le32(UInt32(length)) + le16(UInt16(10) << 8 | UInt16(type)) + le16(0) + le32(1) + le32(0) + payload
    }

    private func le16(_ value: UInt16) -> [UInt8] { withUnsafeBytes(of: value.littleEndian) { Array($0) } }
    private func le32(_ value: UInt32) -> [UInt8] { withUnsafeBytes(of: value.littleEndian) { Array($0) } }

    @Test func removalsOfPierObjectsAreSeen() {
        // DELTABLE, DELCHAIN, DELRULE, DELSET in inet (1) and bridge (7).
        for type: UInt8 in [2, 5, 8, 11] {
            for family: UInt8 in [1, 7] {
                #expect(
                    PierTablesWatch.classify(notification(type: type, family: family, table: "pier"))
                        == .pierObjectRemoved, "type \(type) family \(family)")
            }
        }
    }

    @Test func changesOfOtherIPTablesAreSeen() {
        let cases: [(UInt8, UInt8, String)] = [
            (2, 2, "pier"),  // DELTABLE ip pier: not Pier's
            (2, 1, "filter"),  // DELTABLE of someone else's inet table
            (8, 2, "filter"),  // DELRULE: iptables -F
            (3, 10, "filter"),  // NEWCHAIN: ip6tables -P FORWARD DROP
            (6, 1, "filter"),  // NEWRULE: a final drop appended
            (0, 2, "filter"),  // NEWTABLE
        ]
        for (type, family, table) in cases {
            #expect(
                PierTablesWatch.classify(notification(type: type, family: family, table: table))
                    == .foreignForwardChanged, "type \(type) family \(family) table \(table)")
        }
    }

    @Test func everythingElseIsUnrelated() {
        let cases: [(UInt8, UInt8, String)] = [
            (14, 1, "pier"),  // DELSETELEM: a container DEL
            (0, 1, "pier"),  // NEWTABLE
            (3, 1, "pier"),  // NEWCHAIN
            (6, 1, "pier"),  // NEWRULE
            (2, 7, "filter"),  // a bridge table: Pier's accept rule never goes there
            (12, 2, "filter"),  // NEWSETELEM of someone else's
        ]
        for (type, family, table) in cases {
            #expect(
                PierTablesWatch.classify(notification(type: type, family: family, table: table)) == .unrelated,
                "type \(type) family \(family) table \(table)")
        }
    }

    @Test func aBatchIsSeenWhereverTheRemovalIs() {
        let batch =
            notification(type: 2, family: 2, table: "filter") + notification(type: 5, family: 1, table: "pier")
        #expect(PierTablesWatch.classify(batch) == .pierObjectRemoved)
        let foreign =
            notification(type: 14, family: 1, table: "pier") + notification(type: 8, family: 2, table: "filter")
        #expect(PierTablesWatch.classify(foreign) == .foreignForwardChanged)
        #expect(PierTablesWatch.classify([1, 2, 3]) == .unrelated)
    }
}
