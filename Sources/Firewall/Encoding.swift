import CMnl
import CNftnl
import Glibc
import NetlinkCore

/// Turns a `Batch` into netlink messages with libnftnl. Sequence numbers are consecutive
/// from `firstSequence` (BATCH_BEGIN gets the first), so every reply maps back to one
/// operation.
struct BatchEncoder {
    private var sequence: UInt32
    private var nextSetID: UInt32 = 1
    /// Scratch space for one message. Netlink attribute lengths are 16-bit, so no single
    /// nested attribute list can exceed 64 KiB; element lists are chunked well below that.
    private let scratch = Scratch()

    static let elementsPerMessage = 64
    static let createFlags = NetlinkHeader.create | NetlinkHeader.ack

    init(firstSequence: UInt32) { sequence = firstSequence }

    mutating func encode(_ batch: Batch, generation: UInt32?) -> EncodedBatch {
        let begin = encodeBegin(generation: generation)
        var messages: [EncodedMessage] = []
        for operation in batch.operations { messages += encode(operation) }
        let end = encodeEnd()
        return EncodedBatch(begin: begin, messages: messages, end: end)
    }

    var next: UInt32 { sequence }

    private mutating func takeSequence() -> UInt32 {
        defer { sequence &+= 1 }
        return sequence
    }

    private mutating func encodeBegin(generation: UInt32?) -> EncodedMessage {
        let seq = takeSequence()
        let bytes = withScratch { buffer -> [UInt8] in
            guard let header = nftnl_batch_begin(buffer, seq) else { return [] }
            if let generation {
                // NFNL_BATCH_GENID (u32, network order): the kernel refuses the whole batch
                // with ERESTART when the ruleset generation is no longer this one.
                mnl_attr_put_u32(header, UInt16(NFNL_BATCH_GENID.rawValue), generation.bigEndian)
            }
            return bytesOf(header)
        }
        return EncodedMessage(sequence: seq, operation: "begin batch", object: "", bytes: bytes)
    }

    private mutating func encodeEnd() -> EncodedMessage {
        let seq = takeSequence()
        let bytes = withScratch { buffer in nftnl_batch_end(buffer, seq).map { bytesOf($0) } ?? [] }
        return EncodedMessage(sequence: seq, operation: "end batch", object: "", bytes: bytes)
    }

    private mutating func withScratch(_ body: (UnsafeMutablePointer<CChar>) -> [UInt8]) -> [UInt8] {
        scratch.zeroUsedPart()
        let bytes = body(scratch.base)
        scratch.markUsed(bytes.count)
        return bytes
    }

    /// Builds one nf_tables message: header by libnftnl, payload by `build`.
    private mutating func message(
        _ type: nf_tables_msg_types, family: TableFamily, flags: UInt16, operation: String, object: String,
        _ build: (UnsafeMutablePointer<nlmsghdr>) -> Void
    ) -> EncodedMessage {
        let seq = takeSequence()
        let bytes = withScratch { buffer in
            guard let header = nftnl_nlmsg_build_hdr(buffer, UInt16(type.rawValue), UInt16(family.rawValue), flags, seq)
            else { return [] }
            build(header)
            return bytesOf(header)
        }
        return EncodedMessage(sequence: seq, operation: operation, object: object, bytes: bytes)
    }

