import Testing

@testable import CNI

@Suite struct ConfigListTests {
    let containerdStyle = #"""
        {"cniVersion":"0.4.0","name":"pier","disableCheck":"true","plugins":[
          {"type":"bridge","bridge":"cni0","ipam":{"type":"ipam","subnet":"10.88.0.0/16"}},
          {"type":"portmap","capabilities":{"portMappings":true,"ips":false}}]}
        """#

    @Test func parsesAList() throws {
        let list = try NetworkConfigList(bytes: bytes(containerdStyle))
        #expect(list.name == "pier")
        #expect(list.cniVersion == "0.4.0")
        #expect(list.disableCheck)
        #expect(!list.disableGC)
        #expect(!list.loadOnlyInlinedPlugins)
        #expect(list.plugins.map(\.type) == ["bridge", "portmap"])
        #expect(list.plugins[1].capabilities == ["portMappings"])
    }

    @Test func disableCheckAcceptsBoolOrString() throws {
        for (value, expected) in [("true", true), ("false", false), (#""false""#, false), (#""True""#, true)] {
            let list = try NetworkConfigList(bytes: bytes(#"{"name":"n","disableCheck":\#(value),"plugins":[]}"#))
            #expect(list.disableCheck == expected)
        }
        expectCNIError(.invalidNetworkConfig) {
            _ = try NetworkConfigList(bytes: bytes(#"{"name":"n","disableCheck":"maybe","plugins":[]}"#))
        }
    }

    @Test func picksTheNewestUsableVersion() throws {
        let list = try NetworkConfigList(
            bytes: bytes(#"{"cniVersion":"0.4.0","cniVersions":["1.0.0","1.1.0","1.5.0"],"name":"n","plugins":[]}"#))
        #expect(list.cniVersion == "1.1.0")
        let onlyFuture = try NetworkConfigList(bytes: bytes(#"{"cniVersion":"2.0.0","name":"n","plugins":[]}"#))
        #expect(onlyFuture.cniVersion == "2.0.0")
    }

    @Test func rejectsBrokenLists() {
        expectCNIError(.decodingFailure) { _ = try NetworkConfigList(bytes: bytes("[")) }
        expectCNIError(.invalidNetworkConfig, "error parsing configuration list: no name") {
            _ = try NetworkConfigList(bytes: bytes(#"{"plugins":[]}"#))
        }
        expectCNIError(.invalidNetworkConfig, #"invalid network config list: key "plugins[1].type": missing"#) {
            _ = try NetworkConfigList(bytes: bytes(#"{"name":"n","plugins":[{"type":"a"},{}]}"#))
        }
        expectCNIError(.invalidNetworkConfig) {
            _ = try NetworkConfigList(bytes: bytes(#"{"name":"n","plugins":[{"type":"../evil"}]}"#))
        }
        expectCNIError(.invalidNetworkConfig) {
            _ = try NetworkConfigList(bytes: bytes(#"{"name":"n","loadOnlyInlinedPlugins":true}"#))
        }
    }

    @Test func wrapsALegacySinglePluginConf() throws {
        let list = try NetworkConfigList(
            singlePluginBytes: bytes(#"{"cniVersion":"0.3.1","name":"old","type":"bridge"}"#))
        #expect(list.name == "old")
        #expect(list.cniVersion == "0.3.1")
        #expect(list.plugins.map(\.type) == ["bridge"])
    }

    @Test func addRequestInjectsNameVersionPrevResultAndFilteredRuntimeConfig() throws {
        let list = try NetworkConfigList(bytes: bytes(containerdStyle))
        let previous = CNIResult(
            interfaces: [.init(name: "eth0", mtu: 1500)],
            ips: [.init(address: try prefix("10.88.0.2/16"), interface: 0)])
        let capabilityArgs: JSONObject = [
            "portMappings": .array([.object(["hostPort": .integer(8080), "containerPort": .integer(80)])]),
            "ips": .array([.string("10.88.0.9")]),
        ]
        let request = try list.request(
            forPluginAt: 1, command: .add, prevResult: previous, capabilityArgs: capabilityArgs)
        #expect(
            text(request)
                == #"{"type":"portmap","capabilities":{"portMappings":true,"ips":false},"name":"pier","cniVersion":"0.4.0","#
                + #""prevResult":{"cniVersion":"0.4.0","interfaces":[{"name":"eth0"}],"ips":[{"version":"4","interface":0,"address":"10.88.0.2/16"}]},"#
                + #""runtimeConfig":{"portMappings":[{"hostPort":8080,"containerPort":80}]}}"#)
        let first = try list.request(forPluginAt: 0, command: .add, capabilityArgs: capabilityArgs)
        #expect(
            text(first)
                == #"{"type":"bridge","bridge":"cni0","ipam":{"type":"ipam","subnet":"10.88.0.0/16"},"name":"pier","cniVersion":"0.4.0"}"#
        )
        // What the runtime builds is what a plugin reads.
        let parsed = try NetworkConfig(bytes: request)
        #expect(parsed.prevResult?.ips.first?.address == (try prefix("10.88.0.2/16")))
        #expect(parsed.runtimeConfig.keys == ["portMappings"])
    }

    @Test func pluginVersionIsOverwrittenByTheListVersion() throws {
        let list = try NetworkConfigList(
            bytes: bytes(#"{"cniVersion":"1.0.0","name":"n","plugins":[{"cniVersion":"0.3.1","name":"x","type":"a"}]}"#)
        )
        #expect(
            text(try list.request(forPluginAt: 0, command: .delete))
                == #"{"cniVersion":"1.0.0","name":"n","type":"a"}"#)
    }

    @Test func gcRequestCarriesAttachmentsUnderBothKeys() throws {
        let list = try NetworkConfigList(
            bytes: bytes(#"{"cniVersion":"1.1.0","name":"n","plugins":[{"type":"a","runtimeConfig":{"x":1}}]}"#))
        let request = try list.request(
            forPluginAt: 0, command: .garbageCollect, prevResult: CNIResult(),
            validAttachments: [.init(network: "n", containerID: "c1", ifName: "eth0")])
        let attachments = #"[{"containerID":"c1","ifname":"eth0"}]"#
        #expect(
            text(request)
                == #"{"type":"a","name":"n","cniVersion":"1.1.0","cni.dev/valid-attachments":\#(attachments),"cni.dev/attachments":\#(attachments)}"#
        )
        #expect(
            try NetworkConfig(bytes: request).validAttachments == [
                .init(network: "n", containerID: "c1", ifName: "eth0")
            ])
    }

    @Test func requestFailsWhenPrevResultCannotBeExpressed() throws {
        let list = try NetworkConfigList(bytes: bytes(#"{"cniVersion":"0.2.0","name":"n","plugins":[{"type":"a"}]}"#))
        expectCNIError(.incompatibleVersion) {
            _ = try list.request(forPluginAt: 0, command: .add, prevResult: CNIResult(interfaces: [.init(name: "e")]))
        }
        expectCNIError(.internalError) { _ = try list.request(forPluginAt: 3, command: .add) }
    }
}
