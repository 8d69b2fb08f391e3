import CNI

/// The owner recorded in every lease: the container ID and interface name of an `Attachment`
/// (the network is the lease store's own, so it is not repeated in each record).
public struct LeaseOwner: Sendable, Hashable, CustomStringConvertible {
    public let containerID: String
    public let ifname: String

    /// Not validated, so GC can compare against whatever the runtime lists; call
    /// `validate()` before the values reach a path or a lease file.
    public init(containerID: String, ifname: String) {
        self.containerID = containerID
        self.ifname = ifname
    }

    public init(_ attachment: Attachment) {
        self.init(containerID: attachment.containerID, ifname: attachment.ifName)
    }

    public var description: String { "\(containerID)/\(ifname)" }

    /// libcni's container-ID and interface-name rules (`CNIValidation`), as an IPAM error.
    public func validate() throws(IPAMError) {
        do {
            try CNIValidation.validateContainerID(containerID)
            try CNIValidation.validateInterfaceName(ifname)
        } catch {
            throw IPAMError(.invalidArgument, "invalid lease owner \"\(self)\": \(error.description)")
        }
    }
}
