import PierTestSupport
import Testing

/// A key of the wrong JSON type is refused with code 7 naming it, before any rule is written.
@Suite(.enabled(if: isRoot, Comment(rawValue: needsRootReason)))
struct PortmapConfigKeyTests {
    @Test(arguments: [
        (
            #""runtimeConfig":{"portMappings":[{"hostPort":"8080","containerPort":80}]}"#,
            #"key \"runtimeConfig.portMappings[0].hostPort\": expected integer, got string"#
        ),
        (
            #""runtimeConfig":{"portMappings":[{"containerPort":80}]}"#,
            #"key \"runtimeConfig.portMappings[0].hostPort\": missing"#
        ),
        (
            #""runtimeConfig":{"portMappings":[{"hostPort":8080,"containerPort":80,"protocol":6}]}"#,
            #"key \"runtimeConfig.portMappings[0].protocol\": expected string, got number"#
        ),
        (
            #""runtimeConfig":{"portMappings":{"hostPort":8080}}"#,
            #"key \"runtimeConfig.portMappings\": expected array, got object"#
        ),
        (
            #""runtimeConfig":{"portMappings":[{"hostPort":8080,"containerPort":80}]},"snat":"no""#,
            #"key \"snat\": expected boolean, got string"#
        ),
        (
            #""runtimeConfig":{"portMappings":[{"hostPort":8080,"containerPort":80}]},"masqAll":1"#,
            #"key \"masqAll\": expected boolean, got number"#
        ),
        (
            #""runtimeConfig":{"portMappings":[{"hostPort":8080,"containerPort":80}]},"markMasqBit":-1"#,
            #"key \"markMasqBit\": must be between 0 and 31, got -1"#
        ),
        (
            #""runtimeConfig":{"portMappings":[{"hostPort":8080,"containerPort":80}]},"markMasqBit":64"#,
            #"key \"markMasqBit\": must be between 0 and 31, got 64"#
        ),
        (
            #""runtimeConfig":{"portMappings":[{"hostPort":8080,"containerPort":80}]},"markMasqBit":2147483648"#,
            #"key \"markMasqBit\": must be between 0 and 31, got 2147483648"#
        ),
        (#""markMasqBit":99"#, #"key \"markMasqBit\": must be between 0 and 31, got 99"#),
        (
            #""runtimeConfig":{"portMappings":[{"hostPort":8080,"containerPort":80}]},"capabilities":{"portMappings":"yes"}"#,
            #"key \"capabilities.portMappings\": expected boolean, got string"#
        ),
        (
            #""runtimeConfig":{"portMappings":[{"hostPort":8080,"containerPort":80}]},"capabilities":true"#,
            #"key \"capabilities\": expected object, got boolean"#
        ),
        (
            #""runtimeConfig":{"portMappings":[{"hostPort":8080,"containerPort":80}]},"snat":true,"snat":false"#,
            #"duplicate key \"snat\""#
        ),
    ])
    func wronglyTypedKeyIsCode7AndNamed(keys: String, message: String) throws {
        try withTestHosts(2) { hosts in
            let (host, container) = (hosts[0], hosts[1])
            let previous =
                #"{"cniVersion":"1.0.0","interfaces":[{"name":"eth0","sandbox":"\#(container.path)"}],"#
                + #""ips":[{"address":"10.9.0.2/24","interface":0}]}"#
            let config =
                #"{"cniVersion":"1.0.0","name":"keys","type":"portmap","prevResult":\#(previous),\#(keys)}"#
            let output = try PluginRunner("portmap").run(
                "ADD", config: config, containerID: "c1", netns: container.path, ifname: "eth0", in: host)
            #expect(output.errorCode == 7, "\(output.stdout)")
            #expect(output.stdout.contains("invalid network config: " + message), "\(output.stdout)")
            #expect(try host.mustRun(["nft", "list", "tables"]).stdout.isEmpty)
        }
    }

    /// Every result says its version: a prevResult without one came from no plugin.
    @Test func prevResultWithoutCNIVersionIsCode7() throws {
        try withTestHosts(2) { hosts in
            let (host, container) = (hosts[0], hosts[1])
            let previous =
                #"{"interfaces":[{"name":"eth0","sandbox":"\#(container.path)"}],"#
                + #""ips":[{"address":"10.9.0.2/24","interface":0}]}"#
            let config =
                #"{"cniVersion":"1.0.0","name":"keys","type":"portmap","prevResult":\#(previous),"#
                + #""runtimeConfig":{"portMappings":[{"hostPort":8080,"containerPort":80}]}}"#
            let output = try PluginRunner("portmap").run(
                "ADD", config: config, containerID: "c1", netns: container.path, ifname: "eth0", in: host)
            #expect(output.errorCode == 7, "\(output.stdout)")
            #expect(
                output.stdout.contains(#"invalid network config: key \"prevResult.cniVersion\": missing"#),
                "\(output.stdout)")
            #expect(try host.mustRun(["nft", "list", "tables"]).stdout.isEmpty)
        }
    }
}
