import CPierShim

#if canImport(Glibc)
    import Glibc
#endif

/// The uapi headers arrive as a mix of `Int` constants (anonymous enums), `Int32` macros and
/// imported enum structs; these convert them once so call sites read like the C they mirror.
@inline(__always) func attr<T: BinaryInteger>(_ value: T) -> UInt16 { UInt16(truncatingIfNeeded: value) }

enum UAPI {
    static let rtmNewLink = UInt16(RTM_NEWLINK)
    static let rtmDelLink = UInt16(RTM_DELLINK)
    static let rtmGetLink = UInt16(RTM_GETLINK)
    static let rtmSetLink = UInt16(RTM_SETLINK)
    static let rtmNewAddr = UInt16(RTM_NEWADDR)
    static let rtmDelAddr = UInt16(RTM_DELADDR)
    static let rtmGetAddr = UInt16(RTM_GETADDR)
    static let rtmNewRoute = UInt16(RTM_NEWROUTE)
    static let rtmDelRoute = UInt16(RTM_DELROUTE)
    static let rtmGetRoute = UInt16(RTM_GETROUTE)
    static let rtmNewNeigh = UInt16(RTM_NEWNEIGH)
    static let rtmDelNeigh = UInt16(RTM_DELNEIGH)
    static let rtmGetNeigh = UInt16(RTM_GETNEIGH)

    static let create = NLM_F_CREATE | NLM_F_EXCL
    static let replace = NLM_F_CREATE | NLM_F_REPLACE
    static let append = NLM_F_CREATE | NLM_F_APPEND

    static let afUnspec = UInt8(AF_UNSPEC)
    static let afBridge = UInt8(AF_BRIDGE)
    static let afInet = UInt8(AF_INET)
    static let afInet6 = UInt8(AF_INET6)

    static let iffUp = UInt32(IFF_UP)
    static let iffPromisc = UInt32(IFF_PROMISC)
    static let iffLowerUp: UInt32 = 0x1_0000
}
