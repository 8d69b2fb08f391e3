import IPAddressing

/// One attachment of a container to a network, as libcni names it: the network, the container
/// ID and the interface name inside the container. Plugins derive every kernel object and owner
/// tag of the attachment from it (PluginSupport), IPAM records its container ID and interface
/// as a lease's owner, GC is told which ones are still valid, and the runtime keeps one per
/// network a container joins.
public struct Attachment: Sendable, Hashable, CustomStringConvertible {
    public let network: String
    public let containerID: String
    public let ifName: String

    /// Not validated, so GC can compare against whatever a runtime lists; `validate()` before
    /// the values name a file or a kernel object.
    public init(network: String, containerID: String, ifName: String) {
        self.network = network
        self.containerID = containerID
        self.ifName = ifName
    }

    /// The attachment a plugin invocation is about (the runner has validated it already).
    public init(_ request: CNIRequest) {
        self.init(network: request.config.name, containerID: request.containerID, ifName: request.ifName)
    }

    public var description: String { "\(network) \(containerID)/\(ifName)" }

    /// libcni's rules, in its order: container ID, network name, interface name.
    public func validate() throws(CNIError) {
        try CNIValidation.validateContainerID(containerID)
        try CNIValidation.validateNetworkName(network)
        try CNIValidation.validateInterfaceName(ifName)
    }
}

/// The name rules of libcni's `utils` package, with its codes and messages.
public enum CNIValidation {
    /// `^[a-zA-Z0-9][a-zA-Z0-9_.\-]*$`, the rule container IDs and network names share. It
    /// rejects `/` and any name starting with `.`, so such a name is safe in a path. Checked by
    /// hand to keep regex machinery out of plugin start-up.
    public static func isValidIdentifier(_ text: String) -> Bool {
        guard let first = text.utf8.first, isAlphanumeric(first) else { return false }
        return text.utf8.allSatisfy {
            isAlphanumeric($0) || $0 == UInt8(ascii: "_") || $0 == UInt8(ascii: ".") || $0 == UInt8(ascii: "-")
        }
    }

    private static func isAlphanumeric(_ byte: UInt8) -> Bool {
        (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(byte) || (UInt8(ascii: "A")...UInt8(ascii: "Z")).contains(byte)
            || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte)
    }

    public static func validateContainerID(_ containerID: String) throws(CNIError) {
        guard !containerID.isEmpty else { throw CNIError(.unknownContainer, "missing containerID") }
        guard isValidIdentifier(containerID) else {
            throw CNIError(.invalidEnvironmentVariables, "invalid characters in containerID", details: containerID)
        }
    }

    public static func validateNetworkName(_ name: String) throws(CNIError) {
        guard !name.isEmpty else { throw CNIError(.invalidNetworkConfig, "missing network name") }
        guard isValidIdentifier(name) else {
            throw CNIError(.invalidNetworkConfig, "invalid characters found in network name", details: name)
        }
    }

    /// `InterfaceName`'s rule, worded as libcni words it.
    public static func validateInterfaceName(_ name: String) throws(CNIError) {
        switch InterfaceName.problem(name) {
        case nil:
            return
        case .empty:
            throw CNIError(.invalidEnvironmentVariables, "interface name is empty")
        case .tooLong:
            throw CNIError(
                .invalidEnvironmentVariables, "interface name is too long",
                details: "interface name should be less than 16 characters")
        case .dotName:
            throw CNIError(.invalidEnvironmentVariables, "interface name is . or ..")
        case .forbiddenCharacter:
            throw CNIError(
                .invalidEnvironmentVariables, "interface name contains / or : or whitespace characters")
        }
    }
}
