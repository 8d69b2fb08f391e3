import IPAddressing

/// One address lease of host-local's on-disk layout (`<dataDir>/<network>/<ip>`).
public struct Lease: Sendable, Equatable, Codable {
    public var address: String
    public var containerID: String
    /// Empty for legacy leases that hold only the container ID.
    public var ifName: String
    public var path: String
}

/// Reads a network's lease directory (see plugins/ipam/README.md, "On-disk layout").
public struct LeaseReader: Sendable {
    public let dataDirectory: String

    public init(dataDirectory: String) { self.dataDirectory = dataDirectory }

    public func directory(network: String) -> String { dataDirectory + "/" + network }

    /// Networks that have a lease directory here.
    public func networks() -> [String] {
        FileList.names(in: dataDirectory).filter { FileList.isDirectory(dataDirectory + "/" + $0) }
    }

    public func leases(network: String) -> [Lease] {
        let directory = directory(network: network)
        return FileList.names(in: directory).compactMap { name in
            // Only address-named files are leases (not `lock`, `last_reserved_ip.N`, temporaries).
            guard IPAddress(name) != nil, let text = FileList.readText(directory + "/" + name) else { return nil }
            let lines = text.split(whereSeparator: { $0 == "\r\n" || $0 == "\n" || $0 == "\r" })
                .map { $0.trimmingWhitespace() }
            return Lease(
                address: name, containerID: lines.first ?? "", ifName: lines.count > 1 ? lines[1] : "",
                path: directory + "/" + name)
        }
    }
}

extension Substring {
    func trimmingWhitespace() -> String {
        String(drop(while: \.isWhitespace).reversed().drop(while: \.isWhitespace).reversed())
    }
}
