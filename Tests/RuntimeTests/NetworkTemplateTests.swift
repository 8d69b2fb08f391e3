import CNI
import IPAddressing
import Testing

@testable import Runtime

/// What `pier network create` writes and which subnet it picks, without root or a kernel.
struct NetworkTemplateTests {
    static func plugins(_ value: JSONValue) -> [JSONValue] { value["plugins"]?.arrayValue ?? [] }

    @Test func poolSkipsTakenSubnetsInDockerOrder() throws {
        #expect(SubnetPool.pickIPv4(avoiding: [])?.description == "172.17.0.0/16")
        let taken = ["172.17.0.0/16", "172.18.3.0/24", "10.0.0.0/8"].compactMap { IPPrefix($0) }
        #expect(SubnetPool.pickIPv4(avoiding: taken)?.description == "172.19.0.0/16")
        // A supernet of the Docker pools leaves the 192.168 /20 steps.
        let wide = ["172.16.0.0/12", "192.168.0.0/20"].compactMap { IPPrefix($0) }
        #expect(SubnetPool.pickIPv4(avoiding: wide)?.description == "192.168.16.0/20")
        #expect(SubnetPool.pickIPv4(avoiding: ["0.0.0.0/1", "128.0.0.0/1"].compactMap { IPPrefix($0) }) == nil)
    }

    @Test func ipv6IsAStableUniqueLocalSlash64() throws {
        let first = try #require(SubnetPool.pickIPv6(network: "blue", avoiding: []))
        #expect(first.length == 64 && first.address.bytes[0] == 0xfd)
        #expect(SubnetPool.pickIPv6(network: "blue", avoiding: []) == first)
        #expect(SubnetPool.pickIPv6(network: "green", avoiding: []) != first)
        let next = try #require(SubnetPool.pickIPv6(network: "blue", avoiding: [first]))
        #expect(next != first && !next.overlaps(first))
    }

    @Test func bridgeNetworkChainsPortmapAndNameServiceAndParsesAsCNI() throws {
        var spec = NetworkSpec(name: "blue")
        spec.subnets = [
            SubnetRequest(
                subnet: try #require(IPPrefix("10.1.0.0/16")), gateway: IPAddress("10.1.0.254"),
                ipRange: IPPrefix("10.1.2.0/24"))
        ]
        spec.options = [("com.docker.network.bridge.name", "br-blue"), ("mtu", "1400")]
        spec.labels = [("team", "a")]
        let value = try NetworkTemplates.conflist(spec, nameService: true)
        let list = try NetworkConfigList(bytes: value.encodedBytes)
        #expect(list.plugins.map(\.type) == ["bridge", "portmap", NetworkTemplates.nameServicePluginType])
        #expect(list.cniVersion == "1.1.0")
        let bridge = Self.plugins(value)[0]
        #expect(bridge["bridge"]?.stringValue == "br-blue" && bridge["mtu"]?.intValue == 1400)
        #expect(bridge["ipMasq"]?.boolValue == true && bridge["isDefaultGateway"]?.boolValue == true)
        let range = bridge["ipam"]?["ranges"]?.arrayValue?.first?.arrayValue?.first
        #expect(range?["gateway"]?.stringValue == "10.1.0.254")
        #expect(range?["rangeStart"]?.stringValue == "10.1.2.0" && range?["rangeEnd"]?.stringValue == "10.1.2.255")
        #expect(Self.plugins(value)[2]["capabilities"]?["aliases"]?.boolValue == true)
        #expect(NetworkTemplates.driver(of: list) == "bridge" && !NetworkTemplates.isInternal(list))
        #expect(value["pier"]?["labels"]?["team"]?.stringValue == "a")
        #expect(NetworkTemplates.subnets(of: list).map(\.description) == ["10.1.0.0/16"])
    }

