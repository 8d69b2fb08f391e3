import CPierShim

#if canImport(Glibc)
    import Glibc
#endif

/// Builds one netlink request: header, optional family header, attributes and nests, in
/// plain Swift for every protocol (rtnetlink requests, ctnetlink requests, test fixtures).
///
/// Space is checked the way libmnl's `_check` variants do, against `capacity`: the first
/// overflow is remembered and `bytes()` throws it, which keeps call sites free of
/// per-attribute error handling.
package final class MessageBuilder {
    /// Requests are small; 16 KiB leaves room for any link with nested info.
    package static let capacity = 16 * 1024

    private var buffer: [UInt8]
    private var overflowed = false
    /// What the request does, for errors ("create veth eth0/veth1234abcd").
    package let operation: String

    /// `flags` are NLM_F_* (NLM_F_REQUEST is always added); `bytes` adds ACK or DUMP.
    package init(type: UInt16, flags: Int32, operation: String) {
        self.operation = operation
        buffer = []
        // Most requests fit; one allocation instead of growing step by step.
        buffer.reserveCapacity(256)
        append(UInt32(NetlinkMessage.headerLength))
        append(type)
        append(UInt16(truncatingIfNeeded: flags | NLM_F_REQUEST))
        append(UInt64(0))  // sequence (stamped by `bytes`), port id 0
    }

    private func fits(_ count: Int) -> Bool {
        guard !overflowed, buffer.count + count <= Self.capacity else {
            overflowed = true
            return false
        }
        return true
    }

    /// Appends in native order without a temporary array: requests are built on every
    /// plugin run, attribute by attribute.
    private func append<T: FixedWidthInteger>(_ value: T) {
        withUnsafeBytes(of: value) { buffer.append(contentsOf: $0) }
    }

    private func pad() {
        buffer.append(contentsOf: repeatElement(0, count: align(buffer.count) - buffer.count))
    }

    /// Updates nlmsg_len, which always covers the padded end (as libmnl keeps it).
    private func stampLength() {
        let length = UInt32(buffer.count)
        buffer.withUnsafeMutableBytes { $0.storeBytes(of: length, toByteOffset: 0, as: UInt32.self) }
    }

    /// Appends a fixed family header (ifinfomsg, ifaddrmsg, rtmsg, ndmsg, nfgenmsg) given as
    /// its bytes. Also used inside a nest for the veth peer, whose payload starts with one.
    package func putFixedHeader(_ bytes: [UInt8]) {
        guard fits(align(bytes.count)) else { return }
        buffer += bytes
        pad()
        stampLength()
    }

    package func put(_ type: UInt16, _ bytes: [UInt8]) {
        guard fits(4 + align(bytes.count)) else { return }
        append(UInt16(4 + bytes.count))
        append(type)
        buffer += bytes
        pad()
        stampLength()
    }

    private func put<T: FixedWidthInteger>(_ type: UInt16, integer value: T) {
        let size = MemoryLayout<T>.size
        guard fits(4 + align(size)) else { return }
        append(UInt16(4 + size))
        append(type)
        append(value)
        pad()
        stampLength()
    }

    package func put(_ type: UInt16, u8 value: UInt8) { put(type, integer: value) }
    package func put(_ type: UInt16, u16 value: UInt16) { put(type, integer: value) }
    package func put(_ type: UInt16, u32 value: UInt32) { put(type, integer: value) }
    package func put(_ type: UInt16, i32 value: Int32) { put(type, integer: value) }
    /// Ports travel in network byte order (IFLA_VXLAN_PORT, NDA_PORT, CTA_PROTO_*_PORT).
    package func put(_ type: UInt16, be16 value: UInt16) { put(type, integer: value.bigEndian) }
    /// NUL-terminated string, as the kernel expects for names, kinds and labels.
    package func put(_ type: UInt16, string value: String) {
        let count = value.utf8.count + 1
        guard fits(4 + align(count)) else { return }
        append(UInt16(4 + count))
        append(type)
        buffer += value.utf8
        buffer.append(0)
        pad()
        stampLength()
    }

    /// Wraps the attributes `body` adds in a nest marked NLA_F_NESTED, which the bridge needs
    /// to tell nested IFLA_PROTINFO from the legacy single-byte port state.
    package func nest(_ type: UInt16, _ body: () -> Void) {
        guard fits(4) else { return }
        let start = buffer.count
        append(UInt16(0))
        append(type | UInt16(NLA_F_NESTED))
        body()
        guard !overflowed else { return }
        let length = UInt16(buffer.count - start)
        buffer.withUnsafeMutableBytes { $0.storeBytes(of: length, toByteOffset: start, as: UInt16.self) }
        stampLength()
    }

    /// Stamps the sequence number and extra flags (NLM_F_ACK, NLM_F_DUMP) and returns the
    /// finished message.
    package func bytes(sequence: UInt32, extraFlags: Int32 = 0) throws(NetlinkError) -> [UInt8] {
        guard !overflowed else {
            throw NetlinkError(
                .messageTooLarge, operation: operation, errno: EMSGSIZE,
                detail: "request exceeds \(Self.capacity) bytes")
        }
        let flags = readU16(buffer, 6) | UInt16(truncatingIfNeeded: extraFlags)
        buffer.withUnsafeMutableBytes { raw in
            raw.storeBytes(of: flags, toByteOffset: 6, as: UInt16.self)
            raw.storeBytes(of: sequence, toByteOffset: 8, as: UInt32.self)
        }
        return buffer
    }
}
