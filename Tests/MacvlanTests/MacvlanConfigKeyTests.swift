import PierTestSupport
import Testing

/// A key of the wrong JSON type is refused with code 7 naming it, before anything changes.
@Suite(.enabled(if: isRoot, Comment(rawValue: needsRootReason)))
struct MacvlanConfigKeyTests {
    @Test(arguments: [
        (#""master":5"#, #"key \"master\": expected string, got number"#),
        (#""mode":true"#, #"key \"mode\": expected string, got boolean"#),
        (#""mtu":"9000""#, #"key \"mtu\": expected integer, got string"#),
        (#""mac":["02:00:00:00:00:01"]"#, #"key \"mac\": expected string, got array"#),
        (#""linkInContainer":"no""#, #"key \"linkInContainer\": expected boolean, got string"#),
        (#""bcqueuelen":{}"#, #"key \"bcqueuelen\": expected integer, got object"#),
        (#""runtimeConfig":{"mac":{}}"#, #"key \"runtimeConfig.mac\": expected string, got object"#),
        (#""ipam":{"subnet":"10.0.0.0/24"}"#, #"key \"ipam.type\": missing"#),
        (#""ipam":{"type":"","ranges":[]}"#, #"key \"ipam.type\": missing"#),
        (#""capabilities":{"mac":"yes"}"#, #"key \"capabilities.mac\": expected boolean, got string"#),
        (#""capabilities":5"#, #"key \"capabilities\": expected object, got number"#),
        (#""mtu":1400,"mtu":1500"#, #"duplicate key \"mtu\""#),
        (#""runtimeConfig":{"mac":"a","mac":"b"}"#, #"duplicate key \"runtimeConfig.mac\""#),
    ])
    func wronglyTypedKeyIsCode7AndNamed(keys: String, message: String) throws {
        try withTestHosts(2) { hosts in
            let (host, container) = (hosts[0], hosts[1])
            // A row that sets the base key itself replaces it: a repeated key is refused.
            let base = keys.hasPrefix(#""master":"#) ? "" : #""master":"lo","#
            let config = #"{"cniVersion":"1.0.0","name":"keys","type":"macvlan",\#(base)\#(keys)}"#
            let output = try PluginRunner("macvlan").run(
                "ADD", config: config, containerID: "c1", netns: container.path, ifname: "eth0", in: host)
            #expect(output.errorCode == 7, "\(output.stdout)")
            #expect(output.stdout.contains("invalid network config: " + message), "\(output.stdout)")
            #expect(try host.linkNames() == ["lo"])
            #expect(try container.linkNames() == ["lo"])
        }
    }
}
