import PierTestSupport
import Testing

/// A key of the wrong JSON type is refused with code 7 naming it, before anything changes.
@Suite(.enabled(if: isRoot, Comment(rawValue: needsRootReason)))
struct HostConfigKeyTests {
    @Test(arguments: [
        (#""device":5"#, #"key \"device\": expected string, got number"#),
        (#""hwaddr":{}"#, #"key \"hwaddr\": expected string, got object"#),
        (#""kernelpath":["/sys/devices/x"]"#, #"key \"kernelpath\": expected string, got array"#),
        (#""pciBusID":1"#, #"key \"pciBusID\": expected string, got number"#),
        (#""runtimeConfig":{"deviceID":7}"#, #"key \"runtimeConfig.deviceID\": expected string, got number"#),
        (#""ipam":{"subnet":"10.0.0.0/24"}"#, #"key \"ipam.type\": missing"#),
        (#""capabilities":[]"#, #"key \"capabilities\": expected object, got array"#),
        (#""device":"eth8","device":"eth9""#, #"duplicate key \"device\""#),
    ])
    func wronglyTypedKeyIsCode7AndNamed(keys: String, message: String) throws {
        try withTestHosts(2) { hosts in
            let (host, container) = (hosts[0], hosts[1])
            // A row that sets the base key itself replaces it: a repeated key is refused.
            let base = keys.hasPrefix(#""device":"#) ? "" : #""device":"eth9","#
            let config = #"{"cniVersion":"1.0.0","name":"keys","type":"host",\#(base)\#(keys)}"#
            let output = try PluginRunner("host").run(
                "ADD", config: config, containerID: "c1", netns: container.path, ifname: "eth0", in: host)
            #expect(output.errorCode == 7, "\(output.stdout)")
            #expect(output.stdout.contains("invalid network config: " + message), "\(output.stdout)")
            #expect(try host.linkNames() == ["lo"])
            #expect(try container.linkNames() == ["lo"])
        }
    }
}
