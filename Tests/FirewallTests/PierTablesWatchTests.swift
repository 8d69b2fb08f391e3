import PierTables
import Testing

/// The watcher behind `pier firewall-reload --watch` reacts to removals of Pier's own objects
/// only: not to other tables, not to element removals (every container DEL makes those), not
/// to additions.
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

    @Test func everythingElseIsUnrelated() {
        let cases: [(UInt8, UInt8, String)] = [
            (2, 2, "pier"),  // ip pier: not Pier's
            (2, 1, "filter"),  // someone else's table
            (14, 1, "pier"),  // DELSETELEM: a container DEL
            (0, 1, "pier"),  // NEWTABLE
            (3, 1, "pier"),  // NEWCHAIN
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
        #expect(PierTablesWatch.classify([1, 2, 3]) == .unrelated)
    }
}
