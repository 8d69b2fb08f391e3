/// The one rule for Linux interface names, shared by CNI validation (libcni's
/// `ValidateInterfaceName`), IPAM lease owners, plugin configs and the netlink layer (the
/// kernel's `dev_valid_name`): 1–15 bytes (IFNAMSIZ is 16 with the terminator), not `.` or
/// `..`, and no `/`, `:`, NUL or whitespace.
public enum InterfaceName {
    public static let maxLength = 15

    /// Why a name is refused, so each layer can word its own error.
    public enum Problem: Sendable, Equatable {
        case empty
        case tooLong
        case dotName
        /// `/`, `:`, NUL or whitespace (see `isWhitespace`).
        case forbiddenCharacter
    }

    public static func problem(_ name: String) -> Problem? {
        let bytes = name.utf8
        if bytes.isEmpty { return .empty }
        if bytes.count > maxLength { return .tooLong }
        if name == "." || name == ".." { return .dotName }
        if bytes.contains(where: { $0 == UInt8(ascii: "/") || $0 == UInt8(ascii: ":") || $0 == 0 })
            || name.unicodeScalars.contains(where: isWhitespace) || bytes.contains(kernelLatin1Space)
        {
            return .forbiddenCharacter
        }
        return nil
    }

    public static func isValid(_ name: String) -> Bool { problem(name) == nil }

    /// Whitespace, defined once: libcni uses Go's `unicode.IsSpace` (the Unicode White_Space
    /// property, which covers every ASCII space the kernel's `isspace` knows).
    public static func isWhitespace(_ scalar: Unicode.Scalar) -> Bool { scalar.properties.isWhitespace }

    /// The kernel's `isspace` is Latin-1 and byte-wise: it also refuses byte 0xA0, which occurs
    /// inside some UTF-8 characters (`à` is C3 A0). Refused here too, so no name passes
    /// validation only to be rejected by the kernel.
    static let kernelLatin1Space: UInt8 = 0xA0
}