    @Test func internalNetworkHasNoWayOut() throws {
        var spec = NetworkSpec(name: "vault")
        spec.isInternal = true
        spec.subnets = [SubnetRequest(subnet: try #require(IPPrefix("10.2.0.0/24")))]
        let value = try NetworkTemplates.conflist(spec, nameService: true)
        let list = try NetworkConfigList(bytes: value.encodedBytes)
        #expect(list.plugins.map(\.type) == ["bridge", NetworkTemplates.nameServicePluginType])
        let bridge = Self.plugins(value)[0]
        #expect(bridge["ipMasq"]?.boolValue == false && bridge["isDefaultGateway"]?.boolValue == false)
        #expect(Self.plugins(value)[1]["internal"]?.boolValue == true)
        // The bridge plugin drops what would be forwarded in or out.
        #expect(bridge["internal"]?.boolValue == true)
        #expect(NetworkTemplates.isInternal(list))
        // And its name service forwards nowhere.
        var forwarding = spec
        forwarding.dnsServers = [try #require(IPAddress("192.0.2.53"))]
        #expect(throws: RuntimeError.self) { try NetworkTemplates.conflist(forwarding, nameService: true) }
        var options = CreateOptions(command: ["true"])
        options.ports = ["8080:80"]
        #expect(throws: RuntimeError.self) { try ContainerManager.requireCapabilities(options, of: list) }
        // Without a name service on the path, nothing names it.
        let plain = try NetworkTemplates.conflist(spec, nameService: false)
        #expect(Self.plugins(plain).count == 1)
    }

    @Test func dnsOptionsGoToTheNameService() throws {
        var spec = NetworkSpec(name: "tuned")
        spec.subnets = [SubnetRequest(subnet: try #require(IPPrefix("10.3.0.0/24")))]
        spec.dnsServers = [try #require(IPAddress("192.0.2.53"))]
        spec.dnsSearch = ["example.test"]
        spec.dnsOptions = ["ndots:2"]
        spec.nameServiceOptions = [("domainName", "corp.test")]
        let names = Self.plugins(try NetworkTemplates.conflist(spec, nameService: true))[2]
        #expect(names["upstreams"]?.arrayValue == [.string("192.0.2.53")])
        #expect(names["search"]?.arrayValue == [.string("example.test")])
        #expect(names["options"]?.arrayValue == [.string("ndots:2")])
        #expect(names["domainName"]?.stringValue == "corp.test")
        #expect(names["capabilities"]?["dns"]?.boolValue == true)
        var overlay = NetworkSpec(name: "wide", driver: .vxlanOverlay)
        overlay.subnets = spec.subnets
        overlay.options = [("store", "/var/lib/pier/store")]
        let overlayNames = Self.plugins(try NetworkTemplates.conflist(overlay, nameService: true))[1]
        #expect(overlayNames["store"]?["path"]?.stringValue == "/var/lib/pier/store")
        overlay.isInternal = true
        let internalOverlay = Self.plugins(try NetworkTemplates.conflist(overlay, nameService: true))[0]
        #expect(internalOverlay["internal"]?.boolValue == true && internalOverlay["ipMasq"]?.boolValue == false)
        spec.nameServiceOptions = [("colour", "blue")]
        #expect(throws: RuntimeError.self) { try NetworkTemplates.conflist(spec, nameService: true) }
        // Without a name service there is nothing to give them to: refused, not dropped.
        spec.nameServiceOptions = []
        #expect(throws: RuntimeError.self) { try NetworkTemplates.conflist(spec, nameService: false) }
    }

    @Test func driversTakeTheirOwnKeysOnly() throws {
        var macvlan = NetworkSpec(name: "lan", driver: .macvlan)
        macvlan.options = [("parent", "eno1")]
        macvlan.subnets = [SubnetRequest(subnet: try #require(IPPrefix("192.168.1.0/24")))]
        let lan = try NetworkTemplates.conflist(macvlan, nameService: false)
        #expect(Self.plugins(lan)[0]["master"]?.stringValue == "eno1")
        #expect(Self.plugins(lan)[0]["ipam"]?["routes"]?.arrayValue?.count == 1)

        var overlay = NetworkSpec(name: "ov", driver: .vxlanOverlay)
        overlay.options = [("store", "/tmp/store")]
        overlay.subnets = [SubnetRequest(subnet: try #require(IPPrefix("10.3.0.0/16")))]
        let ov = Self.plugins(try NetworkTemplates.conflist(overlay, nameService: false))[0]
        #expect((ov["vni"]?.intValue ?? 0) > 4096 && ov["store"]?["path"]?.stringValue == "/tmp/store")

        var wrong = NetworkSpec(name: "x")
        wrong.options = [("parent", "eno1")]
        #expect(throws: RuntimeError.self) { try NetworkTemplates.conflist(wrong, nameService: false) }
        var badNumber = NetworkSpec(name: "x")
        badNumber.options = [("mtu", "big")]
        #expect(throws: RuntimeError.self) { try NetworkTemplates.conflist(badNumber, nameService: false) }
        #expect(throws: RuntimeError.self) {
            try NetworkTemplates.conflist(NetworkSpec(name: "d", driver: .hostDevice), nameService: false)
        }
    }

    @Test func aliasesTravelInPodmansFormatOnlyToANameService() throws {
        let bytes = Array(
            #"{"cniVersion":"1.0.0","name":"n","plugins":[{"type":"bridge"},{"type":"names","capabilities":{"aliases":true}}]}"#
                .utf8)
        var capabilities = JSONObject()
        ContainerManager.aliasCapability(
            &capabilities, list: try NetworkConfigList(bytes: bytes), container: "app", aliases: ["web", "app"])
        #expect(JSONValue.object(capabilities).encodedString == #"{"aliases":{"n":["app","web"]}}"#)
        var none = JSONObject()
        let plain = Array(#"{"cniVersion":"1.0.0","name":"n","plugins":[{"type":"bridge"}]}"#.utf8)
        ContainerManager.aliasCapability(
            &none, list: try NetworkConfigList(bytes: plain), container: "app", aliases: [])
        #expect(none.keys.isEmpty)
    }
}
