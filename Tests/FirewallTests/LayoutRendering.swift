import CMnl
import CNftnl
import Firewall
import NetlinkCore

/// Renders the nf_tables messages of committed batches as text, one object per line (rule
/// expressions indented below their rule, as `nft --debug=netlink` shows them), through
/// libnftnl's own printers: what is rendered is what went over the wire, decoded by the
/// library nft itself uses.
enum LayoutRendering {
    /// nf_tables is netfilter subsystem 10; a batch starts with NFNL_MSG_BATCH_BEGIN (0x10).
    static let subsystem: UInt16 = 10
    static let batchBegin: UInt16 = 0x10

    /// Every batch in `datagrams`; other requests (reads) are left out.
    static func batches(_ datagrams: [[UInt8]]) -> [[NetlinkMessage]] {
        datagrams.compactMap { NetlinkMessage.split($0) }.filter { $0.first?.type == batchBegin }
    }

    /// One block of lines per object: its line, then its expressions or elements indented.
    static func render(_ batch: [NetlinkMessage]) -> [[String]] {
        batch.filter { $0.type >> 8 == subsystem }.map(render(_:))
    }

    private static func render(_ message: NetlinkMessage) -> [String] {
        let operation = UInt32(message.type & 0xff)
        let readable = operation == NFT_MSG_NEWSETELEM.rawValue ? withListEntriesNumberedOne(message) : message
        let rendered = readable.withUnsafeMessage { header -> String? in
            switch operation {
            case NFT_MSG_NEWTABLE.rawValue:
                print(nftnl_table_alloc(), header, nftnl_table_free, nftnl_table_nlmsg_parse, nftnl_table_snprintf)
            case NFT_MSG_NEWCHAIN.rawValue:
                "chain "
                    + print(
                        nftnl_chain_alloc(), header, nftnl_chain_free, nftnl_chain_nlmsg_parse, nftnl_chain_snprintf)
            case NFT_MSG_NEWSET.rawValue:
                describeSet(header)
            case NFT_MSG_NEWSETELEM.rawValue:
                "elements "
                    + print(
                        nftnl_set_alloc(), header, nftnl_set_free, nftnl_set_elems_nlmsg_parse, nftnl_set_snprintf)
            case NFT_MSG_NEWRULE.rawValue:
                "rule "
                    + print(nftnl_rule_alloc(), header, nftnl_rule_free, nftnl_rule_nlmsg_parse, nftnl_rule_snprintf)
            default:
                nil
            }
        }
        guard let text = rendered ?? nil else { return ["message \(operation)"] }
        // One element per line (libnftnl separates them with tabs).
        return text.split(whereSeparator: { $0 == "\n" || $0 == "\t" }).enumerated().map { index, line in
            let trimmed = line.drop { $0 == " " || $0 == "\t" }
            return index == 0 ? String(trimmed) : "    \(trimmed)"
        }
    }

    /// libnftnl's printer leaves out a set's key and data types, which are the layout.
    private static func describeSet(_ header: UnsafePointer<nlmsghdr>) -> String {
        guard let set = nftnl_set_alloc() else { return "set ?" }
        defer { nftnl_set_free(set) }
        guard nftnl_set_nlmsg_parse(header, set) >= 0 else { return "set unparsable" }
        func u32(_ attribute: nftnl_set_attr) -> UInt32? {
            nftnl_set_is_set(set, UInt16(attribute.rawValue)) ? nftnl_set_get_u32(set, UInt16(attribute.rawValue)) : nil
        }
        func hex(_ value: UInt32) -> String { "0x" + String(value, radix: 16) }
        let table = String(cString: nftnl_set_get_str(set, UInt16(NFTNL_SET_TABLE.rawValue)))
        let name = String(cString: nftnl_set_get_str(set, UInt16(NFTNL_SET_NAME.rawValue)))
        let family = TableFamily(rawValue: UInt8(truncatingIfNeeded: u32(NFTNL_SET_FAMILY) ?? 0))?.name ?? "?"
        var text = "set \(family) \(table) \(name) flags \(hex(u32(NFTNL_SET_FLAGS) ?? 0))"
        text += " key \(hex(u32(NFTNL_SET_KEY_TYPE) ?? 0)) len \(u32(NFTNL_SET_KEY_LEN) ?? 0)"
        if let data = u32(NFTNL_SET_DATA_TYPE) { text += " data \(hex(data)) len \(u32(NFTNL_SET_DATA_LEN) ?? 0)" }
        if let size = u32(NFTNL_SET_DESC_SIZE) { text += " size \(size)" }
        return text
    }

    /// nft numbers the entries of an element list 1, 2, 3 (the kernel ignores the number);
    /// libnftnl's parser wants NFTA_LIST_ELEM (1) on every one.
    private static func withListEntriesNumberedOne(_ message: NetlinkMessage) -> NetlinkMessage {
        var copy = message
        var offset = 4  // nfgenmsg
        let payload = message.payload
        while offset + 4 <= payload.count {
            let length = Int(payload[offset]) | Int(payload[offset + 1]) << 8
            guard length >= 4, offset + length <= payload.count else { break }
            if payload[offset + 2] == 3 {  // NFTA_SET_ELEM_LIST_ELEMENTS
                var entry = offset + 4
                while entry + 4 <= offset + length {
                    let entryLength = Int(payload[entry]) | Int(payload[entry + 1]) << 8
                    guard entryLength >= 4 else { break }
                    copy.payload[entry + 2] = 1
                    entry += (entryLength + 3) & ~3
                }
            }
            offset += (length + 3) & ~3
        }
        return copy
    }

    /// Parses one message into a fresh libnftnl object and prints it in the default format.
    private static func print(
        _ object: OpaquePointer?, _ header: UnsafePointer<nlmsghdr>, _ free: (OpaquePointer?) -> Void,
        _ parse: (UnsafePointer<nlmsghdr>?, OpaquePointer?) -> Int32,
        _ snprintf: (UnsafeMutablePointer<CChar>?, Int, OpaquePointer?, UInt32, UInt32) -> Int32
    ) -> String {
        defer { free(object) }
        guard parse(header, object) >= 0 else { return "unparsable" }
        var buffer = [CChar](repeating: 0, count: 8192)
        _ = snprintf(&buffer, buffer.count, object, UInt32(NFTNL_OUTPUT_DEFAULT.rawValue), 0)
        return String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}
