import Netlink

/// An independent, hand-written encoder of the netlink wire format used to state expected
/// request bytes. It shares no code with the module's builder (which uses libmnl), so a test
/// fails when either disagrees with the uapi layout. Numbers are from the uapi headers.
enum Wire {
    static let nested: UInt16 = 0x8000

    static func u16(_ value: UInt16) -> [UInt8] { [UInt8(value & 0xff), UInt8(value >> 8)] }
    static func be16(_ value: UInt16) -> [UInt8] { [UInt8(value >> 8), UInt8(value & 0xff)] }
    static func u32(_ value: UInt32) -> [UInt8] {
        [UInt8(value & 0xff), UInt8((value >> 8) & 0xff), UInt8((value >> 16) & 0xff), UInt8(value >> 24)]
    }
    static func i32(_ value: Int32) -> [UInt8] { u32(UInt32(bitPattern: value)) }
    static func str(_ value: String) -> [UInt8] { Array(value.utf8) + [0] }

    static func pad(_ bytes: [UInt8]) -> [UInt8] {
        bytes + [UInt8](repeating: 0, count: (4 - bytes.count % 4) % 4)
    }

    /// struct nlattr { u16 nla_len; u16 nla_type; } + payload, padded to 4 bytes.
    static func attr(_ type: UInt16, _ payload: [UInt8]) -> [UInt8] {
        pad(u16(UInt16(4 + payload.count)) + u16(type) + payload)
    }

    static func nest(_ type: UInt16, _ children: [UInt8]...) -> [UInt8] {
        attr(type | nested, children.flatMap { $0 })
    }

    /// struct nlmsghdr { u32 len; u16 type; u16 flags; u32 seq; u32 pid; } + body.
    static func message(type: UInt16, flags: UInt16, seq: UInt32, pid: UInt32 = 0, _ body: [UInt8]...) -> [UInt8] {
        let payload = body.flatMap { $0 }
        return u32(UInt32(16 + payload.count)) + u16(type) + u16(flags) + u32(seq) + u32(pid) + payload
    }

    static func ifinfomsg(family: UInt8 = 0, index: Int32 = 0, flags: UInt32 = 0, change: UInt32 = 0) -> [UInt8] {
        [family, 0, 0, 0] + i32(index) + u32(flags) + u32(change)
    }

    static func ifaddrmsg(family: UInt8, prefixLength: UInt8, flags: UInt8, scope: UInt8, index: UInt32) -> [UInt8] {
        [family, prefixLength, flags, scope] + u32(index)
    }

    // swift-format-ignore: AlwaysUseLowerCamelCase
    static func rtmsg(
        family: UInt8, dstLen: UInt8, table: UInt8, proto: UInt8, scope: UInt8, type: UInt8, flags: UInt32
    ) -> [UInt8] {
        [family, dstLen, 0, 0, table, proto, scope, type] + u32(flags)
    }

    static func ndmsg(family: UInt8, index: Int32, state: UInt16, flags: UInt8, type: UInt8) -> [UInt8] {
        [family, 0, 0, 0] + i32(index) + u16(state) + [flags, type]
    }

    // Flag combinations.
    static let request: UInt16 = 0x01
    static let ack: UInt16 = 0x04
    static let createExcl: UInt16 = 0x01 | 0x04 | 0x400 | 0x200
    static let createReplace: UInt16 = 0x01 | 0x04 | 0x400 | 0x100
    static let createAppend: UInt16 = 0x01 | 0x04 | 0x400 | 0x800
    static let plain: UInt16 = 0x01 | 0x04

    // Replies.
    static func seq(of request: [UInt8]) -> UInt32 {
        UInt32(request[8]) | UInt32(request[9]) << 8 | UInt32(request[10]) << 16 | UInt32(request[11]) << 24
    }

    /// NLMSG_ERROR (type 2) with `error` (0 = ACK), echoing only the request header (capped).
    static func errorReply(to request: [UInt8], error: Int32, pid: UInt32, extackMessage: String? = nil) -> [UInt8] {
        var flags: UInt16 = 0x100
        var tlvs: [UInt8] = []
        if let extackMessage {
            flags |= 0x200
            tlvs = attr(1, str(extackMessage))
        }
        return message(type: 2, flags: flags, seq: seq(of: request), pid: pid, i32(error), Array(request[0..<16]), tlvs)
    }

    static func done(seq: UInt32, pid: UInt32, flags: UInt16 = 0x02) -> [UInt8] {
        message(type: 3, flags: flags, seq: seq, pid: pid, i32(0))
    }

    static func hex(_ bytes: [UInt8]) -> String {
        stride(from: 0, to: bytes.count, by: 4).map { start in
            bytes[start..<min(start + 4, bytes.count)].map { byte in
                let digits = String(byte, radix: 16)
                return digits.count == 1 ? "0" + digits : digits
            }.joined()
        }.joined(separator: " ")
    }
}
