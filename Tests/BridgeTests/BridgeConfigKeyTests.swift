import PierTestSupport
import Testing

/// A key of the wrong JSON type is refused with code 7 naming it, before anything changes.
@Suite(.enabled(if: isRoot, Comment(rawValue: needsRootReason)))
struct BridgeConfigKeyTests {
    @Test(arguments: [
        (#""bridge":5"#, #"key \"bridge\": expected string, got number"#),
        (#""mtu":"1400""#, #"key \"mtu\": expected integer, got string"#),
        (#""vlan":1.5"#, #"key \"vlan\": expected integer, got number"#),
        (#""isGateway":"true""#, #"key \"isGateway\": expected boolean, got string"#),
        (#""isolation":0"#, #"key \"isolation\": expected boolean, got number"#),
        (#""vlanTrunk":{"id":5}"#, #"key \"vlanTrunk\": expected array, got object"#),
        (#""vlanTrunk":[{"id":"5"}]"#, #"key \"vlanTrunk[0].id\": expected integer, got string"#),
        (#""vlanTrunk":[7]"#, #"key \"vlanTrunk[0]\": expected object, got number"#),
        (#""ipam":[]"#, #"key \"ipam\": expected object, got array"#),
        (#""runtimeConfig":{"mac":5}"#, #"key \"runtimeConfig.mac\": expected string, got number"#),
        (#""ipam":{"subnet":"10.0.0.0/24"}"#, #"key \"ipam.type\": missing"#),
        (#""ipam":{"type":"","ranges":[]}"#, #"key \"ipam.type\": missing"#),
        (#""capabilities":{"mac":"yes"}"#, #"key \"capabilities.mac\": expected boolean, got string"#),
        (#""capabilities":5"#, #"key \"capabilities\": expected object, got number"#),
        (#""mtu":1400,"mtu":1500"#, #"duplicate key \"mtu\""#),
        (#""runtimeConfig":{"mac":"a","mac":"b"}"#, #"duplicate key \"runtimeConfig.mac\""#),
        (#""bridge":"pkt1","bridge":"pkt2""#, #"duplicate key \"bridge\""#),
        (#""routes":null,"routes":[{"dst":{"a":1}}]"#, #"duplicate key \"routes\""#),
    ])
    func wronglyTypedKeyIsCode7AndNamed(keys: String, message: String) throws {
        try withTestHosts(2) { hosts in
            let (host, container) = (hosts[0], hosts[1])
            // A row that sets the base key itself replaces it: a repeated key is refused.
            let base = keys.hasPrefix(#""bridge":"#) ? "" : #""bridge":"pkt0","#
            let config = #"{"cniVersion":"1.0.0","name":"keys","type":"bridge",\#(base)\#(keys)}"#
            let output = try PluginRunner("bridge").run(
                "ADD", config: config, containerID: "c1", netns: container.path, ifname: "eth0", in: host)
            #expect(output.errorCode == 7, "\(output.stdout)")
            #expect(output.stdout.contains("invalid network config: " + message), "\(output.stdout)")
            #expect(try host.linkNames() == ["lo"])
            #expect(try container.linkNames() == ["lo"])
        }
    }

    /// An empty CNI_ARGS key is malformed (code 4) even where unknown keys are tolerated.
    @Test(arguments: ["=", "=;=;=", ";;", "IgnoreUnknown=1;=v"])
    func malformedArgsAreCode4(args: String) throws {
        try withTestHosts(2) { hosts in
            let (host, container) = (hosts[0], hosts[1])
            let config = #"{"cniVersion":"1.0.0","name":"keys","type":"bridge","bridge":"pkt0"}"#
            let output = try PluginRunner("bridge").run(
                "ADD", config: config, containerID: "c1", netns: container.path, ifname: "eth0", args: args, in: host)
            #expect(output.errorCode == 4, "\(output.stdout)")
            #expect(try host.linkNames() == ["lo"])
            #expect(try container.linkNames() == ["lo"])
        }
    }
}
