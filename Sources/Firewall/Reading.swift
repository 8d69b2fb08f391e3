import CMnl
import CNftnl
import NetlinkCore

/// A rule as read back: where it is, its handle and comment, and its expression names (in
/// order) for diagnostics. Only what Pier's callers need is decoded: the verdict and a mark match.
public struct RuleRecord: Sendable, Hashable {
    public var family: TableFamily
    public var table: String
    public var chain: String
    public var handle: UInt64
    public var comment: String?
    public var expressionNames: [String]
    /// The verdict of the rule's `immediate` to the verdict register, if it has one.
    public var verdict: Verdict?
    /// `M` when the rule matches `meta mark & M == M` (iptables' `-m mark --mark M/M`).
    public var markBits: UInt32?

    public init(
        family: TableFamily, table: String, chain: String, handle: UInt64, comment: String? = nil,
        expressionNames: [String], verdict: Verdict? = nil, markBits: UInt32? = nil
    ) {
        self.family = family
        self.table = table
        self.chain = chain
        self.handle = handle
        self.comment = comment
        self.expressionNames = expressionNames
        self.verdict = verdict
        self.markBits = markBits
    }

    /// Drops or rejects every packet that reaches it: a drop or reject verdict with nothing
    /// before it but counters and logging (firewalld's final `reject`, ufw's final `DROP`).
    public var dropsEverything: Bool {
        let terminal = expressionNames.last == "reject" || verdict == .drop
        let quiet: Set<String> = ["counter", "log", "immediate", "reject"]
        return terminal && expressionNames.allSatisfy(quiet.contains)
    }
}

extension NFTablesClient {
    /// Tables of one family, or of all families.
    public func tables(family: TableFamily? = nil) throws(FirewallError) -> [Table] {
        let replies = try request(
            NFT_MSG_GETTABLE, family: family?.rawValue ?? 0, dump: true, operation: "list tables", object: "")
        return replies.compactMap { reply in
            let object = NFTObject(nftnl_table_alloc(), free: nftnl_table_free)
            guard parse(reply, with: { nftnl_table_nlmsg_parse($0, object.pointer) }),
                let family = TableFamily(rawValue: replyFamily(reply))
            else { return nil }
            var table = Table(family: family, name: string(nftnl_table_get_str(object.pointer, a(NFTNL_TABLE_NAME))))
            table.handle = nftnl_table_get_u64(object.pointer, a(NFTNL_TABLE_HANDLE))
            return table
        }
    }

    /// Chains of a table (base chains come back with their hook, priority and policy).
    public func chains(family: TableFamily, table: String) throws(FirewallError) -> [Chain] {
        try chains(family: family, object: "\(family.name) \(table)").filter { $0.table == table }
    }

    /// Every chain of every table, in one dump.
    public func allChains() throws(FirewallError) -> [Chain] {
        try chains(family: nil, object: "all tables")
    }

    private func chains(family: TableFamily?, object: String) throws(FirewallError) -> [Chain] {
        let replies = try request(
            NFT_MSG_GETCHAIN, family: family?.rawValue ?? 0, dump: true, operation: "list chains", object: object)
        return replies.compactMap { reply in
            let object = NFTObject(nftnl_chain_alloc(), free: nftnl_chain_free)
            guard parse(reply, with: { nftnl_chain_nlmsg_parse($0, object.pointer) }),
                let family = TableFamily(rawValue: replyFamily(reply))
            else { return nil }
            let p = object.pointer
            let table = string(nftnl_chain_get_str(p, a(NFTNL_CHAIN_TABLE)))
            var chain = Chain(family: family, table: table, name: string(nftnl_chain_get_str(p, a(NFTNL_CHAIN_NAME))))
            chain.handle = nftnl_chain_get_u64(p, a(NFTNL_CHAIN_HANDLE))
            if nftnl_chain_is_set(p, a(NFTNL_CHAIN_HOOKNUM)),
                let hook = Hook(rawValue: nftnl_chain_get_u32(p, a(NFTNL_CHAIN_HOOKNUM)))
            {
                let type = ChainType(rawValue: string(nftnl_chain_get_str(p, a(NFTNL_CHAIN_TYPE)))) ?? .filter
                let policy = Verdict(code: Int32(bitPattern: nftnl_chain_get_u32(p, a(NFTNL_CHAIN_POLICY))), chain: nil)
                chain.base = BaseChainSpec(
                    type: type, hook: hook, priority: nftnl_chain_get_s32(p, a(NFTNL_CHAIN_PRIO)),
                    policy: policy ?? .accept)
            }
            return chain
        }
    }