    private mutating func encode(_ operation: Batch.Operation) -> [EncodedMessage] {
        switch operation {
        case .addTable(let table):
            return [tableMessage(table, type: NFT_MSG_NEWTABLE, flags: Self.createFlags, operation: "add table")]
        case .deleteTable(let table):
            return [tableMessage(table, type: NFT_MSG_DELTABLE, flags: NetlinkHeader.ack, operation: "delete table")]
        case .addChain(let chain):
            return [chainMessage(chain, type: NFT_MSG_NEWCHAIN, flags: Self.createFlags, operation: "add chain")]
        case .deleteChain(let chain):
            return [chainMessage(chain, type: NFT_MSG_DELCHAIN, flags: NetlinkHeader.ack, operation: "delete chain")]
        case .flushChain(let chain):
            return [
                message(
                    NFT_MSG_DELRULE, family: chain.family, flags: NetlinkHeader.ack, operation: "flush chain",
                    object: "\(chain.family.name) \(chain.table) \(chain.name)"
                ) { header in
                    let rule = NFTObject(nftnl_rule_alloc(), free: nftnl_rule_free)
                    nftnl_rule_set_str(rule.pointer, UInt16(NFTNL_RULE_TABLE.rawValue), chain.table)
                    nftnl_rule_set_str(rule.pointer, UInt16(NFTNL_RULE_CHAIN.rawValue), chain.name)
                    nftnl_rule_nlmsg_build_payload(header, rule.pointer)
                }
            ]
        case .addSet(let set):
            // The kernel refuses NEWSET without NFTA_SET_ID (the in-batch reference id).
            let setID = nextSetID
            nextSetID += 1
            return [
                setMessage(set, type: NFT_MSG_NEWSET, flags: Self.createFlags, operation: "add set", setID: setID)
            ]
        case .deleteSet(let set):
            return [setMessage(set, type: NFT_MSG_DELSET, flags: NetlinkHeader.ack, operation: "delete set")]
        case .addElements(let path, let elements, let exclusive):
            let kernelElements = elements.flatMap(KernelElement.expand)
            return elementMessages(
                path, setID: nil, kernelElements, type: NFT_MSG_NEWSETELEM,
                flags: Self.createFlags | (exclusive ? NetlinkHeader.exclusive : 0), operation: "add set elements")
        case .deleteElements(let path, let elements):
            let kernelElements = elements.flatMap(KernelElement.expand).map { $0.keyOnly }
            return elementMessages(
                path, setID: nil, kernelElements, type: NFT_MSG_DELSETELEM, flags: NetlinkHeader.ack,
                operation: "delete set elements")
        case .deleteElementRecords(let path, let records):
            let kernelElements = records.map {
                KernelElement(key: $0.key, flags: $0.isIntervalEnd ? 1 : 0, keyEnd: $0.keyEnd)
            }
            return elementMessages(
                path, setID: nil, kernelElements, type: NFT_MSG_DELSETELEM, flags: NetlinkHeader.ack,
                operation: "delete set elements")
        case .addRule(let rule):
            return ruleMessages(rule, append: true)
        case .insertRule(let rule, let handle):
            return ruleMessages(rule, append: false, position: handle)
        case .deleteRule(let family, let table, let chain, let handle):
            return [
                message(
                    NFT_MSG_DELRULE, family: family, flags: NetlinkHeader.ack, operation: "delete rule",
                    object: "\(family.name) \(table) \(chain) handle \(handle)"
                ) { header in
                    let rule = NFTObject(nftnl_rule_alloc(), free: nftnl_rule_free)
                    nftnl_rule_set_str(rule.pointer, UInt16(NFTNL_RULE_TABLE.rawValue), table)
                    nftnl_rule_set_str(rule.pointer, UInt16(NFTNL_RULE_CHAIN.rawValue), chain)
                    nftnl_rule_set_u64(rule.pointer, UInt16(NFTNL_RULE_HANDLE.rawValue), handle)
                    nftnl_rule_nlmsg_build_payload(header, rule.pointer)
                }
            ]
        }
    }

    private mutating func tableMessage(
        _ table: Table, type: nf_tables_msg_types, flags: UInt16, operation: String
    ) -> EncodedMessage {
        message(
            type, family: table.family, flags: flags, operation: operation, object: "\(table.family.name) \(table.name)"
        ) { header in
            let object = NFTObject(nftnl_table_alloc(), free: nftnl_table_free)
            nftnl_table_set_str(object.pointer, UInt16(NFTNL_TABLE_NAME.rawValue), table.name)
            nftnl_table_nlmsg_build_payload(header, object.pointer)
        }
    }

