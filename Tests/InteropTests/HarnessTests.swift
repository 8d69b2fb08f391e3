import Foundation
import PierTestSupport
import Testing

/// The harness itself, without root: the logging shim is transparent (stdin, stdout, exit
/// status pass through) and records what the runtime sent; a missing plugin is named.
struct InteropHarnessTests {
    @Test func loggingShimPassesTheCallThroughAndRecordsIt() throws {
        let scratch = try ScratchDirectory("harness")
        defer { scratch.remove() }
        let real = try scratch.makeDirectory("real")
        // A fake plugin: echoes its stdin back with the verb, fails DEL with status 7.
        let fake = """
            #!/bin/sh
            input=$(cat)
            printf '{"verb":"%s","got":%s}' "$CNI_COMMAND" "$input"
            [ "$CNI_COMMAND" = DEL ] && exit 7
            exit 0
            """
        try fake.write(toFile: real + "/fake", atomically: true, encoding: .utf8)
        try FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: real + "/fake")
        let log = try PluginCallLog(wrapping: real, plugins: ["fake"], in: scratch)

        let config = #"{"cniVersion":"0.3.1","name":"n","type":"fake","prevResult":{"ips":[]}}"#
        var env = ProcessInfo.processInfo.environment
        env.merge(["CNI_COMMAND": "ADD", "CNI_NETNS": "/run/netns/x", "CNI_IFNAME": "eth0"]) { _, new in new }
        let add = try runCommand([log.shimDirectory + "/fake"], stdin: config, environment: env)
        #expect(add.status == 0)
        #expect(add.stdout == #"{"verb":"ADD","got":\#(config)}"#)
        env["CNI_COMMAND"] = "DEL"
        env["CNI_NETNS"] = ""
        let del = try runCommand([log.shimDirectory + "/fake"], stdin: #"{"cniVersion":"1.0.0"}"#, environment: env)
        #expect(del.status == 7)

        let calls = log.calls()
        try #require(calls.count == 2, "\(calls)")
        #expect(calls[0].command == "ADD" && calls[0].plugin == "fake" && calls[0].ifname == "eth0")
        #expect(calls[0].netns == "/run/netns/x" && calls[0].cniVersion == "0.3.1" && calls[0].hasPrevResult)
        #expect(calls[0].status == "0" && calls[0].stdout == add.stdout)
        #expect(calls[1].command == "DEL" && calls[1].netns.isEmpty && !calls[1].hasPrevResult)
        #expect(calls[1].status == "7")
    }

    @Test func missingPluginsAreNamed() throws {
        let missing = MissingPlugins(runtime: "a runtime", directory: "/nowhere", names: ["loopback", "tuning"])
        #expect("\(missing)" == "a runtime needs CNI plugins that /nowhere does not have: loopback, tuning")
    }

    @Test func addressMentionsMatchWholeAddressesOnly() {
        #expect(mentions("ip saddr 10.89.0.10 accept", address: "10.89.0.10"))
        #expect(mentions(#"{"addr": "10.89.0.10"}"#, address: "10.89.0.10"))
        #expect(!mentions("ip saddr 10.89.0.100 accept", address: "10.89.0.10"))
        #expect(!mentions("ip daddr 10.89.0.0/24 accept", address: "10.89.0.1"))
    }
}
