/// One line of the sysctl allowlist: a regular expression in the RE2 syntax the reference plugin
/// matches with (Go's regexp), reduced to what allowlists use: literals and escapes, `.`,
/// classes (`[a-z_]`, `[^.]`, `\d \w \s`), `^ $ \A \z`, groups, `|`, and `* + ? {m} {m,} {m,n}`.
/// Anything else (flags, backreferences, POSIX classes) is refused as invalid, never guessed.
/// A small matcher of its own instead of the standard library's Regex: that drags the whole
/// regex parser into every plugin process (docs/design.md, "Peak RSS").
struct SysctlPattern {
    struct Invalid: Error, CustomStringConvertible {
        let description: String
    }

    indirect enum Node {
        case character((Character) -> Bool)
        case textStart
        case textEnd
        case sequence([Node])
        case alternation([Node])
        case repetition(Node, min: Int, max: Int?)
    }

    let root: Node

    init(_ pattern: String) throws(Invalid) {
        var parser = Parser(characters: Array(pattern))
        root = try parser.alternation()
        if parser.position < parser.characters.count {
            throw Invalid(description: "unmatched ')' at offset \(parser.position)")
        }
    }

    /// True when the pattern matches anywhere in `text` (Go's MatchString).
    func matches(_ text: String) -> Bool {
        let characters = Array(text)
        return characters.indices.contains { Self.match(root, characters, $0) { _ in true } }
            || Self.match(root, characters, characters.count) { _ in true }
    }

    /// Backtracking: does `node` match at `position`, with `rest` accepting where it ends?
    private static func match(
        _ node: Node, _ text: [Character], _ position: Int, _ rest: (Int) -> Bool
    ) -> Bool {
        switch node {
        case .character(let accepts):
            return position < text.count && accepts(text[position]) && rest(position + 1)
        case .textStart:
            return position == 0 && rest(position)
        case .textEnd:
            return position == text.count && rest(position)
        case .sequence(let nodes):
            return matchSequence(nodes[...], text, position, rest)
        case .alternation(let branches):
            return branches.contains { match($0, text, position, rest) }
        case .repetition(let inner, let min, let max):
            func repeated(_ count: Int, _ position: Int) -> Bool {
                // Greedy; an empty match counts only towards the minimum, so loops end.
                if max.map({ count < $0 }) ?? true,
                    match(inner, text, position, { end in (end > position || count < min) && repeated(count + 1, end) })
                {
                    return true
                }
                return count >= min && rest(position)
            }
            return repeated(0, position)
        }
    }

    private static func matchSequence(
        _ nodes: ArraySlice<Node>, _ text: [Character], _ position: Int, _ rest: (Int) -> Bool
    ) -> Bool {
        guard let first = nodes.first else { return rest(position) }
        return match(first, text, position) { matchSequence(nodes.dropFirst(), text, $0, rest) }
    }

    private struct Parser {
        let characters: [Character]
        var position = 0

        var next: Character? { position < characters.count ? characters[position] : nil }

        mutating func take() throws(Invalid) -> Character {
            guard let character = next else { throw Invalid(description: "unexpected end of pattern") }
            position += 1
            return character
        }

        mutating func alternation() throws(Invalid) -> Node {
            var branches = [try sequence()]
            while next == "|" {
                position += 1
                branches.append(try sequence())
            }
            return branches.count == 1 ? branches[0] : .alternation(branches)
        }

        mutating func sequence() throws(Invalid) -> Node {
            var nodes: [Node] = []
            while let character = next, character != "|", character != ")" {
                var node = try atom()
                while let bounds = try quantifier() {
                    node = .repetition(node, min: bounds.min, max: bounds.max)
                }
                nodes.append(node)
            }
            return .sequence(nodes)
        }

