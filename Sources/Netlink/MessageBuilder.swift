import CMnl
import CPierShim

#if canImport(Glibc)
    import Glibc
#endif

/// Builds one netlink request with libmnl into a buffer it owns.
///
/// libmnl's `_check` variants are used throughout so an oversized request is reported as an
/// error instead of writing past the buffer; the first overflow is remembered and `bytes()`
/// throws it, which keeps call sites free of per-attribute error handling.
final class MessageBuilder {
    /// Requests are small; 16 KiB leaves room for any link with nested info.
    static let capacity = 16 * 1024

    private let buffer: UnsafeMutableRawPointer
    private let header: UnsafeMutablePointer<nlmsghdr>
    private var overflowed = false
    let operation: String

    init(type: UInt16, flags: Int32, operation: String) {
        buffer = UnsafeMutableRawPointer.allocate(byteCount: Self.capacity, alignment: 8)
        buffer.initializeMemory(as: UInt8.self, repeating: 0, count: Self.capacity)
        header = mnl_nlmsg_put_header(buffer)
        header.pointee.nlmsg_type = type
        header.pointee.nlmsg_flags = UInt16(truncatingIfNeeded: flags | NLM_F_REQUEST)
        self.operation = operation
    }

    deinit { buffer.deallocate() }

    private var length: Int { Int(header.pointee.nlmsg_len) }

    /// Appends a fixed family header (ifinfomsg, ifaddrmsg, rtmsg, ndmsg) given as its bytes.
    /// Also used inside a nest for the veth peer, whose payload starts with an ifinfomsg.
    func putFixedHeader(_ bytes: [UInt8]) {
        guard !overflowed, length + align(bytes.count) <= Self.capacity else {
            overflowed = true
            return
        }
        guard let destination = mnl_nlmsg_put_extra_header(header, bytes.count) else { return }
        bytes.withUnsafeBytes { source in
            if let base = source.baseAddress { destination.copyMemory(from: base, byteCount: bytes.count) }
        }
    }

    func put(_ type: UInt16, _ bytes: [UInt8]) {
        guard !overflowed else { return }
        let ok = bytes.withUnsafeBytes { mnl_attr_put_check(header, Self.capacity, type, bytes.count, $0.baseAddress) }
        if !ok { overflowed = true }
    }

    func put(_ type: UInt16, u8 value: UInt8) { put(type, [value]) }
    func put(_ type: UInt16, u16 value: UInt16) { put(type, hostBytes(value)) }
    func put(_ type: UInt16, u32 value: UInt32) { put(type, hostBytes(value)) }
    func put(_ type: UInt16, i32 value: Int32) { put(type, hostBytes(value)) }
    /// Ports travel in network byte order (IFLA_VXLAN_PORT, NDA_PORT).
    func put(_ type: UInt16, be16 value: UInt16) { put(type, hostBytes(value.bigEndian)) }
    /// NUL-terminated string, as the kernel expects for names, kinds and labels.
    func put(_ type: UInt16, string value: String) { put(type, Array(value.utf8) + [0]) }

    /// Wraps the attributes `body` adds in a nest; libmnl sets NLA_F_NESTED, which the bridge
    /// needs to tell nested IFLA_PROTINFO from the legacy single-byte port state.
    func nest(_ type: UInt16, _ body: () -> Void) {
        guard !overflowed, let start = mnl_attr_nest_start_check(header, Self.capacity, type) else {
            overflowed = true
            return
        }
        body()
        if !overflowed { mnl_attr_nest_end(header, start) }
    }

    /// Stamps the sequence number and returns the finished message.
    func bytes(sequence: UInt32, extraFlags: Int32 = 0) throws(NetlinkError) -> [UInt8] {
        guard !overflowed else {
            throw NetlinkError(
                .messageTooLarge, operation: operation, errno: EMSGSIZE,
                detail: "request exceeds \(Self.capacity) bytes")
        }
        header.pointee.nlmsg_seq = sequence
        header.pointee.nlmsg_flags |= UInt16(truncatingIfNeeded: extraFlags)
        return Array(UnsafeRawBufferPointer(start: buffer, count: length))
    }
}

func align(_ length: Int) -> Int { (length + 3) & ~3 }

/// Native byte order, as netlink uses for everything except ports and addresses.
func hostBytes<T: FixedWidthInteger>(_ value: T) -> [UInt8] {
    withUnsafeBytes(of: value) { Array($0) }
}

/// Family headers, laid out as in the uapi structs (all fields native order).
enum FixedHeader {
    /// struct ifinfomsg: family, pad, type u16, index i32, flags u32, change u32.
    static func ifinfo(
        family: UInt8 = 0, index: Int32 = 0, flags: UInt32 = 0, change: UInt32 = 0
    ) -> [UInt8] {
        [family, 0] + hostBytes(UInt16(0)) + hostBytes(index) + hostBytes(flags) + hostBytes(change)
    }

    /// struct ifaddrmsg: family, prefixlen, flags, scope, index u32.
    static func ifaddr(family: UInt8, prefixLength: UInt8, flags: UInt8, scope: UInt8, index: Int32) -> [UInt8] {
        [family, prefixLength, flags, scope] + hostBytes(UInt32(bitPattern: index))
    }

    /// struct rtmsg: family, dst_len, src_len, tos, table, protocol, scope, type, flags u32.
    static func rt(
        family: UInt8, destinationLength: UInt8, table: UInt8, protocol: UInt8, scope: UInt8, type: UInt8,
        flags: UInt32
    ) -> [UInt8] {
        [family, destinationLength, 0, 0, table, `protocol`, scope, type] + hostBytes(flags)
    }

    /// struct ndmsg: family, pad1, pad2 u16, ifindex i32, state u16, flags u8, type u8.
    static func nd(family: UInt8, index: Int32, state: UInt16, flags: UInt8, type: UInt8) -> [UInt8] {
        [family, 0] + hostBytes(UInt16(0)) + hostBytes(index) + hostBytes(state) + [flags, type]
    }
}
