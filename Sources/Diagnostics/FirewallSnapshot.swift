import Firewall
import IPAddressing
import PierTables

/// One element of a Pier set or map, decoded for display and matching.
public struct PierElement: Sendable, Equatable, Codable {
    /// `inet pier dnat_v4`, etc.
    public var set: String
    public var key: [String]
    public var value: [String]?
    public var comment: String?
}

/// The sets and maps of Pier's tables (`inet pier`, `bridge pier`) and every base chain of
/// every other table, read once.
public struct FirewallSnapshot: Sendable {
    public var sets: [NFTSet]
    public var elements: [PierElement]
    /// Base chains of all tables, Pier's own included.
    public var baseChains: [Chain]
    /// Raw records by set, for decoding typed values (ports, addresses).
    public var records: [String: [ElementRecord]]
    /// Rule comments of each `inet pier` chain (Pier identifies its fixed rules by comment).
    public var ruleComments: [String: Set<String>] = [:]
    /// Other IP tables' forward chains that drop by default, with or without Pier's accept rule.
    public var foreignForward: [ForeignForwardChain] = []

    public static let tables: [Table] = [PierTable.table, SpoofCheck.table]

    public static func read(_ client: NFTablesClient) throws(FirewallError) -> Self {
        var snapshot = Self(sets: [], elements: [], baseChains: [], records: [:])
        for table in try client.tables() {
            let chains: [Chain]
            do { chains = try client.chains(family: table.family, table: table.name) } catch  where error.isNotFound {
                continue
            }
            snapshot.baseChains += chains.filter { $0.base != nil }
            guard table.family == .inet, table.name == PierTable.name else { continue }
            for chain in chains {
                let rules = (try? client.rules(family: .inet, table: table.name, chain: chain.name)) ?? []
                snapshot.ruleComments[chain.name] = Set(rules.compactMap(\.comment))
            }
        }
        snapshot.foreignForward = (try? ForeignForwardAccept(client: client).survey()) ?? []
        for table in tables {
            let sets: [NFTSet]
            do { sets = try client.sets(family: table.family, table: table.name) } catch  where error.isNotFound {
                continue
            }
            for set in sets {
                let records: [ElementRecord]
                do { records = try client.elements(of: set.path) } catch  where error.isNotFound { continue }
                snapshot.sets.append(set)
                snapshot.records[set.path.description] = records
                snapshot.elements += records.filter { !$0.isIntervalEnd }.map { PierElement(record: $0, in: set) }
            }
        }
        return snapshot
    }

    /// Elements whose owner tag is exactly `tag` (an attachment's) or starts with `tag + " "`
    /// (a network's per-subnet elements).
    public func elements(taggedWith tag: String, prefixMatch: Bool = false) -> [PierElement] {
        elements.filter { element in
            guard let comment = element.comment else { return false }
            return comment == tag || (prefixMatch && comment.hasPrefix(tag + " "))
        }
    }

    public func set(named name: String, family: TableFamily = .inet) -> NFTSet? {
        sets.first { $0.name == name && $0.family == family }
    }

    /// Decoded keys of a set (interface names, addresses).
    public func keys(of name: String, family: TableFamily = .inet) -> [[SetValue]] {
        guard let set = set(named: name, family: family) else { return [] }
        return (records[set.path.description] ?? []).compactMap { $0.decodedKey(set.keyType) }
    }

    /// Published ports: the elements of the DNAT maps (`dnat_*` in `inet pier`).
    public var publishedPorts: [PublishedPortRecord] {
        sets.filter { $0.family == .inet && $0.name.hasPrefix("dnat_") && $0.isMap }.flatMap { set in
            (records[set.path.description] ?? []).compactMap { PublishedPortRecord(record: $0, in: set) }
        }
    }
}

extension PierElement {
    init(record: ElementRecord, in set: NFTSet) {
        self.set = set.path.description
        key = Self.render(record.decodedKey(set.keyType), types: set.keyType, raw: record.key)
        if let dataType = set.dataType, !set.isVerdictMap, let data = record.data {
            value = Self.render(record.decodedData(dataType), types: dataType, raw: data)
        } else if let verdict = record.verdict {
            value = ["\(verdict)"]
        }
        comment = record.comment
    }

    static func render(_ values: [SetValue]?, types: [NFTDataType], raw: [UInt8]) -> [String] {
        guard let values else { return [raw.map { String($0, radix: 16) }.joined(separator: ":")] }
        return zip(values, types).map { value, type in
            switch (value, type) {
            case (.inetProtocol(let number), _): IPProtocol(rawValue: number).name
            case (.interfaceName(let name), _): name
            case (.raw(let bytes), .etherAddress): MACAddress(bytes: bytes).map { "\($0)" } ?? "\(value)"
            default: "\(value)"
            }
        }
    }
}

/// A DNAT map element: (host address) . protocol . host port → container address . port.
public struct PublishedPortRecord: Sendable, Equatable, Codable {
    public var map: String
    public var `protocol`: String
    public var hostAddress: String?
    public var hostPort: Int
    public var containerAddress: String
    public var containerPort: Int
    public var owner: String?

    init?(record: ElementRecord, in set: NFTSet) {
        guard let dataType = set.dataType, let key = record.decodedKey(set.keyType),
            let data = record.decodedData(dataType), data.count == 2,
            case .address(let container) = data[0], case .port(let containerPort) = data[1]
        else { return nil }
        var rest = key[...]
        if key.count == 3, case .address(let address) = key[0] {
            hostAddress = "\(address)"
            rest = key.dropFirst()
        }
        guard rest.count == 2, case .inetProtocol(let number) = rest.first, case .port(let port) = rest.last
        else { return nil }
        map = set.name
        self.protocol = IPProtocol(rawValue: number).name
        hostPort = Int(port)
        containerAddress = "\(container)"
        self.containerPort = Int(containerPort)
        owner = record.comment
    }
}