    private mutating func chainMessage(
        _ chain: Chain, type: nf_tables_msg_types, flags: UInt16, operation: String
    ) -> EncodedMessage {
        message(
            type, family: chain.family, flags: flags, operation: operation,
            object: "\(chain.family.name) \(chain.table) \(chain.name)"
        ) { header in
            let object = NFTObject(nftnl_chain_alloc(), free: nftnl_chain_free)
            nftnl_chain_set_str(object.pointer, UInt16(NFTNL_CHAIN_TABLE.rawValue), chain.table)
            nftnl_chain_set_str(object.pointer, UInt16(NFTNL_CHAIN_NAME.rawValue), chain.name)
            if let base = chain.base, type == NFT_MSG_NEWCHAIN {
                nftnl_chain_set_u32(object.pointer, UInt16(NFTNL_CHAIN_HOOKNUM.rawValue), base.hook.rawValue)
                nftnl_chain_set_s32(object.pointer, UInt16(NFTNL_CHAIN_PRIO.rawValue), base.priority)
                nftnl_chain_set_str(object.pointer, UInt16(NFTNL_CHAIN_TYPE.rawValue), base.type.rawValue)
                nftnl_chain_set_u32(
                    object.pointer, UInt16(NFTNL_CHAIN_POLICY.rawValue), UInt32(bitPattern: base.policy.code))
            }
            nftnl_chain_nlmsg_build_payload(header, object.pointer)
        }
    }

    private mutating func setMessage(
        _ set: NFTSet, type: nf_tables_msg_types, flags: UInt16, operation: String, setID: UInt32? = nil
    ) -> EncodedMessage {
        message(type, family: set.family, flags: flags, operation: operation, object: set.path.description) {
            header in
            let object = NFTObject(nftnl_set_alloc(), free: nftnl_set_free)
            nftnl_set_set_str(object.pointer, UInt16(NFTNL_SET_TABLE.rawValue), set.table)
            nftnl_set_set_str(object.pointer, UInt16(NFTNL_SET_NAME.rawValue), set.name)
            if type == NFT_MSG_NEWSET {
                SetAttributes(
                    keyType: set.keyType, dataType: set.dataType, flags: set.flags.rawValue, setID: setID,
                    size: nil
                ).apply(to: object.pointer)
            }
            nftnl_set_nlmsg_build_payload(header, object.pointer)
        }
    }

    private mutating func elementMessages(
        _ path: SetPath, setID: UInt32?, _ elements: [KernelElement], type: nf_tables_msg_types, flags: UInt16,
        operation: String
    ) -> [EncodedMessage] {
        stride(from: 0, to: elements.count, by: Self.elementsPerMessage).map { start in
            let chunk = elements[start..<min(start + Self.elementsPerMessage, elements.count)]
            return message(type, family: path.family, flags: flags, operation: operation, object: path.description) {
                header in
                let set = NFTObject(nftnl_set_alloc(), free: nftnl_set_free)
                nftnl_set_set_str(set.pointer, UInt16(NFTNL_SET_TABLE.rawValue), path.table)
                nftnl_set_set_str(set.pointer, UInt16(NFTNL_SET_NAME.rawValue), path.name)
                if let setID { nftnl_set_set_u32(set.pointer, UInt16(NFTNL_SET_ID.rawValue), setID) }
                for element in chunk { element.add(to: set.pointer) }
                nftnl_set_elems_nlmsg_build_payload(header, set.pointer)
            }
        }
    }

