extension NetworkReport {
    /// The human form of `pier network inspect`.
    public func render(style: Style) -> String {
        var lines = [style.bold("Network \(name)") + "  plugins \(plugins.joined(separator: " → "))"]
        var facts: [[String]] = []
        if let configFile { facts.append(["config", configFile]) }
        if !subnets.isEmpty { facts.append(["subnets", subnets.joined(separator: ", ")]) }
        if !gateways.isEmpty { facts.append(["gateways", gateways.joined(separator: ", ")]) }
        if let bridge {
            let state = bridge.exists ? "\(bridge.state ?? "?"), mac \(bridge.mac ?? "-")" : style.red("missing")
            facts.append(["bridge", "\(bridge.name) (\(state))"])
            if !bridge.addresses.isEmpty {
                facts.append(["bridge addresses", bridge.addresses.joined(separator: ", ")])
            }
            facts.append(["ports", bridge.ports.isEmpty ? "none" : bridge.ports.joined(separator: ", ")])
        }
        let masquerade = masquerade.configured ? "on" : "off"
        let inSet = self.masquerade.subnets.isEmpty ? "none" : self.masquerade.subnets.joined(separator: ", ")
        facts.append(["masquerade", "\(masquerade) (in masq sets: \(inSet))"])
        facts.append([
            "isolation",
            "\(isolation.configured ? "on" : "off") (isolated_bridges: \(isolation.isolatedBridge ? "yes" : "no"), same_bridge: \(isolation.sameBridge ? "yes" : "no"))",
        ])
        lines += TextTable(["", ""], rows: facts).lines(indent: "  ").dropFirst()
        for device in vxlan {
            lines.append("")
            lines.append(
                style.bold("vxlan \(device.name)")
                    + "  vni \(device.vni.map { "\($0)" } ?? "-")  local \(device.local ?? "-")  \(device.state)")
            let rows = device.fdb.map { [$0.mac, $0.destination ?? "-", $0.state] }
            lines += TextTable(["FDB MAC", "VTEP", "STATE"], rows: rows).lines(indent: "  ")
            let neighbours = device.neighbors.map { [$0.address, $0.mac ?? "-", $0.state] }
            if !neighbours.isEmpty {
                lines += TextTable(["NEIGHBOUR", "MAC", "STATE"], rows: neighbours).lines(indent: "  ")
            }
        }
        lines.append("")
        lines.append(style.bold("Attachments"))
        lines += TextTable(
            ["CONTAINER", "IFNAME", "HOST VETH", "ADDRESSES", "STATE"],
            rows: attachments.map {
                [
                    shortID($0.containerId), $0.ifName, $0.hostVeth ?? "-",
                    $0.addresses.joined(separator: ","),
                    $0.interfaceMissing ? style.red("interface gone") : $0.live ? "live" : style.yellow("stale"),
                ]
            }
        ).lines(indent: "  ")
        lines.append("")
        lines.append(style.bold("Leases"))
        lines += TextTable(
            ["ADDRESS", "CONTAINER", "IFNAME", "STATE"],
            rows: leases.map {
                [$0.address, shortID($0.containerId), $0.ifName, $0.live ? "live" : style.yellow("stale")]
            }
        ).lines(indent: "  ")
        if !elements.isEmpty {
            lines.append("")
            lines.append(style.bold("nftables elements"))
            lines += TextTable(
                ["SET", "KEY", "VALUE", "TAG"],
                rows: elements.map {
                    [
                        $0.set, $0.key.joined(separator: " . "), $0.value?.joined(separator: " . ") ?? "",
                        $0.comment ?? "",
                    ]
                }
            ).lines(indent: "  ")
        }
        return lines.joined(separator: "\n")
    }
}
