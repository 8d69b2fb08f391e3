import FoundationEssentials

/// Aligned plain-text tables and sections for terminal output.
public struct TextTable: Sendable {
    public var header: [String]
    public var rows: [[String]]

    public init(_ header: [String], rows: [[String]] = []) {
        self.header = header
        self.rows = rows
    }

    /// Columns padded to their widest cell (counted in characters); the last column is not
    /// padded, so lines carry no trailing spaces.
    public func lines(indent: String = "") -> [String] {
        let all = [header] + rows
        let columns = all.map(\.count).max() ?? 0
        let widths = (0..<columns).map { column in all.map { column < $0.count ? $0[column].count : 0 }.max() ?? 0 }
        return all.map { row in
            let cells = row.enumerated().map { column, cell in
                column == row.count - 1 ? cell : cell + String(repeating: " ", count: widths[column] - cell.count)
            }
            // Empty trailing cells would leave trailing spaces.
            return String((indent + cells.joined(separator: "  ")).reversed().drop { $0 == " " }.reversed())
        }
    }
}

/// ANSI colour, only when writing to a terminal (callers decide with `isatty`).
public struct Style: Sendable {
    public var enabled: Bool

    public init(enabled: Bool) { self.enabled = enabled }

    public func bold(_ text: String) -> String { wrap(text, "1") }
    public func green(_ text: String) -> String { wrap(text, "32") }
    public func yellow(_ text: String) -> String { wrap(text, "33") }
    public func red(_ text: String) -> String { wrap(text, "31") }
    public func dim(_ text: String) -> String { wrap(text, "2") }

    private func wrap(_ text: String, _ code: String) -> String {
        enabled ? "\u{1b}[\(code)m\(text)\u{1b}[0m" : text
    }
}

/// Stable JSON for every report: sorted keys, pretty-printed, no escaped slashes.
public enum ReportJSON {
    public static func encode<T: Encodable>(_ value: T) -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        guard let data = try? encoder.encode(value) else { return "{}" }
        return compactEmptyArrays(String(decoding: data, as: UTF8.self))
    }

    /// The encoder prints an empty array over three lines; `[]` reads better and is the same JSON.
    static func compactEmptyArrays(_ text: String) -> String {
        var output = ""
        var pending: String?
        for character in text {
            if var open = pending {
                if character == "]" {
                    output += "[]"
                    pending = nil
                } else if character.isWhitespace {
                    open.append(character)
                    pending = open
                } else {
                    output += open
                    output.append(character)
                    pending = nil
                }
            } else if character == "[" {
                pending = "["
            } else {
                output.append(character)
            }
        }
        return output + (pending ?? "")
    }
}
