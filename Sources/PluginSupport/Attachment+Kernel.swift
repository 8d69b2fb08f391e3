import CNI

// The names and tags of the kernel objects and nftables elements one attachment owns, all
// derived from its identity so DEL and GC find them with no cached result.
extension Attachment {
    /// The host end of the container's veth: `veth` + 8 hex digits of a hash of the attachment.
    /// The `veth` prefix keeps NetworkManager's hands off it, as with the reference plugins.
    public var hostVethName: String {
        "veth" + hex32(stableHash(containerID + "/" + ifName))
    }

    /// Written to the host veth's alias (IFLA_IFALIAS) so GC can tell whose it is.
    public var linkAlias: String { "pier:\(network):\(containerID):\(ifName)" }

    /// Reads back an alias written by `linkAlias`; nil for links Pier did not create.
    public static func fromLinkAlias(_ alias: String) -> Attachment? {
        let parts = alias.split(separator: ":", maxSplits: 3, omittingEmptySubsequences: false)
        guard parts.count == 4, parts[0] == "pier" else { return nil }
        return Attachment(network: String(parts[1]), containerID: String(parts[2]), ifName: String(parts[3]))
    }

    /// The owner tag on nftables elements (element comments hold at most 128 bytes).
    public var ownerTag: String {
        let tag = "\(networkTag) \(containerID)/\(ifName)"
        return tag.utf8.count <= 128 ? tag : "\(networkTag) #\(hex32(stableHash(containerID + "/" + ifName)))"
    }

    /// The network part of every owner tag, shared by per-network elements too.
    public var networkTag: String { Attachment.networkTag(network) }

    public static func networkTag(_ network: String) -> String {
        let tag = "net=\(network)"
        return tag.utf8.count <= 64 ? tag : "net=#\(hex32(stableHash(network)))"
    }
}

/// FNV-1a, 64 bit: stable across processes and releases (Swift's Hasher is seeded per process),
/// cheap, and good enough to spread names; collisions are detected through the link alias.
public func stableHash(_ text: String) -> UInt64 {
    var hash: UInt64 = 0xcbf2_9ce4_8422_2325
    for byte in text.utf8 {
        hash ^= UInt64(byte)
        hash = hash &* 0x0000_0100_0000_01b3
    }
    return hash
}

/// The low 32 bits as 8 lowercase hex digits.
public func hex32(_ value: UInt64) -> String {
    let text = String(UInt32(truncatingIfNeeded: value ^ (value >> 32)), radix: 16)
    return String(repeating: "0", count: 8 - text.count) + text
}