    /// Rules of a chain, in order, with handles and comments.
    public func rules(family: TableFamily, table: String, chain: String) throws(FirewallError) -> [RuleRecord] {
        let replies = try request(
            NFT_MSG_GETRULE, family: family.rawValue, dump: true, operation: "list rules",
            object: "\(family.name) \(table) \(chain)"
        ) { header in
            let filter = NFTObject(nftnl_rule_alloc(), free: nftnl_rule_free)
            nftnl_rule_set_str(filter.pointer, a(NFTNL_RULE_TABLE), table)
            nftnl_rule_set_str(filter.pointer, a(NFTNL_RULE_CHAIN), chain)
            nftnl_rule_nlmsg_build_payload(header, filter.pointer)
        }
        return replies.compactMap { reply in
            let object = NFTObject(nftnl_rule_alloc(), free: nftnl_rule_free)
            guard parse(reply, with: { nftnl_rule_nlmsg_parse($0, object.pointer) }) else { return nil }
            let p = object.pointer
            guard string(nftnl_rule_get_str(p, a(NFTNL_RULE_TABLE))) == table,
                string(nftnl_rule_get_str(p, a(NFTNL_RULE_CHAIN))) == chain
            else { return nil }
            var length: UInt32 = 0
            var comment: String?
            if let userData = nftnl_rule_get_data(p, a(NFTNL_RULE_USERDATA), &length) {
                comment = UserData.comment(in: Array(UnsafeRawBufferPointer(start: userData, count: Int(length))))
            }
            let expressions = expressionSummary(of: p)
            return RuleRecord(
                family: family, table: table, chain: chain, handle: nftnl_rule_get_u64(p, a(NFTNL_RULE_HANDLE)),
                comment: comment, expressionNames: expressions.names, verdict: expressions.verdict,
                markBits: expressions.markBits)
        }
    }

    /// Named sets and maps of a table (anonymous sets are left out).
    public func sets(family: TableFamily, table: String) throws(FirewallError) -> [NFTSet] {
        let replies = try request(
            NFT_MSG_GETSET, family: family.rawValue, dump: true, operation: "list sets",
            object: "\(family.name) \(table)"
        ) { header in
            let filter = NFTObject(nftnl_set_alloc(), free: nftnl_set_free)
            nftnl_set_set_str(filter.pointer, a(NFTNL_SET_TABLE), table)
            nftnl_set_nlmsg_build_payload(header, filter.pointer)
        }
        return replies.compactMap { reply in
            let object = NFTObject(nftnl_set_alloc(), free: nftnl_set_free)
            guard parse(reply, with: { nftnl_set_nlmsg_parse($0, object.pointer) }) else { return nil }
            let p = object.pointer
            let flags = nftnl_set_get_u32(p, a(NFTNL_SET_FLAGS))
            guard flags & 0x1 == 0, string(nftnl_set_get_str(p, a(NFTNL_SET_TABLE))) == table else { return nil }
            let keyType = decodeTypes(nftnl_set_get_u32(p, a(NFTNL_SET_KEY_TYPE))) ?? []
            var dataType: [NFTDataType]?
            if flags & 0x8 != 0 { dataType = decodeTypes(nftnl_set_get_u32(p, a(NFTNL_SET_DATA_TYPE))) ?? [] }
            var set = NFTSet(
                family: family, table: table, name: string(nftnl_set_get_str(p, a(NFTNL_SET_NAME))),
                keyType: keyType, dataType: dataType, flags: SetFlags(rawValue: flags & 0x16))
            set.handle = nftnl_set_get_u64(p, a(NFTNL_SET_HANDLE))
            return set
        }
    }

