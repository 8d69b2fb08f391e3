/// One container interface holding addresses: the owner recorded in every lease.
public struct Attachment: Sendable, Hashable, CustomStringConvertible {
    public let containerID: String
    public let ifname: String

    /// Not validated, so GC can compare against whatever the runtime lists; call
    /// `validate()` before the values reach a path or a lease file.
    public init(containerID: String, ifname: String) {
        self.containerID = containerID
        self.ifname = ifname
    }

    public var description: String { "\(containerID)/\(ifname)" }

    /// Applies libcni's rules: an ID matching `^[a-zA-Z0-9][a-zA-Z0-9_.\-]*$`, and an
    /// ifname of 1–15 bytes that is not `.`/`..` and has no `/`, `:` or whitespace.
    public func validate() throws(IPAMError) {
        guard !containerID.isEmpty else { throw IPAMError(.invalidArgument, "container ID is empty") }
        guard Identifier.isValid(containerID) else {
            throw IPAMError(
                .invalidArgument,
                "invalid container ID \"\(containerID)\": want ^[a-zA-Z0-9][a-zA-Z0-9_.\\-]*$")
        }
        guard Identifier.isValidInterfaceName(ifname) else {
            throw IPAMError(
                .invalidArgument,
                "invalid interface name \"\(ifname)\": want 1-15 bytes, not . or .., without /, : or whitespace")
        }
    }
}

/// Name rules for anything that becomes part of a path or a lease record.
public enum Identifier {
    /// `^[a-zA-Z0-9][a-zA-Z0-9_.\-]*$` — container IDs and network names (libcni's rule).
    /// It rejects `/` and any name starting with `.`, so `..` can never appear.
    public static func isValid(_ text: String) -> Bool {
        guard let first = text.utf8.first, isAlphanumeric(first) else { return false }
        return text.utf8.allSatisfy {
            isAlphanumeric($0) || $0 == UInt8(ascii: "_") || $0 == UInt8(ascii: ".") || $0 == UInt8(ascii: "-")
        }
    }

    /// The kernel's and libcni's interface-name rule.
    public static func isValidInterfaceName(_ name: String) -> Bool {
        let bytes = Array(name.utf8)
        guard !bytes.isEmpty, bytes.count <= 15, name != ".", name != ".." else { return false }
        return !bytes.contains { byte in
            byte == UInt8(ascii: "/") || byte == UInt8(ascii: ":") || byte == 0 || byte == 0x7f
                || byte <= 0x20
        }
    }

    private static func isAlphanumeric(_ byte: UInt8) -> Bool {
        (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(byte) || (UInt8(ascii: "A")...UInt8(ascii: "Z")).contains(byte)
            || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte)
    }
}
