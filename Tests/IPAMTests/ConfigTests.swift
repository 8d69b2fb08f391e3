import CNI
import ClusterStore
import IPAddressing
import Testing

@testable import IPAM

@Suite struct ConfigTests {
    @Test func defaultsFollowHostLocal() throws {
        let cfg = try config(#""ranges":[[{"subnet":"10.1.0.0/24"}],[{"subnet":"fd00:1::/64"}]]"#)
        #expect(cfg.rangeSets.count == 2)
        let v4 = cfg.rangeSets[0].ranges[0]
        #expect(v4.start == ip("10.1.0.1"))
        #expect(v4.end == ip("10.1.0.254"))
        #expect(v4.gateway == ip("10.1.0.1"))
        let v6 = cfg.rangeSets[1].ranges[0]
        #expect(v6.start == ip("fd00:1::1"))
        #expect(v6.end == ip("fd00:1::ffff:ffff:ffff:ffff"))
        #expect(v6.gateway == ip("fd00:1::1"))
        #expect(cfg.mode == .ranges(dataDir: "/var/lib/cni/networks"))
        #expect(cfg.networkName == "testnet")
    }

    @Test func explicitRangeAndLegacyKeysArePrepended() throws {
        let cfg = try config(
            #""subnet":"10.2.0.0/16","rangeStart":"10.2.1.10","rangeEnd":"10.2.1.20","gateway":"10.2.0.254","#
                + #""ranges":[[{"subnet":"10.3.0.0/24"}]],"dataDir":"/tmp/x""#)
        #expect(cfg.rangeSets.count == 2)
        let legacy = cfg.rangeSets[0].ranges[0]
        #expect(legacy.subnet.description == "10.2.0.0/16")
        #expect(legacy.start == ip("10.2.1.10"))
        #expect(legacy.end == ip("10.2.1.20"))
        #expect(legacy.gateway == ip("10.2.0.254"))
        #expect(cfg.rangeSets[1].ranges[0].subnet.description == "10.3.0.0/24")
        #expect(cfg.mode == .ranges(dataDir: "/tmp/x"))
    }

    @Test func runtimeIPRangesComeFirst() throws {
        let cfg = try config(
            #""ranges":[[{"subnet":"10.3.0.0/24"}]]"#,
            extra: #","runtimeConfig":{"ipRanges":[[{"subnet":"10.4.0.0/24"}]],"ips":null}"#)
        #expect(cfg.rangeSets.map(\.description) == ["10.4.0.1-10.4.0.254", "10.3.0.1-10.3.0.254"])
    }

    @Test func routesDNSAndResolvConf() throws {
        let dir = try TemporaryDirectory()
        try dir.write(
            "resolv.conf",
            "# comment\nnameserver 10.0.0.53\nnameserver fd00::53\ndomain example.com\nsearch a.example b.example\noptions ndots:5 edns0\nsortlist 1.2.3.4\n"
        )
        let cfg = try config(
            #""ranges":[[{"subnet":"10.1.0.0/24"}]],"routes":[{"dst":"0.0.0.0/0"},{"dst":"192.168.0.0/16","gw":"10.1.0.9"}],"resolvConf":"\#(dir.path)/resolv.conf""#
        )
        #expect(cfg.routes.count == 2)
        #expect(cfg.routes[0].gateway == nil)
        #expect(cfg.routes[1].gateway == ip("10.1.0.9"))
        #expect(cfg.dns.nameservers == ["10.0.0.53", "fd00::53"])
        #expect(cfg.dns.domain == "example.com")
        #expect(cfg.dns.search == ["a.example", "b.example"])
        #expect(cfg.dns.options == ["ndots:5", "edns0"])
    }

    @Test func requestedAddressesMergedFromEverySource() throws {
        let cfg = try config(
            #""ranges":[[{"subnet":"10.1.0.0/24"}],[{"subnet":"fd00::/64"}]]"#,
            extra: #","runtimeConfig":{"ips":["10.1.0.7/24"]},"args":{"cni":{"ips":["fd00::7","10.1.0.7"]}}"#,
            environmentIPs: ["10.1.0.8"])
        #expect(cfg.requestedAddresses == [ip("10.1.0.7"), ip("fd00::7"), ip("10.1.0.8")])
    }

    @Test func unknownArgsShapesAreIgnored() throws {
        let cfg = try config(
            #""ranges":[[{"subnet":"10.1.0.0/24"}]]"#,
            extra:
                #","args":{"cni":{"labels":[{"key":"a","value":"b"}],"ips":"not-a-list"},"other":1},"capabilities":{"ips":true}"#
        )
        #expect(cfg.requestedAddresses.isEmpty)
        #expect(try config(#""ranges":[[{"subnet":"10.1.0.0/24"}]]"#, extra: #","args":"text""#).rangeSets.count == 1)
    }

    @Test func staticAddresses() throws {
        let cfg = try config(
            #""type":"static","addresses":[{"address":"10.9.0.5/24","gateway":"10.9.0.1"},{"address":"fd09::5/64"}],"routes":[{"dst":"0.0.0.0/0"}],"dns":{"nameservers":["1.1.1.1"]}"#
        )
        guard case .fixed(let addresses) = cfg.mode else {
            Issue.record("want static mode")
            return
        }
        #expect(addresses.map(\.address.description) == ["10.9.0.5/24", "fd09::5/64"])
        #expect(addresses[0].gateway == ip("10.9.0.1"))
        #expect(cfg.dns.nameservers == ["1.1.1.1"])
    }

    @Test func staticRuntimeIPsReplaceAddressesAndGatewayFromArgs() throws {
        let json = netconf(
            ipam: #""addresses":[{"address":"10.9.0.5/24"}]"#,
            extra: #","runtimeConfig":{"ips":["10.8.0.5/24"]}"#)
        let cfg = try IPAMSettings(json: json, environmentGateways: ["10.8.0.1"])
        #expect(
            cfg.mode == .fixed([StaticAddress(address: try #require(IPPrefix("10.8.0.5/24")), gateway: ip("10.8.0.1"))])
        )
    }

    @Test func clusterStoreSetting() throws {
        let cfg = try config(
            #""ranges":[[{"subnet":"10.1.0.0/24"}]],"store":{"type":"file","path":"/tmp/s","host":"h1"}"#)
        #expect(cfg.mode == .cluster(.init(type: .file, path: "/tmp/s", host: "h1")))
    }

    // MARK: Bad input: every case names what is wrong.

    @Test(arguments: [
        (#""ranges":[[{"subnet":"10.1.0.0/33"}]]"#, "invalid subnet"),
        (#""ranges":[[{"subnet":"banana"}]]"#, "invalid subnet"),
        (#""ranges":[[{"rangeStart":"10.1.0.2"}]]"#, "has no subnet"),
        (#""ranges":[[{"subnet":"10.1.0.5/24"}]]"#, "host bits set"),
        (#""ranges":[[{"subnet":"10.1.0.0/31"}]]"#, "too small"),
        (#""ranges":[[{"subnet":"10.1.0.0/32"}]]"#, "too small"),
        (#""ranges":[[{"subnet":"fd00::/127"}]]"#, "too small"),
        (#""ranges":[[{"subnet":"10.1.0.0/24","rangeStart":"10.2.0.1"}]]"#, "rangeStart 10.2.0.1 is outside subnet"),
        (#""ranges":[[{"subnet":"10.1.0.0/24","rangeEnd":"10.2.0.1"}]]"#, "rangeEnd 10.2.0.1 is outside subnet"),
        (
            #""ranges":[[{"subnet":"10.1.0.0/24","rangeStart":"10.1.0.50","rangeEnd":"10.1.0.40"}]]"#,
            "is after rangeEnd"
        ),
        (#""ranges":[[{"subnet":"10.1.0.0/24","rangeStart":"nope"}]]"#, "invalid rangeStart"),
        (#""ranges":[[{"subnet":"10.1.0.0/24","rangeStart":"10.1.0.0"}]]"#, "network address"),
        (#""ranges":[[{"subnet":"10.1.0.0/24","rangeEnd":"10.1.0.255"}]]"#, "broadcast address"),
        (#""ranges":[[{"subnet":"10.1.0.0/24","gateway":"10.9.9.9"}]]"#, "gateway 10.9.9.9 is outside subnet"),
        (#""ranges":[[{"subnet":"10.1.0.0/24","gateway":"fd00::1"}]]"#, "gateway fd00::1 is outside subnet"),
        (#""ranges":[[{"subnet":"10.1.0.0/24"},{"subnet":"fd00::/64"}]]"#, "mixes address families"),
        (#""ranges":[[{"subnet":"10.1.0.0/24"},{"subnet":"10.1.0.0/25"}]]"#, "overlap in one range set"),
        (
            #""ranges":[[{"subnet":"10.1.0.0/24"}],[{"subnet":"10.1.0.128/25"}]]"#,
            "range set 1 (10.1.0.129-10.1.0.254) overlaps range set 0"
        ),
        (#""subnet":"10.1.0.0/24","ranges":[[{"subnet":"10.1.0.0/16"}]]"#, "overlaps range set 0"),
        (#""ranges":[[]]"#, "empty range set"),
        (#""ranges":[]"#, "no IP ranges"),
        (#""dataDir":"/tmp""#, "no IP ranges"),
        (#""rangeStart":"10.1.0.2""#, "without subnet"),
        (#""ranges":[[{"subnet":"10.1.0.0/24"}]],"dataDir":"relative/dir""#, "must be an absolute path"),
        (#""ranges":[[{"subnet":"10.1.0.0/24"}]],"routes":[{"dst":"nope"}]"#, "invalid route dst"),
        (#""ranges":[[{"subnet":"10.1.0.0/24"}]],"routes":[{"dst":"0.0.0.0/0","gw":"fd00::1"}]"#, "invalid route gw"),
        (#""ranges":[[{"subnet":"10.1.0.0/24"}]],"addresses":[{"address":"10.1.0.2/24"}]"#, "both static"),
        (#""addresses":[{"address":"10.1.0.2"}]"#, "invalid static address"),
        (#""addresses":[]"#, "no addresses"),
        (#""ranges":[[{"subnet":"10.1.0.0/24"}]],"resolvConf":"/nonexistent/resolv.conf""#, "resolvConf"),
        (#""ranges":[[{"subnet":"10.1.0.0/24"}]],"store":{"type":"consul"}"#, "invalid ipam config"),
    ])
    func rejectsBadConfig(ipam: String, expected: String) {
        let error = configError(ipam)
        #expect(error != nil, "accepted: \(ipam)")
        #expect(error?.description.contains(expected) == true, "\(error?.description ?? "nil") lacks \(expected)")
        #expect(error?.cniCode == 7 || error?.cniCode == 6)
    }

    @Test func malformedJSONIsDecodeError() {
        #expect(throws: IPAMError.self) { try IPAMSettings(json: Array("{not json".utf8)) }
        do {
            _ = try IPAMSettings(json: Array("{not json".utf8))
        } catch {
            #expect(error.cniCode == 6)
        }
    }

    @Test func wrongJSONTypeNamesThePath() {
        let error = configError(#""ranges":[[{"subnet":42}]]"#)
        #expect(error?.kind == .invalidConfig)
        #expect(error?.description.contains("subnet") == true)
    }

    @Test(arguments: ["", "../../etc", "a/b", ".hidden", "-x", "sp ace"])
    func rejectsBadNetworkNames(name: String) {
        do {
            _ = try config(#""ranges":[[{"subnet":"10.1.0.0/24"}]]"#, name: name)
            Issue.record("accepted network name \(name)")
        } catch {
            #expect(error.kind == .invalidConfig)
            #expect(error.cniCode == 7)
        }
    }

    @Test func missingIPAMSection() {
        #expect(throws: IPAMError.self) { try IPAMSettings(json: Array(#"{"cniVersion":"1.0.0","name":"n"}"#.utf8)) }
    }

    @Test func oldVersionsAllowOneAddressPerFamily() {
        let twoV4 = #""ranges":[[{"subnet":"10.1.0.0/24"}],[{"subnet":"10.2.0.0/24"}]]"#
        #expect(configError(twoV4, version: "0.2.0")?.description.contains("0.3.0 or later") == true)
        #expect(configError(twoV4, version: "0.3.1") == nil)
        #expect(
            configError(#""ranges":[[{"subnet":"10.1.0.0/24"}],[{"subnet":"fd00::/64"}]]"#, version: "0.2.0") == nil)
    }

    @Test func rangesWithDisjointPoolsInOneSubnetAreAllowed() throws {
        let cfg = try config(
            #""ranges":[[{"subnet":"10.1.0.0/24","rangeStart":"10.1.0.10","rangeEnd":"10.1.0.19"},{"subnet":"10.1.0.0/24","rangeStart":"10.1.0.20","rangeEnd":"10.1.0.29"}]]"#
        )
        #expect(cfg.rangeSets[0].description == "10.1.0.10-10.1.0.19,10.1.0.20-10.1.0.29")
    }

    @Test(arguments: [
        // libcni's wording: the lease owner is checked by the same rules as CNI_CONTAINERID.
        ("", "missing containerID"), ("../../etc", "invalid characters in containerID"),
        ("a/b", "invalid characters in containerID"), ("..", "invalid characters in containerID"),
        (".x", "invalid characters in containerID"),
    ])
    func rejectsBadContainerIDs(id: String, expected: String) {
        #expect(throws: IPAMError.self) { try attachment(id).validate() }
        do {
            try attachment(id).validate()
        } catch {
            #expect(error.description.contains(expected))
            #expect(error.cniCode == 4)
        }
    }

    @Test(arguments: ["", ".", "..", "a/b", "eth:0", "eth 0", "a\r\nb", "0123456789abcdef"])
    func rejectsBadInterfaceNames(name: String) {
        #expect(throws: IPAMError.self) { try attachment("c1", name).validate() }
    }

    @Test func acceptsGoodIdentifiers() throws {
        try attachment("0a1b2c3d_x.y-z", "eth0").validate()
        try attachment("A", "123456789012345").validate()
    }

    // MARK: JSON shapes: wrong types name the key (7), null is absent, unknown keys are ignored.

    @Test(arguments: [
        (#""ranges":[[{"subnet":42}]]"#, #"key "ipam.ranges[0][0].subnet": expected string, got number"#),
        (#""ranges":[{"subnet":"10.1.0.0/24"}]"#, #"key "ipam.ranges[0]": expected array, got object"#),
        (#""ranges":[[null]]"#, #"key "ipam.ranges[0][0]": expected object, got null"#),
        (#""ranges":"10.1.0.0/24""#, #"key "ipam.ranges": expected array, got string"#),
        (#""subnet":["10.1.0.0/24"]"#, #"key "ipam.subnet": expected string, got array"#),
        (#""subnet":"10.1.0.0/24","routes":[{"dst":1}]"#, #"key "ipam.routes[0].dst": expected string, got number"#),
        (#""subnet":"10.1.0.0/24","routes":{}"#, #"key "ipam.routes": expected array, got object"#),
        (#""subnet":"10.1.0.0/24","dataDir":false"#, #"key "ipam.dataDir": expected string, got boolean"#),
        (#""subnet":"10.1.0.0/24","dns":{"nameservers":"10.0.0.53"}"#, #"key "ipam.dns.nameservers": expected array"#),
        (#""addresses":[{"address":["10.1.0.2/24"]}]"#, #"key "ipam.addresses[0].address": expected string"#),
        (#""subnet":"10.1.0.0/24","store":"file""#, #"key "ipam.store": expected object, got string"#),
        (#""subnet":"10.1.0.0/24","store":{}"#, #"key "ipam.store.type": missing"#),
        (#""subnet":"10.1.0.0/24","store":{"type":"consul"}"#, #"key "ipam.store.type": unknown store type "consul""#),
        (
            #""subnet":"10.1.0.0/24","store":{"type":"etcd","endpoints":"http://e:2379"}"#,
            #"key "ipam.store.endpoints""#
        ),
        (#""subnet":"10.1.0.0/24","store":{"type":"etcd","timeoutMilliseconds":"5s"}"#, #"expected integer"#),
    ])
    func wronglyTypedKeysAreNamed(ipam: String, expected: String) {
        let error = configError(ipam)
        #expect(error?.kind == .invalidConfig, "\(ipam)")
        #expect(error?.cniCode == 7)
        #expect(error?.message.hasPrefix("invalid ipam config: ") == true, "\(error?.description ?? "nil")")
        #expect(error?.description.contains(expected) == true, "\(error?.description ?? "nil") lacks \(expected)")
    }

    @Test(arguments: [
        (
            #""subnet":"10.1.0.0/24""#, #","runtimeConfig":{"ips":"10.1.0.7"}"#,
            #"key "runtimeConfig.ips": expected array"#
        ),
        (
            #""subnet":"10.1.0.0/24""#, #","runtimeConfig":{"ipRanges":[[{"subnet":1}]]}"#,
            "runtimeConfig.ipRanges[0][0].subnet"
        ),
        (#""subnet":"10.1.0.0/24""#, #","runtimeConfig":[]"#, #"key "runtimeConfig": expected object"#),
    ])
    func wronglyTypedRuntimeConfigIsNamed(ipam: String, extra: String, expected: String) {
        let error = configError(ipam, extra: extra)
        #expect(error?.cniCode == 7)
        #expect(error?.description.contains(expected) == true, "\(error?.description ?? "nil") lacks \(expected)")
    }

    @Test func nullIsAbsentAndUnknownKeysAreIgnored() throws {
        let cfg = try config(
            #""subnet":"10.1.0.0/24","rangeStart":null,"routes":null,"dns":null,"store":null,"future":{"x":[1,2]}"#,
            extra: #","runtimeConfig":{"ips":null,"other":5},"prevResult":{"ips":"odd"},"args":null"#)
        #expect(cfg.rangeSets.map(\.description) == ["10.1.0.1-10.1.0.254"])
        #expect(cfg.routes.isEmpty)
        #expect(cfg.mode == .ranges(dataDir: IPAMSettings.defaultDataDir))
        #expect(cfg.previousAddresses.isEmpty)
    }

    @Test func clusterStoreKeysAreRead() throws {
        let cfg = try config(
            #""subnet":"10.1.0.0/24","store":{"type":"etcd","endpoints":["http://10.0.0.1:2379","http://10.0.0.2:2379"],"#
                + #""prefix":"/pier","timeoutMilliseconds":500,"host":"node-a","unknown":1}"#)
        #expect(
            cfg.mode
                == .cluster(
                    .init(
                        type: .etcd, endpoints: ["http://10.0.0.1:2379", "http://10.0.0.2:2379"], prefix: "/pier",
                        timeoutMilliseconds: 500, host: "node-a")))
    }

    @Test func clusterStoreTLSKeysAreRead() throws {
        let cfg = try config(
            #""subnet":"10.1.0.0/24","store":{"type":"etcd","endpoints":["https://10.0.0.1:2379"],"#
                + #""trustedCAFile":"/etc/pier/ca.pem","certFile":"/etc/pier/c.pem","keyFile":"/etc/pier/k.pem","#
                + #""username":"pier","password":"pw"}"#)
        #expect(
            cfg.mode
                == .cluster(
                    .init(
                        type: .etcd, endpoints: ["https://10.0.0.1:2379"],
                        security: EtcdSecurity(
                            trustedCAFile: "/etc/pier/ca.pem", certFile: "/etc/pier/c.pem", keyFile: "/etc/pier/k.pem",
                            username: "pier", password: "pw"))))
        for key in ["trustedCAFile", "certFile", "keyFile", "username", "password"] {
            let error = configError(#""subnet":"10.1.0.0/24","store":{"type":"etcd","\#(key)":5}"#)
            #expect(error?.cniCode == 7)
            #expect(error?.description.contains(#"key "ipam.store.\#(key)": expected string"#) == true, "\(key)")
        }
    }

    @Test func nonObjectDocumentIsADecodeError() {
        for text in ["[1,2]", "\"x\"", "null", ""] {
            do {
                _ = try IPAMSettings(json: Array(text.utf8))
                Issue.record("accepted \(text)")
            } catch {
                #expect(error.cniCode == 6, "\(text)")
            }
        }
    }

    @Test func parsedConfigGivesTheSameSettingsAsItsBytes() throws {
        let bytes = netconf(ipam: #""ranges":[[{"subnet":"10.1.0.0/24"}]],"routes":[{"dst":"0.0.0.0/0"}]"#)
        let object = try #require(try JSONValue(parsing: bytes).objectValue)
        let fromBytes = try IPAMSettings(json: bytes)
        let fromObject = try IPAMSettings(config: object)
        #expect(fromBytes.rangeSets == fromObject.rangeSets)
        #expect(fromBytes.routes == fromObject.routes)
        #expect(fromBytes.mode == fromObject.mode)
    }
}