    /// Every element of a set or map, with raw key/value bytes and the owner comment.
    public func elements(of path: SetPath) throws(FirewallError) -> [ElementRecord] {
        let replies = try request(
            NFT_MSG_GETSETELEM, family: path.family.rawValue, dump: true, operation: "list set elements",
            object: path.description
        ) { header in
            let filter = NFTObject(nftnl_set_alloc(), free: nftnl_set_free)
            nftnl_set_set_str(filter.pointer, a(NFTNL_SET_TABLE), path.table)
            nftnl_set_set_str(filter.pointer, a(NFTNL_SET_NAME), path.name)
            nftnl_set_elems_nlmsg_build_payload(header, filter.pointer)
        }
        return decodeElements(replies)
    }

    /// The element with this exact key, or nil when the set has none: one kernel lookup
    /// (GETSETELEM without DUMP), so ownership checks need not dump the whole set.
    public func element(_ key: [SetValue], in path: SetPath) throws(FirewallError) -> ElementRecord? {
        do throws(FirewallError) {
            let replies = try request(
                NFT_MSG_GETSETELEM, family: path.family.rawValue, dump: false, operation: "get set element",
                object: path.description
            ) { header in
                let query = NFTObject(nftnl_set_alloc(), free: nftnl_set_free)
                nftnl_set_set_str(query.pointer, a(NFTNL_SET_TABLE), path.table)
                nftnl_set_set_str(query.pointer, a(NFTNL_SET_NAME), path.name)
                KernelElement(key: encodeValues(key)).add(to: query.pointer)
                nftnl_set_elems_nlmsg_build_payload(header, query.pointer)
            }
            return decodeElements(replies).first
        } catch  where error.isNotFound {
            return nil
        }
    }

    private func decodeElements(_ replies: [NetlinkMessage]) -> [ElementRecord] {
        var records: [ElementRecord] = []
        for reply in replies {
            let set = NFTObject(nftnl_set_alloc(), free: nftnl_set_free)
            guard parse(reply, with: { nftnl_set_elems_nlmsg_parse($0, set.pointer) }) else { continue }
            let box = ElementCollector()
            withExtendedLifetime(box) {
                _ = nftnl_set_elem_foreach(set.pointer, collectElement, Unmanaged.passUnretained(box).toOpaque())
            }
            records += box.records
        }
        return records
    }

    private func expressionSummary(of rule: OpaquePointer) -> ExpressionSummary {
        let box = ExpressionSummary()
        withExtendedLifetime(box) {
            _ = nftnl_expr_foreach(rule, collectExpression, Unmanaged.passUnretained(box).toOpaque())
        }
        return box
    }
}

private final class ElementCollector { var records: [ElementRecord] = [] }

/// What a rule's expressions add up to, for `RuleRecord`.
private final class ExpressionSummary {
    var names: [String] = []
    var verdict: Verdict?
    var markBits: UInt32?
    /// Progress through `meta load mark`, `bitwise & M ^ 0`, `cmp eq M`.
    var markStep = 0
    var markMask: UInt32 = 0
}

