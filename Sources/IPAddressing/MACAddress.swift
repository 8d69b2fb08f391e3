/// A 48-bit Ethernet address; text form lowercase `aa:bb:cc:dd:ee:ff`.
public struct MACAddress: Sendable, Hashable, CustomStringConvertible {
    public let bytes: [UInt8]

    public init?(bytes: some Collection<UInt8>) {
        guard bytes.count == 6 else { return nil }
        self.bytes = Array(bytes)
    }

    /// Accepts `:` or `-` separated hex pairs, in either case.
    public init?(_ text: String) {
        let parts = text.split(whereSeparator: { $0 == ":" || $0 == "-" })
        guard parts.count == 6, text.count == 17 else { return nil }
        var bytes: [UInt8] = []
        for part in parts {
            guard part.count == 2, let byte = UInt8(part, radix: 16) else { return nil }
            bytes.append(byte)
        }
        self.bytes = bytes
    }

    public var description: String {
        bytes.map { byte in
            let hex = String(byte, radix: 16)
            return hex.count == 1 ? "0" + hex : hex
        }.joined(separator: ":")
    }

    /// Multicast (and broadcast) addresses cannot be an interface's own address.
    public var isMulticast: Bool { bytes[0] & 1 == 1 }

    /// A random unicast, locally administered address.
    public static func randomLocal() -> MACAddress {
        var bytes = (0..<6).map { _ in UInt8.random(in: 0...255) }
        bytes[0] = (bytes[0] & 0xfe) | 0x02
        return MACAddress(uncheckedBytes: bytes)
    }

    private init(uncheckedBytes: [UInt8]) { self.bytes = uncheckedBytes }
}

extension MACAddress: Codable {
    public init(from decoder: any Decoder) throws {
        let text = try decoder.singleValueContainer().decode(String.self)
        guard let value = MACAddress(text) else {
            throw DecodingError.dataCorrupted(
                .init(codingPath: decoder.codingPath, debugDescription: "invalid MAC address \"\(text)\""))
        }
        self = value
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(description)
    }
}
