/// Standard base64 with padding (RFC 4648 §4), as Go's encoding/json writes `[]byte` fields:
/// libcni stores the conflist of a cached result that way.
enum Base64 {
    private static let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8)

    private static let values: [UInt8] = {
        var table = [UInt8](repeating: 0xff, count: 256)
        for (index, byte) in alphabet.enumerated() { table[Int(byte)] = UInt8(index) }
        return table
    }()

    static func encode(_ bytes: [UInt8]) -> String {
        var output: [UInt8] = []
        output.reserveCapacity((bytes.count + 2) / 3 * 4)
        var index = 0
        while index < bytes.count {
            let count = min(3, bytes.count - index)
            var group = UInt32(bytes[index]) << 16
            if count > 1 { group |= UInt32(bytes[index + 1]) << 8 }
            if count > 2 { group |= UInt32(bytes[index + 2]) }
            for position in 0..<4 {
                output.append(
                    position <= count ? alphabet[Int((group >> UInt32(18 - 6 * position)) & 0x3f)] : UInt8(ascii: "="))
            }
            index += 3
        }
        return String(decoding: output, as: UTF8.self)
    }

    /// nil for anything but padded standard base64; CR and LF are ignored, as Go ignores them.
    static func decode(_ text: String) -> [UInt8]? {
        let input = text.utf8.filter { $0 != 13 && $0 != 10 }
        guard input.count % 4 == 0 else { return nil }
        var output: [UInt8] = []
        output.reserveCapacity(input.count / 4 * 3)
        var index = 0
        while index < input.count {
            let isLast = index + 4 == input.count
            var group: UInt32 = 0
            var padding = 0
            for position in 0..<4 {
                let byte = input[index + position]
                if byte == UInt8(ascii: "=") {
                    // Padding only at the end of the last group, and at most two.
                    guard isLast, position >= 2 else { return nil }
                    padding += 1
                    group <<= 6
                    continue
                }
                let value = values[Int(byte)]
                guard value != 0xff, padding == 0 else { return nil }
                group = group << 6 | UInt32(value)
            }
            output.append(UInt8(truncatingIfNeeded: group >> 16))
            if padding < 2 { output.append(UInt8(truncatingIfNeeded: group >> 8)) }
            if padding < 1 { output.append(UInt8(truncatingIfNeeded: group)) }
            index += 4
        }
        return output
    }
}
