import Firewall
import Foundation
import NetlinkCore

/// Plays nf_tables for `NFTablesClient` through the Firewall module's `RecordingTransport`:
/// answers generation reads, rule dumps and element gets/dumps from a small in-memory state,
/// acknowledges every batch and keeps the batches it was sent. Just enough kernel to see
/// which batch `ContainerFirewall` plans, without root.
final class FakeKernel {
    let transport = RecordingTransport(portID: FakeKernel.portID)
    /// Rule comments per "table chain" (the family is not needed here: chain names differ by
    /// table family only for `forward`, told apart by the family byte below).
    var rules: [String: [String]] = [:]
    /// Elements per set name: raw key and comment.
    var elements: [String: [(key: [UInt8], comment: String)]] = [:]
    private(set) var batches: [[Message]] = []

    struct Message {
        var type: UInt8
        var family: UInt8
        var payload: [UInt8]
        var sequence: UInt32
    }

    init() {
        transport.responder = { [unowned self] datagram in answer(datagram) }
    }

    lazy var client = NFTablesClient(transport: transport, firstSequence: 1)

    /// nf_tables message types (the low byte of the netlink type).
    static let newRule: UInt8 = 6
    static let getRule: UInt8 = 7
    static let newSetElement: UInt8 = 12
    static let getSetElement: UInt8 = 13
    static let deleteSetElement: UInt8 = 14
    static let getGeneration: UInt8 = 16

    /// Replies are addressed to the fake socket's port, as the kernel addresses them.
    static let portID: UInt32 = 4242

    static func key(family: UInt8, chain: String) -> String { "\(family) \(chain)" }

    /// Every message of every committed batch, in order.
    var committed: [Message] { batches.flatMap { $0 } }

    private func answer(_ datagram: [UInt8]) -> [[UInt8]]? {
        let messages = Self.split(datagram)
        guard let first = messages.first else { return nil }
        if first.type == 0x10 && datagram[5] == 0 {  // NFNL_MSG_BATCH_BEGIN
            let body = Array(messages.dropFirst().dropLast())
            batches.append(body)
            return body.map { Self.ack(sequence: $0.sequence) }
        }
        let attributes = Self.attributes(first.payload)
        switch first.type {
        case Self.getGeneration:
            return [
                Self.message(type: 15, sequence: first.sequence, family: 0, [Self.be32(1, 7)])
                    + Self.ack(sequence: first.sequence)
            ]
        case Self.getRule:
            let chain = Self.string(attributes[2] ?? [])
            guard let comments = rules[Self.key(family: first.family, chain: chain)] else {
                return [Self.ack(sequence: first.sequence, errno: ENOENT)]
            }
            var replies = comments.enumerated().map { index, comment in
                Self.message(
                    type: Self.newRule, sequence: first.sequence, family: first.family, multi: true,
                    [
                        Self.attribute(1, Array("pier".utf8) + [0]), Self.attribute(2, Array(chain.utf8) + [0]),
                        Self.attribute(3, [0, 0, 0, 0, 0, 0, 0, UInt8(index + 1)]),
                        Self.attribute(7, [0, UInt8(comment.utf8.count + 1)] + Array(comment.utf8) + [0]),
                    ])
            }
            replies.append(Self.done(sequence: first.sequence))
            return replies
        case Self.getSetElement:
            let set = Self.string(attributes[2] ?? [])
            guard let held = elements[set] else { return [Self.ack(sequence: first.sequence, errno: ENOENT)] }
            let isDump = (UInt16(datagram[6]) | UInt16(datagram[7]) << 8) & 0x300 == 0x300  // NLM_F_DUMP
            if isDump {
                return held.map { Self.elementReply(set: set, key: $0.key, comment: $0.comment, to: first) }
                    + [Self.done(sequence: first.sequence)]
            }
            let wanted = Self.requestedKey(attributes[3] ?? [])
            guard let found = held.first(where: { $0.key == wanted }) else {
                return [Self.ack(sequence: first.sequence, errno: ENOENT)]
            }
            return [
                Self.elementReply(set: set, key: found.key, comment: found.comment, to: first)
                    + Self.ack(sequence: first.sequence)
            ]
        default:
            return nil
        }
    }

    // MARK: - Wire helpers (a naive, independent reading of nfnetlink)

    static func split(_ datagram: [UInt8]) -> [Message] {
        var messages: [Message] = []
        var offset = 0
        while offset + 20 <= datagram.count {
            let length = Int(le32(datagram, offset))
            guard length >= 16, offset + length <= datagram.count else { break }
            messages.append(
                Message(
                    type: datagram[offset + 4], family: datagram[offset + 16],
                    payload: Array(datagram[(offset + 20)..<(offset + length)]), sequence: le32(datagram, offset + 8)))
            offset += (length + 3) & ~3
        }
        return messages
    }

