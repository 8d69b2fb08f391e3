/// An address family: IPv4 or IPv6.
public enum IPFamily: Sendable, Hashable, CaseIterable, CustomStringConvertible {
    case v4, v6

    /// Spelled out, so interpolating a family is static: the reflection fallback's first use
    /// scans every protocol conformance in the binary, milliseconds at a plugin's start.
    public var description: String { self == .v4 ? "v4" : "v6" }

    /// Bits in an address of this family.
    public var bitCount: Int { self == .v4 ? 32 : 128 }
    /// Bytes in an address of this family.
    public var byteCount: Int { self == .v4 ? 4 : 16 }
    /// The socket address family (AF_INET = 2, AF_INET6 = 10 on Linux).
    public var addressFamily: UInt8 { self == .v4 ? 2 : 10 }
}

/// An IPv4 or IPv6 address, stored as an unsigned integer in host order so that arithmetic
/// (ranges, round-robin allocation) is cheap. Text forms follow RFC 5952 for IPv6.
public enum IPAddress: Sendable, Hashable, Comparable, CustomStringConvertible {
    case v4(UInt32)
    case v6(high: UInt64, low: UInt64)

    public var family: IPFamily {
        switch self {
        case .v4: return .v4
        case .v6: return .v6
        }
    }

    /// Parses dotted-quad IPv4 or any RFC 4291 IPv6 text form (including `::` and an
    /// embedded dotted quad). A zone (`%eth0`) is not accepted.
    public init?(_ text: String) {
        if text.utf8.contains(UInt8(ascii: ":")) {
            guard let value = IPAddress.parseV6(Substring(text)) else { return nil }
            self = value
        } else {
            guard let value = IPAddress.parseV4(Substring(text)) else { return nil }
            self = .v4(value)
        }
    }

    /// From network-order bytes: 4 for IPv4, 16 for IPv6.
    public init?(bytes: some Collection<UInt8>) {
        let array = Array(bytes)
        switch array.count {
        case 4:
            self = .v4(array.reduce(0) { $0 << 8 | UInt32($1) })
        case 16:
            let high = array[0..<8].reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
            let low = array[8..<16].reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
            self = .v6(high: high, low: low)
        default:
            return nil
        }
    }

    /// Network-order bytes: 4 for IPv4, 16 for IPv6.
    public var bytes: [UInt8] {
        switch self {
        case .v4(let value):
            return (0..<4).map { UInt8(truncatingIfNeeded: value >> (24 - 8 * UInt32($0))) }
        case .v6(let high, let low):
            let h = (0..<8).map { UInt8(truncatingIfNeeded: high >> (56 - 8 * UInt64($0))) }
            let l = (0..<8).map { UInt8(truncatingIfNeeded: low >> (56 - 8 * UInt64($0))) }
            return h + l
        }
    }

    public var description: String {
        switch self {
        case .v4(let value):
            return (0..<4).map { String((value >> (24 - 8 * UInt32($0))) & 0xff) }.joined(separator: ".")
        case .v6(let high, let low):
            return IPAddress.formatV6(high: high, low: low)
        }
    }

    public static func < (lhs: IPAddress, rhs: IPAddress) -> Bool {
        switch (lhs, rhs) {
        case (.v4(let a), .v4(let b)): return a < b
        case (.v6(let ah, let al), .v6(let bh, let bl)): return ah < bh || (ah == bh && al < bl)
        case (.v4, .v6): return true
        case (.v6, .v4): return false
        }
    }

    /// True for 127.0.0.0/8 and ::1.
    public var isLoopback: Bool {
        switch self {
        case .v4(let value): return value >> 24 == 127
        case .v6(let high, let low): return high == 0 && low == 1
        }
    }

    /// True for fe80::/10 (IPv6 link-local) and 169.254.0.0/16.
    public var isLinkLocal: Bool {
        switch self {
        case .v4(let value): return value >> 16 == 0xa9fe
        case .v6(let high, _): return high >> 54 == 0x3fa
        }
    }

    /// The address `offset` places further on, or nil when that leaves the family's range.
    public func advanced(by offset: Int64) -> IPAddress? {
        switch self {
        case .v4(let value):
            let next = Int64(value) + offset
            guard next >= 0 && next <= Int64(UInt32.max) else { return nil }
            return .v4(UInt32(next))
        case .v6(let high, let low):
            if offset >= 0 {
                let (sum, carry) = low.addingReportingOverflow(UInt64(offset))
                let (newHigh, overflow) = high.addingReportingOverflow(carry ? 1 : 0)
                return overflow ? nil : .v6(high: newHigh, low: sum)
            }
            let (difference, borrow) = low.subtractingReportingOverflow(UInt64(-offset))
            let (newHigh, underflow) = high.subtractingReportingOverflow(borrow ? 1 : 0)
            return underflow ? nil : .v6(high: newHigh, low: difference)
        }
    }

