import IPAddressing

// Attributes, NetlinkMessage and the byte readers come from NetlinkCore; these read the
// address types only rtnetlink replies carry.
extension Attributes {
    func ip(_ type: UInt16) -> IPAddress? { self[type].flatMap { IPAddress(bytes: $0) } }
    func mac(_ type: UInt16) -> MACAddress? { self[type].flatMap { MACAddress(bytes: $0) } }
}
