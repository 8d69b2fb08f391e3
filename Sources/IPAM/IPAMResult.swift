import IPAddressing

/// What ADD returns, before the CNI layer shapes it into a Result of the requested version.
public struct IPAMResult: Sendable, Hashable {
    public struct IP: Sendable, Hashable {
        /// The address with its subnet's prefix length (host bits kept).
        public let address: IPPrefix
        public let gateway: IPAddress?
        /// Handed out for the first time in this store's life: no peer can have a neighbour
        /// entry for it, so the interface plugin need not announce it.
        public var isFirstUse: Bool

        public init(address: IPPrefix, gateway: IPAddress?, isFirstUse: Bool = false) {
            self.address = address
            self.gateway = gateway
            self.isFirstUse = isFirstUse
        }
    }

    public var ips: [IP]
    public var routes: [RouteSpec]
    public var dns: DNSSettings

    public init(ips: [IP], routes: [RouteSpec], dns: DNSSettings) {
        self.ips = ips
        self.routes = routes
        self.dns = dns
    }
}
