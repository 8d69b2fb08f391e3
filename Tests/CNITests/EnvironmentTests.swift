import Testing

@testable import CNI

@Suite struct EnvironmentTests {
    static let full = [
        "CNI_COMMAND": "ADD", "CNI_CONTAINERID": "abc", "CNI_NETNS": "/run/netns/x", "CNI_IFNAME": "eth0",
        "CNI_PATH": "/opt/cni/bin::/usr/lib/cni", "CNI_ARGS": "IgnoreUnknown=1;K8S_POD_NAME=web",
    ]

    func environment(_ changes: [String: String?]) -> [String: String] {
        var variables = EnvironmentTests.full
        for (key, value) in changes { variables[key] = value }
        return variables
    }

    @Test func parsesAFullAddEnvironment() throws {
        let env = try CNIEnvironment(EnvironmentTests.full)
        #expect(env.command == .add)
        #expect(env.containerID == "abc")
        #expect(env.netns == "/run/netns/x")
        #expect(env.ifName == "eth0")
        #expect(env.path == ["/opt/cni/bin", "/usr/lib/cni"])
        #expect(try env.args()["K8S_POD_NAME"] == "web")
        try env.validateAttachment()
    }

    @Test func missingVariablesAreNamedInOneMessageInSkelOrder() {
        expectCNIError(
            .invalidEnvironmentVariables, "required env variables [CNI_CONTAINERID,CNI_NETNS,CNI_PATH] missing"
        ) {
            _ = try CNIEnvironment(environment(["CNI_CONTAINERID": nil, "CNI_NETNS": "", "CNI_PATH": nil]))
        }
        expectCNIError(.invalidEnvironmentVariables, "required env variables [CNI_IFNAME] missing") {
            _ = try CNIEnvironment(environment(["CNI_COMMAND": "CHECK", "CNI_IFNAME": nil]))
        }
    }

    @Test func deleteDoesNotNeedANetns() throws {
        let env = try CNIEnvironment(environment(["CNI_COMMAND": "DEL", "CNI_NETNS": nil]))
        #expect(env.command == .delete)
        #expect(env.netns.isEmpty)
    }

    @Test(arguments: ["GC", "STATUS"])
    func gcAndStatusNeedOnlyCommandAndPath(_ command: String) throws {
        let env = try CNIEnvironment(["CNI_COMMAND": command, "CNI_PATH": "/bin"])
        try env.validateAttachment()
        expectCNIError(.invalidEnvironmentVariables, "required env variables [CNI_PATH] missing") {
            _ = try CNIEnvironment(["CNI_COMMAND": command])
        }
    }

    @Test func versionNeedsOnlyTheCommand() throws {
        #expect(try CNIEnvironment(["CNI_COMMAND": "VERSION"]).command == .version)
    }

    @Test func unknownCommandIsCode4() {
        expectCNIError(.invalidEnvironmentVariables, "unknown CNI_COMMAND: FROB") {
            _ = try CNIEnvironment(environment(["CNI_COMMAND": "FROB"]))
        }
    }

    @Test func containerIDRules() throws {
        expectCNIError(.unknownContainer, "missing containerID") { try CNIValidation.validateContainerID("") }
        for bad in ["-abc", "_abc", "a b", "a/b", "ab;c", "é"] {
            expectCNIError(.invalidEnvironmentVariables, "invalid characters in containerID") {
                try CNIValidation.validateContainerID(bad)
            }
        }
        for good in ["a", "0abc", "abc-def_g.h", "A1.-_"] { try CNIValidation.validateContainerID(good) }
    }

    @Test func interfaceNameRules() throws {
        let cases: [(String, String)] = [
            ("", "interface name is empty"), ("0123456789abcdef", "interface name is too long"),
            (".", "interface name is . or .."), ("..", "interface name is . or .."),
            ("eth/0", "interface name contains / or : or whitespace characters"),
            ("eth:0", "interface name contains / or : or whitespace characters"),
            ("eth 0", "interface name contains / or : or whitespace characters"),
            ("eth\t0", "interface name contains / or : or whitespace characters"),
        ]
        for (name, message) in cases {
            expectCNIError(.invalidEnvironmentVariables, message) { try CNIValidation.validateInterfaceName(name) }
        }
        try CNIValidation.validateInterfaceName("0123456789abcde")
        try CNIValidation.validateInterfaceName("eth0.100")
    }

