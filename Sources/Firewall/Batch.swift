/// Names a set or map (elements are always added to an existing, named set).
public struct SetPath: Sendable, Hashable, CustomStringConvertible {
    public var family: TableFamily
    public var table: String
    public var name: String

    public init(family: TableFamily, table: String, name: String) {
        self.family = family
        self.table = table
        self.name = name
    }

    public var description: String { "\(family.name) \(table) \(name)" }
}

extension NFTSet {
    public var path: SetPath { SetPath(family: family, table: table, name: name) }
}

/// A list of changes the kernel applies atomically, all or nothing. Build it, then hand it to
/// `NFTablesClient.commit` (or return it from `withGenerationCheck`).
public struct Batch: Sendable {
    enum Operation: Sendable {
        case addTable(Table)
        case deleteTable(Table)
        case addChain(Chain)
        case deleteChain(Chain)
        case flushChain(Chain)
        case addSet(NFTSet)
        case deleteSet(NFTSet)
        case addElements(SetPath, [SetElement], exclusive: Bool)
        case deleteElements(SetPath, [SetElement])
        case deleteElementRecords(SetPath, [ElementRecord])
        case addRule(Rule)
        case insertRule(Rule, before: UInt64?)
        case deleteRule(family: TableFamily, table: String, chain: String, handle: UInt64)
    }

    private(set) var operations: [Operation] = []

    public init() {}

    public var isEmpty: Bool { operations.isEmpty }

    /// Whether committing it removes objects (rules, elements, sets, chains, tables): the kernel then
    /// frees them after an RCU grace period, which the socket's release waits for.
    var removesObjects: Bool {
        operations.contains {
            switch $0 {
            case .deleteTable, .deleteChain, .flushChain, .deleteSet, .deleteElements, .deleteElementRecords,
                .deleteRule:
                return true
            case .addTable, .addChain, .addSet, .addElements, .addRule, .insertRule:
                return false
            }
        }
    }
    public var count: Int { operations.count }

    /// Creates the table unless it exists (never fails because it exists).
    public mutating func add(_ table: Table) { operations.append(.addTable(table)) }
    /// Creates the chain unless it exists; an existing base chain keeps its rules.
    public mutating func add(_ chain: Chain) { operations.append(.addChain(chain)) }
    /// Creates the set or map unless one with that name exists.
    public mutating func add(_ set: NFTSet) { operations.append(.addSet(set)) }
    /// Appends a rule. Use `NFTablesClient.ensureRules` to add a rule only once.
    public mutating func add(_ rule: Rule) { operations.append(.addRule(rule)) }
    /// Inserts a rule before the rule with handle `before`, or at the start of its chain.
    public mutating func insert(_ rule: Rule, before handle: UInt64? = nil) {
        operations.append(.insertRule(rule, before: handle))
    }

    /// Adds elements. `exclusive` makes an existing key an error (EEXIST) instead of a no-op,
    /// which is how a second container asking for the same host port is refused.
    public mutating func addElements(_ elements: [SetElement], to set: SetPath, exclusive: Bool = false) {
        guard !elements.isEmpty else { return }
        operations.append(.addElements(set, elements, exclusive: exclusive))
    }

    public mutating func deleteElements(_ elements: [SetElement], from set: SetPath) {
        guard !elements.isEmpty else { return }
        operations.append(.deleteElements(set, elements))
    }

    /// Deletes elements exactly as they were read back (raw key bytes).
    public mutating func deleteElements(_ records: [ElementRecord], from set: SetPath) {
        guard !records.isEmpty else { return }
        operations.append(.deleteElementRecords(set, records))
    }

    public mutating func delete(_ table: Table) { operations.append(.deleteTable(table)) }
    public mutating func delete(_ chain: Chain) { operations.append(.deleteChain(chain)) }
    public mutating func delete(_ set: NFTSet) { operations.append(.deleteSet(set)) }
    public mutating func flush(_ chain: Chain) { operations.append(.flushChain(chain)) }

    public mutating func deleteRule(family: TableFamily, table: String, chain: String, handle: UInt64) {
        operations.append(.deleteRule(family: family, table: table, chain: chain, handle: handle))
    }

    public mutating func append(contentsOf other: Batch) { operations += other.operations }
}

/// One encoded message of a batch: its sequence number and what it does (for error reports).
public struct EncodedMessage: Sendable {
    public let sequence: UInt32
    public let operation: String
    public let object: String
    public let bytes: [UInt8]
}

/// A batch ready to send: BATCH_BEGIN, the object messages, BATCH_END, as one datagram.
public struct EncodedBatch: Sendable {
    public let begin: EncodedMessage
    public let messages: [EncodedMessage]
    public let end: EncodedMessage

    public var datagram: [UInt8] { begin.bytes + messages.flatMap(\.bytes) + end.bytes }
}
