extension PierElement {
    /// The key as `nft` writes it, so a fix can be pasted: names quoted, parts joined by " . ".
    public var nftKey: String {
        key.map { part in
            part.first.map { $0.isLetter } == true && !part.contains(":") && !["tcp", "udp", "sctp"].contains(part)
                ? "\"\(part)\"" : part
        }.joined(separator: " . ")
    }
}
