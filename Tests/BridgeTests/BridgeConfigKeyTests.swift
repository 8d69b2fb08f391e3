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
    ])
    func wronglyTypedKeyIsCode7AndNamed(keys: String, message: String) throws {
        try withTestHosts(2) { hosts in
            let (host, container) = (hosts[0], hosts[1])
            let config = #"{"cniVersion":"1.0.0","name":"keys","type":"bridge","bridge":"pkt0",\#(keys)}"#
            let output = try PluginRunner("bridge").run(
                "ADD", config: config, containerID: "c1", netns: container.path, ifname: "eth0", in: host)
            #expect(output.errorCode == 7, "\(output.stdout)")
            #expect(output.stdout.contains("invalid network config: " + message), "\(output.stdout)")
            #expect(try host.linkNames() == ["lo"])
            #expect(try container.linkNames() == ["lo"])
        }
    }
}