        mutating func atom() throws(Invalid) -> Node {
            let offset = position
            switch try take() {
            case "(":
                if next == "?" {
                    guard characters[position...].starts(with: ["?", ":"]) else {
                        throw Invalid(description: "unsupported group syntax at offset \(offset)")
                    }
                    position += 2
                }
                let inner = try alternation()
                guard next == ")" else { throw Invalid(description: "missing ')' for the '(' at offset \(offset)") }
                position += 1
                return inner
            case "[": return .character(try characterClass())
            case ".": return .character { $0 != "\n" }
            case "^": return .textStart
            case "$": return .textEnd
            case "\\":
                switch next {
                case "A":
                    position += 1
                    return .textStart
                case "z":
                    position += 1
                    return .textEnd
                default: return .character(try escape())
                }
            case "*", "+", "?", "{": throw Invalid(description: "nothing to repeat at offset \(offset)")
            case let literal: return .character { $0 == literal }
            }
        }

        /// `* + ? {m} {m,} {m,n}`, each optionally followed by `?` (lazy: the same for a yes/no match).
        mutating func quantifier() throws(Invalid) -> (min: Int, max: Int?)? {
            let bounds: (min: Int, max: Int?)
            switch next {
            case "*": bounds = (0, nil)
            case "+": bounds = (1, nil)
            case "?": bounds = (0, 1)
            case "{":
                position += 1
                let min = try number()
                var max: Int? = min
                if next == "," {
                    position += 1
                    max = next == "}" ? nil : try number()
                }
                guard next == "}", max.map({ $0 >= min }) ?? true else {
                    throw Invalid(description: "invalid repetition at offset \(position)")
                }
                bounds = (min, max)
            default: return nil
            }
            position += 1
            if next == "?" { position += 1 }
            return bounds
        }

        mutating func number() throws(Invalid) -> Int {
            var value = 0
            var digits = 0
            while let digit = next?.wholeNumberValue, next?.isASCII == true, digits < 4 {
                value = value * 10 + digit
                digits += 1
                position += 1
            }
            guard digits > 0, value <= 1000 else {
                throw Invalid(description: "invalid repetition at offset \(position)")
            }
            return value
        }

        /// After a backslash: a class (`\d \w \s`, negated in capitals) or a quoted punctuation
        /// character; letters with other meanings in RE2 are refused.
        mutating func escape() throws(Invalid) -> (Character) -> Bool {
            let offset = position
            let character = try take()
            switch character {
            case "d": return { $0.isASCII && $0.isNumber }
            case "D": return { !($0.isASCII && $0.isNumber) }
            case "w": return Self.isWord
            case "W": return { !Self.isWord($0) }
            case "s": return Self.isSpace
            case "S": return { !Self.isSpace($0) }
            case "n": return { $0 == "\n" }
            case "t": return { $0 == "\t" }
            case "r": return { $0 == "\r" }
            case _ where character.isASCII && !character.isLetter && !character.isNumber:
                return { $0 == character }
            default: throw Invalid(description: "unsupported escape \\\(character) at offset \(offset - 1)")
            }
        }

        /// After `[`: members up to the closing `]` (a `]` first is a member), `^` negating.
        mutating func characterClass() throws(Invalid) -> (Character) -> Bool {
            let negated = next == "^"
            if negated { position += 1 }
            var members: [(Character) -> Bool] = []
            var first = true
            while true {
                let character = try take()
                if character == "]" && !first { break }
                first = false
                if character == "[" && next == ":" {
                    throw Invalid(description: "unsupported POSIX class at offset \(position - 1)")
                }
                if character == "\\" {
                    members.append(try escape())
                    continue
                }
                if next == "-", position + 1 < characters.count, characters[position + 1] != "]" {
                    position += 1
                    var upper = try take()
                    if upper == "\\" {
                        upper = try take()
                    }
                    guard character <= upper else {
                        throw Invalid(description: "invalid class range \(character)-\(upper)")
                    }
                    members.append { (character...upper).contains($0) }
                } else {
                    members.append { $0 == character }
                }
            }
            return { candidate in members.contains { $0(candidate) } != negated }
        }

        static func isWord(_ character: Character) -> Bool {
            character == "_" || (character.isASCII && (character.isLetter || character.isNumber))
        }

        static func isSpace(_ character: Character) -> Bool {
            [" ", "\t", "\n", "\r", "\u{0C}", "\u{0B}"].contains(character)
        }
    }
}
