import IPAddressing
import Testing

@testable import CNI

@Suite struct ConfigTests {
    func config(_ json: String) throws -> NetworkConfig { try NetworkConfig(bytes: bytes(json)) }

    @Test func parsesWellKnownKeysAndKeepsTheRest() throws {
        let json = #"""
            {"cniVersion":"1.0.0","name":"pier","type":"bridge","bridge":"pier0","mtu":1450,
             "ipam":{"type":"ipam","subnet":"10.1.0.0/16"},
             "dns":{"nameservers":["10.1.0.1"],"search":["svc.local"]},
             "capabilities":{"portMappings":true},
             "args":{"cni":{"ips":["10.1.0.9"]}}}
            """#
        let config = try config(json)
        #expect(config.cniVersion == "1.0.0")
        #expect(config.name == "pier")
        #expect(config.type == "bridge")
        #expect(config.ipam?.type == "ipam")
        #expect(config.ipam?.raw["subnet"] == .string("10.1.0.0/16"))
        #expect(config.dns == CNIResult.DNS(nameservers: ["10.1.0.1"], search: ["svc.local"]))
        #expect(config.args?["cni"]?["ips"] == .array([.string("10.1.0.9")]))
        #expect(
            config.raw.keys == ["cniVersion", "name", "type", "bridge", "mtu", "ipam", "dns", "capabilities", "args"])
        #expect(config.bytes == bytes(json))
        #expect(config.prevResult == nil)
        #expect(config.validAttachments == nil)
    }

    @Test func absentVersionMeans010() throws {
        #expect(try config(#"{"name":"n"}"#).cniVersion == "0.1.0")
    }

    @Test func emptyIPAMMeansNone() throws {
        #expect(try config(#"{"name":"n","ipam":{}}"#).ipam == nil)
        #expect(try config(#"{"name":"n","ipam":null}"#).ipam == nil)
    }

    /// Keys under `ipam` mean the author wanted addresses: without a delegate that is a mistake.
    @Test(arguments: [#"{"subnet":"10.0.0.0/8"}"#, #"{"type":"","subnet":"10.0.0.0/8"}"#, #"{"type":null,"a":1}"#])
    func typelessIPAMIsCode7(_ ipam: String) {
        let error = expectCNIError(.invalidNetworkConfig) { _ = try config(#"{"name":"n","ipam":\#(ipam)}"#) }
        #expect(error?.msg == #"invalid network config: key "ipam.type": missing"#)
    }

    /// Go's decoder takes the last value of a repeated key, others the first: refused, named.
    @Test(arguments: [
        (#"{"name":"n","routes":null,"routes":[{"dst":{"a":1}}]}"#, "routes"),
        (
            #"{"name":"n","ipam":{"type":"ipam","ranges":[[{"subnet":"10.0.0.0/24","subnet":"10.1.0.0/24"}]]}}"#,
            "ipam.ranges[0][0].subnet"
        ),
        (#"{"name":"n","runtimeConfig":{"mac":"a","mac":"b"}}"#, "runtimeConfig.mac"),
        (#"{"cniVersion":"1.0.0","name":"n","prevResult":{"cniVersion":"1.0.0","ips":[],"ips":[]}}"#, "prevResult.ips"),
        (#"{"name":"n","name":"m"}"#, "name"),
    ])
    func duplicateKeysAreCode7AndNamed(json: String, key: String) {
        let error = expectCNIError(.invalidNetworkConfig) { _ = try config(json) }
        #expect(error?.msg == "invalid network config: duplicate key \"\(key)\"")
    }

    @Test(arguments: [#""capabilities":5"#, #""capabilities":{"portMappings":"yes"}"#, #""capabilities":[]"#])
    func wronglyTypedCapabilitiesAreCode7(_ capabilities: String) {
        let error = expectCNIError(.invalidNetworkConfig) { _ = try config(#"{"name":"n",\#(capabilities)}"#) }
        #expect(error?.msg.contains(#"key "capabilities"#) == true, "\(String(describing: error))")
    }

    @Test func runtimeConfigDropsNullEntries() throws {
        let config = try config(
            #"{"name":"n","runtimeConfig":{"portMappings":null,"mac":"c2:11:22:33:44:55","ips":["10.0.0.2/24"]}}"#)
        #expect(config.runtimeConfig.keys == ["mac", "ips"])
        #expect(try config.runtimeConfig("mac", as: String.self) == "c2:11:22:33:44:55")
        #expect(try config.runtimeConfig("portMappings", as: String.self) == nil)
        #expect(try config.runtimeConfigReader.strings("ips") == ["10.0.0.2/24"])
        #expect(try self.config(#"{"name":"n","runtimeConfig":null}"#).runtimeConfig.isEmpty)
    }

    @Test func invalidJSONIsCode6() {
        expectCNIError(.decodingFailure) { _ = try config("{not json") }
        expectCNIError(.decodingFailure) { _ = try config("[1,2]") }
    }

    @Test func missingOrBadNameIsCode7() {
        expectCNIError(.invalidNetworkConfig, "missing network name") { _ = try config(#"{"type":"bridge"}"#) }
        expectCNIError(.invalidNetworkConfig, "invalid characters found in network name") {
            _ = try config(#"{"name":"a/b"}"#)
        }
    }

    @Test func wronglyTypedWellKnownKeyIsCode7AndNamed() {
        expectCNIError(.invalidNetworkConfig, #"invalid network config: key "ipam.type": expected string, got number"#)
        {
            _ = try config(#"{"name":"n","ipam":{"type":5}}"#)
        }
        expectCNIError(
            .invalidNetworkConfig, #"invalid network config: key "dns.nameservers[1]": expected string, got boolean"#
        ) {
            _ = try config(#"{"name":"n","dns":{"nameservers":["1.1.1.1",true]}}"#)
        }
    }

    @Test func prevResultOfVersion020IsConverted() throws {
        let config = try config(
            #"""
            {"cniVersion":"0.2.0","name":"n","prevResult":{"cniVersion":"0.2.0",
             "ip4":{"ip":"10.1.0.5/16","gateway":"10.1.0.1","routes":[{"dst":"0.0.0.0/0"}]},
             "ip6":{"ip":"fd00::5/64"},"dns":{"nameservers":["8.8.8.8"]}}}
            """#)
        let previous = try #require(config.prevResult)
        #expect(
            previous.ips == [
                .init(address: try prefix("10.1.0.5/16"), gateway: try address("10.1.0.1")),
                .init(address: try prefix("fd00::5/64")),
            ])
        #expect(previous.routes == [.init(dst: try prefix("0.0.0.0/0"))])
        #expect(previous.interfaces.isEmpty)
        #expect(previous.dns.nameservers == ["8.8.8.8"])
    }

    @Test func prevResultOfVersion040IsConverted() throws {
        let config = try config(
            #"""
            {"cniVersion":"0.4.0","name":"n","prevResult":{"cniVersion":"0.4.0",
             "interfaces":[{"name":"veth1","mac":"aa:bb:cc:dd:ee:01"},{"name":"eth0","sandbox":"/run/netns/c"}],
             "ips":[{"version":"4","interface":1,"address":"10.1.0.5/16","gateway":"10.1.0.1"},
                    {"version":"6","interface":-1,"address":"fd00::5/64"}],
             "routes":[{"dst":"0.0.0.0/0","gw":"10.1.0.1"}]}}
            """#)
        let previous = try #require(config.prevResult)
        #expect(previous.cniVersion == "0.4.0")
        #expect(previous.interfaces.map(\.name) == ["veth1", "eth0"])
        #expect(previous.interfaces[1].sandbox == "/run/netns/c")
        #expect(previous.ips[0].interface == 1)
        #expect(previous.ips[1].interface == nil)
        #expect(previous.routes[0].gw == (try address("10.1.0.1")))
    }

    /// Every result says its version; a prevResult without one came from no plugin.
    @Test func prevResultWithoutItsOwnVersionIsCode7() throws {
        let error = expectCNIError(.invalidNetworkConfig) {
            _ = try config(
                #"""
                {"cniVersion":"1.0.0","name":"n","prevResult":{
                 "interfaces":[{"name":"eth0","sandbox":"/run/netns/c"}],
                 "ips":[{"interface":0,"address":"10.1.0.5/16"}],"dns":{}}}
                """#)
        }
        #expect(error?.msg == #"invalid network config: key "prevResult.cniVersion": missing"#)
    }

    @Test func brokenPrevResultIsCode6AndSaysSo() {
        let error = expectCNIError(.decodingFailure) {
            _ = try config(
                #"{"cniVersion":"1.0.0","name":"n","prevResult":{"cniVersion":"1.0.0","ips":[{"address":"nope"}]}}"#)
        }
        #expect(error?.msg.contains("prevResult") == true)
        #expect(error?.msg.contains("ips[0].address") == true)
    }

    @Test func gcAttachmentsFromEitherKey() throws {
        let current = try config(
            #"{"name":"n","cni.dev/valid-attachments":[{"containerID":"c1","ifname":"eth0"}],"cni.dev/attachments":[]}"#
        )
        #expect(current.validAttachments == [.init(network: "n", containerID: "c1", ifName: "eth0")])
        let legacy = try config(#"{"name":"n","cni.dev/attachments":[{"containerID":"c2","ifname":"net1"}]}"#)
        #expect(legacy.validAttachments == [.init(network: "n", containerID: "c2", ifName: "net1")])
        #expect(try config(#"{"name":"n","cni.dev/valid-attachments":[]}"#).validAttachments == [])
    }

    struct BridgeConfig: JSONReadable {
        var bridge: String
        var mtu: Int?
        var isGateway: Bool?
        var ipam: IPAM?
        struct IPAM: JSONReadable {
            var subnet: String
            init(_ reader: JSONReader) throws(CNIError) { subnet = try reader.requiredString("subnet") }
        }

        init(_ reader: JSONReader) throws(CNIError) {
            bridge = try reader.requiredString("bridge")
            mtu = try reader.int("mtu")
            isGateway = try reader.bool("isGateway")
            ipam = try reader.read("ipam", as: IPAM.self)
        }
    }

    @Test func pluginDecodesItsOwnKeys() throws {
        let config = try config(#"{"name":"n","bridge":"pier0","mtu":1400,"ipam":{"type":"x","subnet":"10.0.0.0/8"}}"#)
        let own = try config.decode(BridgeConfig.self)
        #expect(own.bridge == "pier0")
        #expect(own.mtu == 1400)
        #expect(own.ipam?.subnet == "10.0.0.0/8")
        #expect(try config.ipam?.decode(BridgeConfig.IPAM.self).subnet == "10.0.0.0/8")
    }

    @Test func pluginDecodingErrorsNameTheKey() throws {
        let wrongType = try config(#"{"name":"n","bridge":"b","mtu":"big"}"#)
        expectCNIError(.invalidNetworkConfig, #"invalid network config: key "mtu": expected integer, got string"#) {
            _ = try wrongType.decode(BridgeConfig.self)
        }
        let missing = try config(#"{"name":"n"}"#)
        expectCNIError(.invalidNetworkConfig, #"invalid network config: key "bridge": missing"#) {
            _ = try missing.decode(BridgeConfig.self)
        }
        let nested = try config(#"{"name":"n","bridge":"b","ipam":{"type":"x"}}"#)
        expectCNIError(.invalidNetworkConfig, #"invalid network config: key "ipam.subnet": missing"#) {
            _ = try nested.decode(BridgeConfig.self)
        }
    }

    @Test func pluginKeysOfTheWrongTypeOrNullAreNamedOrAbsent() throws {
        let nullMTU = try config(#"{"name":"n","bridge":"b","mtu":null,"isGateway":null}"#).decode(BridgeConfig.self)
        #expect(nullMTU.mtu == nil && nullMTU.isGateway == nil)
        let unknownKeys = try config(#"{"name":"n","bridge":"b","surprise":{"x":[1]},"ipMasq":"yes"}"#)
        #expect(try unknownKeys.decode(BridgeConfig.self).bridge == "b")
        expectCNIError(.invalidNetworkConfig, #"invalid network config: key "mtu": expected integer, got number"#) {
            _ = try config(#"{"name":"n","bridge":"b","mtu":1.5}"#).decode(BridgeConfig.self)
        }
        expectCNIError(.invalidNetworkConfig, #"invalid network config: key "isGateway": expected boolean, got string"#)
        {
            _ = try config(#"{"name":"n","bridge":"b","isGateway":"true"}"#).decode(BridgeConfig.self)
        }
        expectCNIError(.invalidNetworkConfig, #"invalid network config: key "ipam": expected object, got array"#) {
            _ = try config(#"{"name":"n","bridge":"b","ipam":[]}"#).decode(BridgeConfig.self)
        }
        expectCNIError(
            .invalidNetworkConfig, #"invalid network config: key "ipam.subnet": expected string, got number"#
        ) {
            _ = try config(#"{"name":"n","ipam":{"type":"x","subnet":8}}"#).ipam?.decode(BridgeConfig.IPAM.self)
        }
    }

    struct Mapping: JSONReadable, Equatable {
        var hostPort: Int
        init(_ reader: JSONReader) throws(CNIError) { hostPort = try reader.requiredInt("hostPort") }
    }

    @Test func runtimeConfigValuesAreReadAndNamed() throws {
        let config = try config(#"{"name":"n","runtimeConfig":{"mac":7,"portMappings":[{"hostPort":80},{}]}}"#)
        expectCNIError(
            .invalidNetworkConfig, #"invalid network config: key "runtimeConfig.mac": expected string, got number"#
        ) {
            _ = try config.runtimeConfig("mac", as: String.self)
        }
        expectCNIError(
            .invalidNetworkConfig, #"invalid network config: key "runtimeConfig.portMappings[1].hostPort": missing"#
        ) {
            _ = try config.runtimeConfig("portMappings", as: [Mapping].self)
        }
        let good = try self.config(#"{"name":"n","runtimeConfig":{"portMappings":[{"hostPort":80}]}}"#)
        #expect(try good.runtimeConfig("portMappings", as: [Mapping].self)?.map(\.hostPort) == [80])
        #expect(try good.runtimeConfig("absent", as: [Mapping].self) == nil)
    }
}