    /// A rule, preceded by the anonymous sets its lookups use (created in the same batch and
    /// referenced by set id, as nft does).
    /// Without `append` (NLM_F_APPEND) the kernel inserts the rule before the rule whose handle
    /// is `position`, or at the start of the chain without one.
    private mutating func ruleMessages(_ rule: Rule, append: Bool, position: UInt64? = nil) -> [EncodedMessage] {
        var messages: [EncodedMessage] = []
        var anonymousIDs: [Int: UInt32] = [:]
        for (index, expression) in rule.expressions.enumerated() {
            guard case .lookup(.anonymous(let keyType, let values), _, _, _) = expression else { continue }
            let setID = nextSetID
            nextSetID += 1
            anonymousIDs[index] = setID
            let path = SetPath(family: rule.family, table: rule.table, name: anonymousSetName)
            messages.append(
                message(
                    NFT_MSG_NEWSET, family: rule.family, flags: Self.createFlags, operation: "add anonymous set",
                    object: "\(rule.family.name) \(rule.table) (rule in \(rule.chain))"
                ) { header in
                    let set = NFTObject(nftnl_set_alloc(), free: nftnl_set_free)
                    nftnl_set_set_str(set.pointer, UInt16(NFTNL_SET_TABLE.rawValue), rule.table)
                    nftnl_set_set_str(set.pointer, UInt16(NFTNL_SET_NAME.rawValue), anonymousSetName)
                    SetAttributes(
                        keyType: keyType, dataType: nil, flags: 0x3,  // NFT_SET_ANONYMOUS | NFT_SET_CONSTANT
                        setID: setID, size: UInt32(values.count)
                    ).apply(to: set.pointer)
                    nftnl_set_nlmsg_build_payload(header, set.pointer)
                })
            messages += elementMessages(
                path, setID: setID, values.map { KernelElement(key: encodeValues($0)) }, type: NFT_MSG_NEWSETELEM,
                flags: Self.createFlags, operation: "add anonymous set elements")
        }
        messages.append(
            message(
                NFT_MSG_NEWRULE, family: rule.family, flags: Self.createFlags | (append ? NetlinkHeader.append : 0),
                operation: append ? "add rule" : "insert rule",
                object: "\(rule.family.name) \(rule.table) \(rule.chain)"
            ) { header in
                let object = NFTObject(nftnl_rule_alloc(), free: nftnl_rule_free)
                nftnl_rule_set_str(object.pointer, UInt16(NFTNL_RULE_TABLE.rawValue), rule.table)
                nftnl_rule_set_str(object.pointer, UInt16(NFTNL_RULE_CHAIN.rawValue), rule.chain)
                if let position { nftnl_rule_set_u64(object.pointer, UInt16(NFTNL_RULE_POSITION.rawValue), position) }
                for (index, expression) in rule.expressions.enumerated() {
                    // The rule takes ownership of each expression.
                    if let built = ExpressionEncoder.build(expression, anonymousSetID: anonymousIDs[index]) {
                        nftnl_rule_add_expr(object.pointer, built)
                    }
                }
                if let comment = rule.comment {
                    let userData = UserData.comment(comment)
                    userData.withUnsafeBytes { raw in
                        _ = nftnl_rule_set_data(
                            object.pointer, UInt16(NFTNL_RULE_USERDATA.rawValue), raw.baseAddress,
                            UInt32(raw.count))
                    }
                }
                nftnl_rule_nlmsg_build_payload(header, object.pointer)
            })
        return messages
    }
}

/// The encoder's zeroed message buffer. From calloc, and before each message re-zeroed only as
/// far as the previous one reached: a batch touches the pages its messages fill, not all
/// 128 KiB (zeroing it all up front and per message made every plugin that writes rules keep
/// 128 KiB more resident; docs/design.md, "Peak RSS").
private final class Scratch {
    static let size = 1 << 17
    let base: UnsafeMutablePointer<CChar>
    private var used = 0

    init() {
        guard let memory = calloc(Self.size, 1) else { fatalError("out of memory for the nf_tables scratch buffer") }
        base = memory.bindMemory(to: CChar.self, capacity: Self.size)
    }

    deinit { free(base) }

    func zeroUsedPart() {
        base.update(repeating: 0, count: used)
        used = 0
    }

    /// A message written at `base` is `count` bytes; its header's length says the same, and
    /// the larger of the two is kept should a failed build have written more than it returned.
    func markUsed(_ count: Int) {
        let headerLength = UnsafeRawPointer(base).loadUnaligned(as: UInt32.self)
        used = min(Self.size, max(count, Int(headerLength)))
    }
}