    /// The address with every bit after the first `prefixLength` cleared (or set).
    public func masked(to prefixLength: Int, settingHostBits: Bool = false) -> IPAddress {
        switch self {
        case .v4(let value):
            let hostMask: UInt32 = prefixLength >= 32 ? 0 : (prefixLength <= 0 ? .max : .max >> UInt32(prefixLength))
            return .v4(settingHostBits ? value | hostMask : value & ~hostMask)
        case .v6(let high, let low):
            let highHost: UInt64 = prefixLength >= 64 ? 0 : (prefixLength <= 0 ? .max : .max >> UInt64(prefixLength))
            let lowHost: UInt64 =
                prefixLength >= 128 ? 0 : (prefixLength <= 64 ? .max : .max >> UInt64(prefixLength - 64))
            return settingHostBits
                ? .v6(high: high | highHost, low: low | lowHost)
                : .v6(high: high & ~highHost, low: low & ~lowHost)
        }
    }

    // MARK: Parsing

    /// Dotted quad, byte by byte (leases are listed by parsing every file name: this is hot).
    private static func parseV4(_ text: Substring) -> UInt32? {
        var value: UInt32 = 0
        var octet: UInt32 = 0
        var digits = 0
        var dots = 0
        var leadingZero = false
        for byte in text.utf8 {
            if byte == UInt8(ascii: ".") {
                guard digits > 0, dots < 3 else { return nil }
                value = value << 8 | octet
                (octet, digits, dots) = (0, 0, dots + 1)
                continue
            }
            guard byte >= UInt8(ascii: "0"), byte <= UInt8(ascii: "9") else { return nil }
            // Leading zeros are rejected: Go and glibc disagree on whether they mean octal.
            if digits == 0 { leadingZero = byte == UInt8(ascii: "0") } else if leadingZero { return nil }
            octet = octet * 10 + UInt32(byte - UInt8(ascii: "0"))
            digits += 1
            guard digits <= 3, octet <= 255 else { return nil }
        }
        guard dots == 3, digits > 0 else { return nil }
        return value << 8 | octet
    }

    private static func parseV6(_ text: Substring) -> IPAddress? {
        var groups: [UInt16] = []
        var gapIndex: Int?
        var rest = text
        if rest.hasPrefix("::") {
            gapIndex = 0
            rest = rest.dropFirst(2)
            if rest.isEmpty { return .v6(high: 0, low: 0) }
        }
        let pieces = rest.split(separator: ":", omittingEmptySubsequences: false)
        for (index, piece) in pieces.enumerated() {
            if piece.isEmpty {
                // An empty piece is the "::" gap (once), or a trailing "::".
                guard gapIndex == nil, index > 0 else {
                    if index == pieces.count - 1 && gapIndex == groups.count { continue }
                    return nil
                }
                gapIndex = groups.count
                continue
            }
            if piece.contains(".") {
                guard index == pieces.count - 1, let v4 = parseV4(piece) else { return nil }
                groups.append(UInt16(v4 >> 16))
                groups.append(UInt16(v4 & 0xffff))
                continue
            }
            guard piece.count <= 4, let group = UInt16(piece, radix: 16) else { return nil }
            groups.append(group)
        }
        if let gapIndex {
            guard groups.count < 8 else { return nil }
            groups.insert(contentsOf: repeatElement(0, count: 8 - groups.count), at: gapIndex)
        }
        guard groups.count == 8 else { return nil }
        let high = groups[0..<4].reduce(UInt64(0)) { $0 << 16 | UInt64($1) }
        let low = groups[4..<8].reduce(UInt64(0)) { $0 << 16 | UInt64($1) }
        return .v6(high: high, low: low)
    }

    /// RFC 5952: lowercase, no leading zeros, the longest run (≥ 2) of zero groups as "::".
    private static func formatV6(high: UInt64, low: UInt64) -> String {
        let groups =
            (0..<4).map { UInt16(truncatingIfNeeded: high >> (48 - 16 * UInt64($0))) }
            + (0..<4).map { UInt16(truncatingIfNeeded: low >> (48 - 16 * UInt64($0))) }
        // IPv4-mapped addresses keep their dotted quad, as Go and glibc print them.
        if high == 0 && low >> 32 == 0xffff {
            return "::ffff:" + IPAddress.v4(UInt32(truncatingIfNeeded: low)).description
        }
        var bestStart = -1
        var bestLength = 0
        var index = 0
        while index < 8 {
            if groups[index] == 0 {
                var end = index
                while end < 8 && groups[end] == 0 { end += 1 }
                if end - index > bestLength && end - index >= 2 {
                    bestStart = index
                    bestLength = end - index
                }
                index = end
            } else {
                index += 1
            }
        }
        let hex = groups.map { String($0, radix: 16) }
        guard bestStart >= 0 else { return hex.joined(separator: ":") }
        let head = hex[0..<bestStart].joined(separator: ":")
        let tail = hex[(bestStart + bestLength)...].joined(separator: ":")
        return head + "::" + tail
    }
}

extension Character {
    fileprivate var isASCIIDigit: Bool { ("0"..."9").contains(self) }
}

extension IPAddress: Codable {
    public init(from decoder: any Decoder) throws {
        let text = try decoder.singleValueContainer().decode(String.self)
        guard let value = IPAddress(text) else {
            throw DecodingError.dataCorrupted(
                .init(codingPath: decoder.codingPath, debugDescription: "invalid IP address \"\(text)\""))
        }
        self = value
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(description)
    }
}