    @Test func attachmentValidationUsesTheEnvironmentValues() throws {
        let env = try CNIEnvironment(environment(["CNI_IFNAME": "a:b"]))
        expectCNIError(.invalidEnvironmentVariables) { try env.validateAttachment() }
    }

    @Test func networkNameRules() throws {
        expectCNIError(.invalidNetworkConfig, "missing network name") { try CNIValidation.validateNetworkName("") }
        expectCNIError(.invalidNetworkConfig, "invalid characters found in network name") {
            try CNIValidation.validateNetworkName("my net")
        }
        try CNIValidation.validateNetworkName("pier-net_1.0")
    }
}

@Suite struct CNIArgsTests {
    @Test func parsesPairsAndToleratesUnknownKeys() throws {
        let args = try CNIArgs(
            parsing:
                "IgnoreUnknown=1;K8S_POD_NAMESPACE=ns;K8S_POD_NAME=pod;K8S_POD_INFRA_CONTAINER_ID=cid;IP=10.0.0.5;MAC=c2:11:22:33:44:55;FOO=bar"
        )
        #expect(args.ignoreUnknown)
        #expect(args.podNamespace == "ns")
        #expect(args.podName == "pod")
        #expect(args.podInfraContainerID == "cid")
        #expect(args["IP"] == "10.0.0.5")
        #expect(args["MAC"] == "c2:11:22:33:44:55")
        #expect(args["FOO"] == "bar")
        #expect(args["NOPE"] == nil)
        #expect(args.pairs.count == 7)
    }

    @Test func emptyTextMeansNoArgs() throws {
        #expect(try CNIArgs(parsing: "").pairs.isEmpty)
    }

    @Test func ignoreUnknownAcceptsTrue() throws {
        #expect(try CNIArgs(parsing: "IgnoreUnknown=true").ignoreUnknown)
        #expect(try CNIArgs(parsing: "IgnoreUnknown=0").ignoreUnknown == false)
    }

    @Test func emptyValueIsAllowed() throws {
        #expect(try CNIArgs(parsing: "A=;B=2")["A"] == "")
    }

    /// An empty key names nothing, even where unknown keys are tolerated.
    @Test(arguments: ["=", "=;=;=", "IgnoreUnknown=1;=v", "=v", "A=1;=2"])
    func rejectsEmptyKeys(_ input: String) {
        let error = expectCNIError(.invalidEnvironmentVariables) { _ = try CNIArgs(parsing: input) }
        #expect(error?.msg.hasSuffix("empty key") == true)
    }

    @Test(arguments: ["A", "A=1=2", "A=1;", "A=1;;B=2", ";;", "=1=", "IP=10.0.0.1;MAC"])
    func rejectsPairsWithoutExactlyOneEquals(_ input: String) {
        let error = expectCNIError(.invalidEnvironmentVariables) { _ = try CNIArgs(parsing: input) }
        #expect(error?.msg.hasPrefix("ARGS: invalid pair") == true)
    }

    @Test func malformedArgsDoNotFailEnvironmentParsing() throws {
        let env = try CNIEnvironment([
            "CNI_COMMAND": "ADD", "CNI_CONTAINERID": "c", "CNI_NETNS": "/n", "CNI_IFNAME": "eth0", "CNI_PATH": "/p",
            "CNI_ARGS": "broken",
        ])
        expectCNIError(.invalidEnvironmentVariables) { _ = try env.args() }
    }

    @Test func textRoundTrips() throws {
        #expect(try CNIArgs(parsing: "A=1;B=2").text == "A=1;B=2")
    }
}
