import IPAddressing

/// What ADD returns, before the CNI layer shapes it into a Result of the requested version.
public struct IPAMResult: Sendable, Hashable {
    public struct IP: Sendable, Hashable {
        /// The address with its subnet's prefix length (host bits kept).
        public let address: IPPrefix
        public let gateway: IPAddress?

        public init(address: IPPrefix, gateway: IPAddress?) {
            self.address = address
            self.gateway = gateway
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
