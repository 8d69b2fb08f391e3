/// Substring search in the standard library alone. Product modules are built without the
/// implicit `_StringProcessing` import (its `contains`/`split` over a string pulls the regex
/// engine into every plugin process: docs/design.md, "Peak RSS"), so these are the one place
/// a string is searched for another.
extension StringProtocol {
    /// UTF-8 offsets where `needle` starts, left to right, not overlapping.
    public func utf8Offsets(of needle: some StringProtocol) -> [Int] {
        let text = Array(utf8)
        let pattern = Array(needle.utf8)
        guard !pattern.isEmpty, text.count >= pattern.count else { return [] }
        var offsets: [Int] = []
        var offset = 0
        while offset <= text.count - pattern.count {
            if text[offset..<offset + pattern.count].elementsEqual(pattern) {
                offsets.append(offset)
                offset += pattern.count
            } else {
                offset += 1
            }
        }
        return offsets
    }

    public func containsText(_ needle: some StringProtocol) -> Bool {
        !utf8Offsets(of: needle).isEmpty
    }

    /// The pieces between occurrences of `separator`, empty ones kept.
    public func components(separatedByText separator: some StringProtocol) -> [String] {
        let bytes = Array(utf8)
        var pieces: [String] = []
        var start = 0
        for offset in utf8Offsets(of: separator) {
            pieces.append(String(decoding: bytes[start..<offset], as: UTF8.self))
            start = offset + separator.utf8.count
        }
        pieces.append(String(decoding: bytes[start...], as: UTF8.self))
        return pieces
    }
}
