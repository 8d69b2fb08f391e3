extension ContainerReport {
    /// The human form of `pier inspect`.
    public func render(style: Style) -> String {
        var lines: [String] = []
        if let container {
            let status = container.status.map { "  \($0)" } ?? ""
            lines.append(
                style.bold("Container \(container.name)") + "  id \(shortID(container.id))\(status)  netns \(netns)")
        } else {
            lines.append(style.bold("Namespace \(netns)"))
        }
        for interface in interfaces {
            lines.append("")
            lines += interface.render(style: style)
        }
        return lines.joined(separator: "\n")
    }
}

extension InterfaceReport {
    func render(style: Style) -> [String] {
        let state = state == "up" ? style.green(state) : (name == "lo" ? state : style.red(state))
        var lines = [
            style.bold(name) + "  \(kind ?? "device")  mac \(mac ?? "-")  mtu \(mtu.map { "\($0)" } ?? "-")  \(state)"
        ]
        var facts: [[String]] = []
        if !addresses.isEmpty { facts.append(["addresses", addresses.joined(separator: ", ")]) }
        if let hostPeer {
            var peer = "\(hostPeer.name) (\(hostPeer.state))"
            if let bridge = hostPeer.bridge { peer += " on bridge \(bridge)" }
            if hostPeer.isolated == true { peer += ", isolated port" }
            if hostPeer.hairpin == true { peer += ", hairpin" }
            facts.append(["host peer", peer])
        }
        if let attachment {
            facts.append([
                "attachment", "\(attachment.network) \(shortID(attachment.containerId))/\(attachment.ifName)",
            ])
        }
        if let origin {
            facts.append(["plugins", origin.plugins.isEmpty ? "-" : origin.plugins.joined(separator: " → ")])
            if let file = origin.configFile { facts.append(["config", file]) }
            if let file = origin.cacheFile { facts.append(["cached result", file]) }
        }
        lines += TextTable(["", ""], rows: facts).lines(indent: "  ").dropFirst()
        if !routes.isEmpty {
            lines.append("  routes")
            let rows = routes.map { [$0.destination, $0.gateway.map { "via \($0)" } ?? "", $0.scope, $0.source ?? ""] }
            lines += TextTable(["DESTINATION", "GATEWAY", "SCOPE", "SOURCE"], rows: rows).lines(indent: "    ")
        }
        if !neighbors.isEmpty {
            lines.append("  neighbours")
            let rows = neighbors.map { [$0.address, $0.mac ?? "-", $0.state] }
            lines += TextTable(["ADDRESS", "MAC", "STATE"], rows: rows).lines(indent: "    ")
        }
        if !publishedPorts.isEmpty {
            lines.append("  published ports")
            let rows = publishedPorts.map {
                [
                    $0.protocol, hostPort($0.hostAddress ?? "*", $0.hostPort),
                    hostPort($0.containerAddress, $0.containerPort),
                ]
            }
            lines += TextTable(["PROTO", "HOST", "CONTAINER"], rows: rows).lines(indent: "    ")
        }
        return lines
    }
}

/// `address:port`, an IPv6 address in brackets (`[fd00::2]:80`), as URLs and Docker write them.
func hostPort(_ address: String, _ port: some BinaryInteger) -> String {
    address.contains(":") ? "[\(address)]:\(port)" : "\(address):\(port)"
}