private func collectElement(_ element: OpaquePointer?, _ context: UnsafeMutableRawPointer?) -> Int32 {
    guard let element, let context else { return 0 }
    let box = Unmanaged<ElementCollector>.fromOpaque(context).takeUnretainedValue()
    func bytes(_ attribute: Int) -> [UInt8]? {
        guard nftnl_set_elem_is_set(element, a(attribute)) else { return nil }
        var length: UInt32 = 0
        guard let data = nftnl_set_elem_get(element, a(attribute), &length) else { return nil }
        return Array(UnsafeRawBufferPointer(start: data, count: Int(length)))
    }
    var verdict: Verdict?
    if nftnl_set_elem_is_set(element, a(NFTNL_SET_ELEM_VERDICT)) {
        let code = Int32(bitPattern: nftnl_set_elem_get_u32(element, a(NFTNL_SET_ELEM_VERDICT)))
        let chain = nftnl_set_elem_get_str(element, a(NFTNL_SET_ELEM_CHAIN)).map { String(cString: $0) }
        verdict = Verdict(code: code, chain: chain)
    }
    let flags = bytes(NFTNL_SET_ELEM_FLAGS) != nil ? nftnl_set_elem_get_u32(element, a(NFTNL_SET_ELEM_FLAGS)) : 0
    box.records.append(
        ElementRecord(
            key: bytes(NFTNL_SET_ELEM_KEY) ?? [], data: bytes(NFTNL_SET_ELEM_DATA), verdict: verdict,
            comment: bytes(NFTNL_SET_ELEM_USERDATA).flatMap(UserData.comment(in:)), isIntervalEnd: flags & 1 != 0,
            keyEnd: bytes(NFTNL_SET_ELEM_KEY_END)))
    return 0
}

private func collectExpression(_ expression: OpaquePointer?, _ context: UnsafeMutableRawPointer?) -> Int32 {
    guard let expression, let context else { return 0 }
    let box = Unmanaged<ExpressionSummary>.fromOpaque(context).takeUnretainedValue()
    let name = string(nftnl_expr_get_str(expression, a(NFTNL_EXPR_NAME)))
    box.names.append(name)
    func u32(_ attribute: Int) -> UInt32? {
        nftnl_expr_is_set(expression, a(attribute)) ? nftnl_expr_get_u32(expression, a(attribute)) : nil
    }
    func word(_ attribute: Int) -> UInt32? {
        var length: UInt32 = 0
        guard nftnl_expr_is_set(expression, a(attribute)), let data = nftnl_expr_get(expression, a(attribute), &length),
            length == 4
        else { return nil }
        return data.loadUnaligned(as: UInt32.self)
    }
    let step = box.markStep
    box.markStep = 0
    switch name {
    case "immediate" where u32(NFTNL_EXPR_IMM_DREG) == Register.verdict.rawValue:
        if let code = u32(NFTNL_EXPR_IMM_VERDICT) {
            box.verdict = Verdict(
                code: Int32(bitPattern: code),
                chain: nftnl_expr_get_str(expression, a(NFTNL_EXPR_IMM_CHAIN)).map { String(cString: $0) })
        }
    case "meta" where u32(NFTNL_EXPR_META_KEY) == MetaKey.mark.rawValue && u32(NFTNL_EXPR_META_DREG) != nil:
        box.markStep = 1
    case "bitwise" where step == 1 && word(NFTNL_EXPR_BITWISE_XOR) == 0:
        if let mask = word(NFTNL_EXPR_BITWISE_MASK) {
            box.markMask = mask
            box.markStep = 2
        }
    case "cmp" where step == 2 && u32(NFTNL_EXPR_CMP_OP) == CmpOperator.eq.rawValue:
        if word(NFTNL_EXPR_CMP_DATA) == box.markMask { box.markBits = box.markMask }
    default:
        break
    }
    return 0
}

/// The nfgenmsg family byte of a reply.
func replyFamily(_ message: NetlinkMessage) -> UInt8 {
    message.payload.first ?? 0
}

/// Splits nft's 6-bit-per-field type numbers back into data types.
func decodeTypes(_ typeID: UInt32) -> [NFTDataType]? {
    if typeID == NFTDataType.verdict.typeID { return [.verdict] }
    let known: [NFTDataType] = [
        .ipv4Address, .ipv6Address, .etherAddress, .inetProtocol, .inetService, .mark, .interfaceName,
    ]
    var remaining = typeID
    var types: [NFTDataType] = []
    while remaining != 0 {
        guard let type = known.first(where: { $0.typeID == remaining & 0x3f }) else { return nil }
        types.insert(type, at: 0)
        remaining >>= 6
    }
    return types
}
