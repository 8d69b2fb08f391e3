// `MessageBuilder` (the request writer) comes from NetlinkCore; these are the rtnetlink
// family headers requests start with.

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
