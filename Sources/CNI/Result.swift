import IPAddressing

/// The ADD result in the 1.1.0 model. Every older form is converted into this on input and out of it
/// on output (see `Result+Versions.swift`), so plugins only ever handle one shape.
public struct CNIResult: Sendable, Equatable {
    /// The version the result was read in, or the one it will be printed in.
    public var cniVersion: String
    /// Every interface the attachment created, host-side ones included.
    public var interfaces: [Interface]
    public var ips: [IPConfig]
    public var routes: [Route]
    public var dns: DNS

    public init(
        cniVersion: String = CNIVersion.current, interfaces: [Interface] = [], ips: [IPConfig] = [],
        routes: [Route] = [], dns: DNS = DNS()
    ) {
        self.cniVersion = cniVersion
        self.interfaces = interfaces
        self.ips = ips
        self.routes = routes
        self.dns = dns
    }

    public struct Interface: Sendable, Equatable {
        public var name: String
        /// Kept as text: InfiniBand and other links have hardware addresses that are not 48-bit MACs.
        public var mac: String?
        public var mtu: Int?
        /// The netns path for a container-side interface; nil for a host-side one.
        public var sandbox: String?
        public var socketPath: String?
        public var pciID: String?

        public init(
            name: String, mac: String? = nil, mtu: Int? = nil, sandbox: String? = nil, socketPath: String? = nil,
            pciID: String? = nil
        ) {
            self.name = name
            self.mac = mac
            self.mtu = mtu
            self.sandbox = sandbox
            self.socketPath = socketPath
            self.pciID = pciID
        }
    }

    public struct IPConfig: Sendable, Equatable {
        /// The interface address with its prefix length; host bits are kept.
        public var address: IPPrefix
        public var gateway: IPAddress?
        /// Index into `interfaces`; nil in abbreviated (IPAM) results.
        public var interface: Int?

        public init(address: IPPrefix, gateway: IPAddress? = nil, interface: Int? = nil) {
            self.address = address
            self.gateway = gateway
            self.interface = interface
        }

        public var family: IPFamily { address.family }
    }

    public struct Route: Sendable, Equatable {
        public var dst: IPPrefix
        /// When nil, consumers use the gateway of the same-family `ips` entry.
        public var gw: IPAddress?
        public var mtu: Int?
        public var advmss: Int?
        public var priority: Int?
        /// Zero is meaningful for table and scope, so only nil means absent.
        public var table: Int?
        /// 0 universe, 253 link, 254 host.
        public var scope: Int?

        public init(
            dst: IPPrefix, gw: IPAddress? = nil, mtu: Int? = nil, advmss: Int? = nil, priority: Int? = nil,
            table: Int? = nil, scope: Int? = nil
        ) {
            self.dst = dst
            self.gw = gw
            self.mtu = mtu
            self.advmss = advmss
            self.priority = priority
            self.table = table
            self.scope = scope
        }
    }

    /// The result's DNS block (not the `dns` capability, which uses other key names).
    public struct DNS: Sendable, Equatable {
        public var nameservers: [String]
        public var domain: String
        public var search: [String]
        public var options: [String]

        public init(nameservers: [String] = [], domain: String = "", search: [String] = [], options: [String] = []) {
            self.nameservers = nameservers
            self.domain = domain
            self.search = search
            self.options = options
        }

        public var isEmpty: Bool { nameservers.isEmpty && domain.isEmpty && search.isEmpty && options.isEmpty }
    }
}