    static func attributes(_ bytes: [UInt8]) -> [UInt16: [UInt8]] {
        var found: [UInt16: [UInt8]] = [:]
        var offset = 0
        while offset + 4 <= bytes.count {
            let length = Int(bytes[offset]) | Int(bytes[offset + 1]) << 8
            let type = (UInt16(bytes[offset + 2]) | UInt16(bytes[offset + 3]) << 8) & 0x3fff
            guard length >= 4, offset + length <= bytes.count else { break }
            found[type] = Array(bytes[(offset + 4)..<(offset + length)])
            offset += (length + 3) & ~3
        }
        return found
    }

    /// The key of the first element of NFTA_SET_ELEM_LIST_ELEMENTS.
    static func requestedKey(_ elements: [UInt8]) -> [UInt8] {
        let element = attributes(elements)[1] ?? []
        let key = attributes(element)[1] ?? []
        return attributes(key)[1] ?? []
    }

    /// Keys of every element in a set-element message.
    static func keys(of message: Message) -> [[UInt8]] {
        var keys: [[UInt8]] = []
        let list = attributes(message.payload)[3] ?? []
        var offset = 0
        while offset + 4 <= list.count {
            let length = Int(list[offset]) | Int(list[offset + 1]) << 8
            guard length >= 4, offset + length <= list.count else { break }
            let element = attributes(Array(list[(offset + 4)..<(offset + length)]))
            keys.append(attributes(element[1] ?? [])[1] ?? [])
            offset += (length + 3) & ~3
        }
        return keys
    }

    static func setName(of message: Message) -> String { string(attributes(message.payload)[2] ?? []) }

    static func string(_ bytes: [UInt8]) -> String { String(decoding: bytes.prefix { $0 != 0 }, as: UTF8.self) }

    static func le32(_ bytes: [UInt8], _ offset: Int) -> UInt32 {
        (0..<4).reduce(UInt32(0)) { $0 | UInt32(bytes[offset + $1]) << (8 * $1) }
    }

    static func attribute(_ type: UInt16, _ value: [UInt8], nested: Bool = false) -> [UInt8] {
        let length = UInt16(4 + value.count)
        let kind = nested ? type | 0x8000 : type
        return [UInt8(length & 0xff), UInt8(length >> 8), UInt8(kind & 0xff), UInt8(kind >> 8)] + value
            + [UInt8](repeating: 0, count: (4 - value.count % 4) % 4)
    }

    static func be32(_ type: UInt16, _ value: UInt32) -> [UInt8] {
        attribute(
            type, [UInt8(value >> 24), UInt8((value >> 16) & 0xff), UInt8((value >> 8) & 0xff), UInt8(value & 0xff)])
    }

    static func message(
        type: UInt8, sequence: UInt32, family: UInt8, multi: Bool = false, _ attributes: [[UInt8]]
    ) -> [UInt8] {
        var body: [UInt8] = [family, 0, 0, 0]
        for attribute in attributes { body += attribute }
        var bytes = le32Bytes(UInt32(16 + body.count))
        bytes += [type, 10, multi ? 0x2 : 0, 0]
        bytes += le32Bytes(sequence)
        bytes += le32Bytes(portID)
        return bytes + body
    }

    static func elementReply(set: String, key: [UInt8], comment: String, to request: Message) -> [UInt8] {
        let element =
            attribute(1, attribute(1, key), nested: true)
            + attribute(6, [0, UInt8(comment.utf8.count + 1)] + Array(comment.utf8) + [0])
        return message(
            type: newSetElement, sequence: request.sequence, family: request.family, multi: true,
            [
                attribute(1, Array("pier".utf8) + [0]), attribute(2, Array(set.utf8) + [0]),
                attribute(3, attribute(1, element, nested: true), nested: true),
            ])
    }

    static func done(sequence: UInt32) -> [UInt8] {
        [20, 0, 0, 0, 3, 0, 2, 0] + le32Bytes(sequence) + le32Bytes(portID) + [0, 0, 0, 0]
    }

    static func le32Bytes(_ value: UInt32) -> [UInt8] { (0..<4).map { UInt8((value >> (8 * $0)) & 0xff) } }

    static func ack(sequence: UInt32, errno code: Int32 = 0) -> [UInt8] {
        RecordingTransport.errorReply(sequence: sequence, errno: code, portID: portID)
    }
}
