import CMnl
import CNftnl
import NetlinkCore

// Small adapters between Swift and libnftnl's C API.

/// nft's name for anonymous sets; the kernel replaces %d with a number.
let anonymousSetName = "__set%d"

/// Owns a libnftnl object for the duration of a build.
final class NFTObject {
    let pointer: OpaquePointer
    private let free: (OpaquePointer) -> Void

    init(_ pointer: OpaquePointer?, free: @escaping (OpaquePointer) -> Void) {
        // libnftnl allocation fails only when malloc does; there is nothing sensible to do then.
        guard let pointer else { fatalError("libnftnl: out of memory") }
        self.pointer = pointer
        self.free = free
    }

    deinit { free(pointer) }
}

/// The bytes of a message libnftnl has built in place.
func bytesOf(_ header: UnsafeMutablePointer<nlmsghdr>) -> [UInt8] {
    Array(UnsafeRawBufferPointer(start: header, count: Int(header.pointee.nlmsg_len)))
}

/// Hands a received message to a libnftnl parser (which wants a `struct nlmsghdr *`).
func parse(_ message: NetlinkMessage, with parser: (UnsafePointer<nlmsghdr>) -> Int32) -> Bool {
    message.withUnsafeMessage { parser($0) >= 0 } ?? false
}

/// libnftnl attribute ids arrive as Int (anonymous enums) or as enum structs.
func a(_ attribute: Int) -> UInt16 { UInt16(attribute) }
func a<T: RawRepresentable>(_ attribute: T) -> UInt16 where T.RawValue: BinaryInteger { UInt16(attribute.rawValue) }

func string(_ pointer: UnsafePointer<CChar>?) -> String { pointer.map { String(cString: $0) } ?? "" }
