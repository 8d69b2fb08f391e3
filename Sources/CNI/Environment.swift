/// The verbs a plugin is asked to perform.
public enum CNICommand: String, Sendable, CaseIterable {
    case add = "ADD"
    case delete = "DEL"
    case check = "CHECK"
    case garbageCollect = "GC"
    case status = "STATUS"
    case version = "VERSION"

    /// Mirrors skel's table: GC and STATUS carry no attachment, and CNI_PATH is required by skel even
    /// where the spec calls it optional, because delegation needs it.
    var requiredVariables: [String] {
        switch self {
        case .add, .check: return ["CNI_COMMAND", "CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME", "CNI_PATH"]
        case .delete: return ["CNI_COMMAND", "CNI_CONTAINERID", "CNI_IFNAME", "CNI_PATH"]
        case .garbageCollect, .status: return ["CNI_COMMAND", "CNI_PATH"]
        case .version: return ["CNI_COMMAND"]
        }
    }

    /// The oldest config version in which the verb exists.
    var minimumVersion: String? {
        switch self {
        case .check: return "0.4.0"
        case .garbageCollect, .status: return "1.1.0"
        case .add, .delete, .version: return nil
        }
    }
}

/// The `CNI_*` variables of one invocation, validated the way Go's skel validates them so that
/// runtimes see the same codes and messages from Pier as from the reference plugins.
public struct CNIEnvironment: Sendable, Equatable {
    public var command: CNICommand
    /// Empty for GC, STATUS and VERSION.
    public var containerID: String
    /// Empty when absent (allowed for DEL, where the namespace may already be gone).
    public var netns: String
    public var ifName: String
    /// `CNI_ARGS` as given; its syntax is checked for every verb that names an attachment (one
    /// malformed value fails every plugin alike, whether it reads the keys or not), and the
    /// pairs are parsed by `args()`.
    public var argsText: String
    /// `CNI_PATH` split on `:`, empty entries dropped.
    public var path: [String]
    /// Every variable the plugin was started with; delegates inherit it.
    public var variables: [String: String]

    /// The fixed order in which skel checks the variables, so a message lists them the same way.
    static let orderedNames = ["CNI_COMMAND", "CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME", "CNI_ARGS", "CNI_PATH"]

    public init(_ variables: [String: String]) throws(CNIError) {
        let commandText = variables["CNI_COMMAND"] ?? ""
        let command = CNICommand(rawValue: commandText)
        let required = command?.requiredVariables ?? ["CNI_COMMAND"]
        let missing = CNIEnvironment.orderedNames.filter { required.contains($0) && (variables[$0] ?? "").isEmpty }
        if !missing.isEmpty {
            throw CNIError(
                .invalidEnvironmentVariables, "required env variables [\(missing.joined(separator: ","))] missing")
        }
        guard let command else {
            throw CNIError(.invalidEnvironmentVariables, "unknown CNI_COMMAND: \(commandText)")
        }
        self.command = command
        self.containerID = variables["CNI_CONTAINERID"] ?? ""
        self.netns = variables["CNI_NETNS"] ?? ""
        self.ifName = variables["CNI_IFNAME"] ?? ""
        self.argsText = variables["CNI_ARGS"] ?? ""
        self.path = (variables["CNI_PATH"] ?? "").split(separator: ":").map(String.init)
        self.variables = variables
    }

    public func args() throws(CNIError) -> CNIArgs {
        try CNIArgs(parsing: argsText)
    }

    /// Checked after the config, in skel's order, and only for verbs that name an attachment.
    public func validateAttachment() throws(CNIError) {
        guard [.add, .delete, .check].contains(command) else { return }
        try CNIValidation.validateContainerID(containerID)
        try CNIValidation.validateInterfaceName(ifName)
        _ = try args()
    }
}

/// `CNI_ARGS` (`K1=V1;K2=V2`). Unknown keys are kept rather than rejected: Kubernetes runtimes add
/// keys of their own and the reference plugins effectively all run with `IgnoreUnknown`.
public struct CNIArgs: Sendable, Equatable {
    public private(set) var pairs: [(key: String, value: String)]

    public init(parsing text: String) throws(CNIError) {
        pairs = []
        guard !text.isEmpty else { return }
        for item in text.split(separator: ";", omittingEmptySubsequences: false) {
            let parts = item.split(separator: "=", omittingEmptySubsequences: false)
            guard parts.count == 2 else {
                throw CNIError(
                    .invalidEnvironmentVariables, "ARGS: invalid pair \"\(item)\"",
                    details: "CNI_ARGS entries must be KEY=VALUE separated by ';' and values cannot contain '='")
            }
            // Unknown keys are tolerated, a missing one is not: `=v` names nothing.
            guard !parts[0].isEmpty else {
                throw CNIError(
                    .invalidEnvironmentVariables, "ARGS: invalid pair \"\(item)\": empty key",
                    details: "CNI_ARGS entries must be KEY=VALUE with a non-empty KEY")
            }
            pairs.append((String(parts[0]), String(parts[1])))
        }
    }

    public init(_ pairs: [(String, String)] = []) {
        self.pairs = pairs.map { (key: $0.0, value: $0.1) }
    }

    /// The last value given for `key`, as Go's struct loader ends up with.
    public subscript(key: String) -> String? {
        pairs.last(where: { $0.key == key })?.value
    }

    public var ignoreUnknown: Bool {
        guard let value = self["IgnoreUnknown"] else { return false }
        return value == "1" || value.lowercased() == "true"
    }

    /// Kubernetes pod identity, when a kubelet-era runtime sent it.
    public var podNamespace: String? { self["K8S_POD_NAMESPACE"] }
    public var podName: String? { self["K8S_POD_NAME"] }
    public var podInfraContainerID: String? { self["K8S_POD_INFRA_CONTAINER_ID"] }
    public var podUID: String? { self["K8S_POD_UID"] }

    public var text: String { pairs.map { "\($0.key)=\($0.value)" }.joined(separator: ";") }

    public static func == (lhs: CNIArgs, rhs: CNIArgs) -> Bool {
        lhs.pairs.count == rhs.pairs.count && zip(lhs.pairs, rhs.pairs).allSatisfy { $0 == $1 }
    }
}
