import CPierShim

/// One netlink message from a reply: its header fields and the payload after the 16-byte
/// header, copied out of the datagram so nothing points into a receive buffer after reuse.
public struct NetlinkMessage: Equatable, Sendable {
    public var type: UInt16
    public var flags: UInt16
    public var sequence: UInt32
    public var portID: UInt32
    /// The family header (ifinfomsg, nfgenmsg, ...) and attributes, or the error/done status.
    public var payload: [UInt8]

    public static let headerLength = 16

    public init(type: UInt16, flags: UInt16, sequence: UInt32, portID: UInt32, payload: [UInt8]) {
        self.type = type
        self.flags = flags
        self.sequence = sequence
        self.portID = portID
        self.payload = payload
    }

    /// Splits a datagram into messages, or nil when it is malformed: a length shorter than a
    /// header, longer than what is left, or bytes left over that cannot hold a header. Every
    /// protocol treats nil as a protocol violation; nothing is read out of bounds.
    package static func split(_ datagram: [UInt8]) -> [NetlinkMessage]? {
        guard !datagram.isEmpty else { return nil }
        var messages: [NetlinkMessage] = []
        var offset = 0
        while offset < datagram.count {
            guard datagram.count - offset >= headerLength else { return nil }
            let length = Int(readU32(datagram, offset))
            guard length >= headerLength, length <= datagram.count - offset else { return nil }
            messages.append(
                NetlinkMessage(
                    type: readU16(datagram, offset + 4),
                    flags: readU16(datagram, offset + 6),
                    sequence: readU32(datagram, offset + 8),
                    portID: readU32(datagram, offset + 12),
                    payload: Array(datagram[(offset + headerLength)..<(offset + length)])))
            offset += align(length)
        }
        return messages
    }

    /// Sequence numbers of every message in a datagram, in order (empty when malformed).
    package static func sequences(of datagram: [UInt8]) -> [UInt32] {
        split(datagram)?.map(\.sequence) ?? []
    }

    /// Lends the whole message, header included, as C parsers such as libnftnl's want it
    /// (`struct nlmsghdr *`). The copy lives on the stack for ordinary message sizes.
    package func withUnsafeMessage<R>(_ body: (UnsafePointer<nlmsghdr>) -> R) -> R? {
        let length = Self.headerLength + payload.count
        return withUnsafeTemporaryAllocation(byteCount: length, alignment: 4) { raw -> R? in
            guard let base = raw.baseAddress else { return nil }
            let header = base.bindMemory(to: nlmsghdr.self, capacity: 1)
            header.initialize(
                to: nlmsghdr(
                    nlmsg_len: UInt32(length), nlmsg_type: type, nlmsg_flags: flags, nlmsg_seq: sequence,
                    nlmsg_pid: portID))
            payload.withUnsafeBytes { source in
                UnsafeMutableRawBufferPointer(rebasing: raw[Self.headerLength...]).copyMemory(from: source)
            }
            return body(header)
        }
    }
}

/// Netlink's 4-byte alignment (NLMSG_ALIGN, NLA_ALIGN).
package func align(_ length: Int) -> Int { (length + 3) & ~3 }

/// Native byte order, as netlink uses for everything except ports, addresses and nf_tables.
package func hostBytes<T: FixedWidthInteger>(_ value: T) -> [UInt8] {
    withUnsafeBytes(of: value) { Array($0) }
}

/// Native-order reads; out-of-range reads give 0 instead of trapping, so a parser that
/// checked a length once cannot be crashed by a lying one.
package func readU16(_ bytes: [UInt8], _ offset: Int) -> UInt16 {
    guard offset >= 0, bytes.count - offset >= 2 else { return 0 }
    return bytes.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: offset, as: UInt16.self) }
}

package func readU32(_ bytes: [UInt8], _ offset: Int) -> UInt32 {
    guard offset >= 0, bytes.count - offset >= 4 else { return 0 }
    return bytes.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: offset, as: UInt32.self) }
}

package func readI32(_ bytes: [UInt8], _ offset: Int) -> Int32 { Int32(bitPattern: readU32(bytes, offset)) }

/// The nlmsghdr flag and type values as the UInt16s the header holds (the uapi macros
/// import as Int32).
package enum NetlinkHeader {
    package static let request = UInt16(NLM_F_REQUEST)
    package static let multi = UInt16(NLM_F_MULTI)
    package static let ack = UInt16(NLM_F_ACK)
    package static let dumpInterrupted = UInt16(NLM_F_DUMP_INTR)
    package static let dump = UInt16(NLM_F_DUMP)
    package static let replace = UInt16(NLM_F_REPLACE)
    package static let exclusive = UInt16(NLM_F_EXCL)
    package static let create = UInt16(NLM_F_CREATE)
    package static let append = UInt16(NLM_F_APPEND)
    /// NLMSG_ERROR flags: the echoed request was cut to its header; extended-ACK TLVs follow.
    package static let capped = UInt16(NLM_F_CAPPED)
    package static let ackTLVs = UInt16(NLM_F_ACK_TLVS)

    package static let noop = UInt16(NLMSG_NOOP)
    package static let error = UInt16(NLMSG_ERROR)
    package static let done = UInt16(NLMSG_DONE)
}
