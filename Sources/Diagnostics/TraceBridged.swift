import IPAddressing
import Netlink

extension TraceWalk {
    /// Same subnet: the frame crosses the bridge, to a local port or into a VXLAN tunnel.
    mutating func bridged(_ destination: IPAddress, on bridge: Link) {
        let ports = host.ports(of: bridge.index)
        if let (path, link) = destinationNamespace(of: destination),
            let peer = hostPeer(of: link, in: path), ports.contains(where: { $0.index == peer.index })
        {
            localPort(peer, of: bridge)
            if !failed { destinationInterface(destination, in: path) }
            return
        }
        // No namespace known: the MAC the source resolved, and the port the bridge learned it on.
        if let port = learnedPort(of: destination, on: bridge) {
            localPort(port, of: bridge)
            return
        }
        let tunnels = ports.filter { $0.kind == .vxlan }
        guard !tunnels.isEmpty else {
            let down = ports.filter { $0.kind == .veth && !$0.isUp }.map(\.name)
            if !down.isEmpty {
                add(
                    "bridge.ports", "host", .warn,
                    "ports of \(bridge.name) that are down: \(down.joined(separator: ", ")); if \(destination) is behind one, it is cut off",
                    fix: down.map { "ip link set \($0) up" }.joined(separator: "; "))
            }
            add(
                "bridge.fdb", "host", .info,
                "\(destination) is on no local port of \(bridge.name) that this host knows of: frames are flooded")
            // The destination's own namespace, when known, says whether the address is there at all.
            if let path = destinationNamespace(of: destination)?.0 ?? toNetns {
                destinationInterface(destination, in: path)
            }
            return
        }
        overlay(destination, tunnels: tunnels)
        if !failed, let (path, _) = destinationNamespace(of: destination) {
            destinationInterface(destination, in: path)
        }
    }

    /// The destination's host veth on the same bridge.
    mutating func localPort(_ peer: Link, of bridge: Link) {
        guard peer.isUp else {
            add(
                "destination.veth", "host", .fail, "host veth \(peer.name) of the destination is down",
                fix: "ip link set \(peer.name) up")
            return
        }
        if let state = peer.bridgePortState, state != 3 {
            add(
                "destination.veth", "host", .fail,
                "\(peer.name) is in STP state \(Self.stpState(state)): it does not forward",
                fix: "turn STP off: ip link set \(bridge.name) type bridge stp_state 0")
            return
        }
        if peer.isolatedPort, sourcePeer?.isolatedPort == true {
            add(
                "bridge.isolation", "host", .fail,
                "both ports are isolated bridge ports (portIsolation): the bridge drops frames between them",
                fix:
                    "set \"portIsolation\": false in the network's bridge config, or: bridge link set dev \(peer.name) isolated off"
            )
            return
        }
        let learned = host.fdb.contains { $0.index == peer.index && $0.masterIndex == bridge.index }
        add(
            "destination.veth", "host", .ok,
            "\(peer.name) is a forwarding port of \(bridge.name)"
                + (learned ? "" : "; its MAC is not learned yet (the first frames are flooded)"))
    }

    /// Overlay: the VXLAN device answers ARP from its neighbour table (proxy, no learning),
    /// then tunnels to the VTEP its FDB names for the destination MAC.
    mutating func overlay(_ destination: IPAddress, tunnels: [Link]) {
        let candidates = tunnels.compactMap { device -> (Link, Neighbor)? in
            guard let entry = host.neighbors.first(where: { $0.index == device.index && $0.address == destination })
            else { return nil }
            return (device, entry)
        }
        let names = tunnels.map(\.name).joined(separator: ", ")
        guard let (device, neighbor) = candidates.first, let mac = neighbor.mac,
            !neighbor.state.contains(.failed), !neighbor.state.contains(.incomplete)
        else {
            add(
                "overlay.neighbor", "host", .fail,
                "no neighbour entry for \(destination) on \(names): with learning off the VXLAN ARP proxy cannot answer, so \(destination) never resolves",
                fix:
                    "let pier agent resync the overlay, or add it: ip neigh replace \(destination) lladdr <container MAC> dev \(tunnels[0].name) nud permanent"
            )
            return
        }
        add(
            "overlay.neighbor", "host", .ok,
            "\(destination) is \(mac) on \(device.name) (\(Describe.neighborState(neighbor.state)))")
        guard device.isUp else {
            add(
                "overlay.device", "host", .fail, "VXLAN device \(device.name) is down",
                fix: "ip link set \(device.name) up")
            return
        }
        guard let entry = host.fdb.first(where: { $0.index == device.index && $0.mac == mac && $0.destination != nil }),
            let vtep = entry.destination
        else {
            add(
                "overlay.fdb", "host", .fail,
                "no FDB entry for \(mac) on \(device.name): frames for \(destination) are not tunnelled to any VTEP",
                fix:
                    "let pier agent resync the overlay, or add it: bridge fdb append \(mac) dev \(device.name) dst <remote VTEP IP> self permanent"
            )
            return
        }
        add(
            "overlay.fdb", "host", .ok,
            "\(mac) is tunnelled to VTEP \(vtep) (VNI \(device.vxlan?.vni.map { "\($0)" } ?? "?"))")
        guard let underlay = host.routeLookup(vtep), let out = underlay.outputIndex.flatMap(host.link(index:)) else {
            add(
                "overlay.underlay", "host", .fail, "no route to VTEP \(vtep) on the underlay",
                fix: "check the host's underlay addressing and routes towards \(vtep)")
            return
        }
        guard out.isUp else {
            add(
                "overlay.underlay", "host", .fail, "underlay interface \(out.name) is down",
                fix: "ip link set \(out.name) up")
            return
        }
        add("overlay.underlay", "host", .ok, "VTEP \(vtep) via \(out.name)")
    }
}

extension TraceWalk {
    func learnedPort(of destination: IPAddress, on bridge: Link) -> Link? {
        let resolved = source.neighbors.first {
            $0.address == destination && $0.mac != nil && !$0.state.contains(.failed) && !$0.state.contains(.incomplete)
        }
        guard let mac = resolved?.mac,
            let entry = host.fdb.first(where: { $0.mac == mac && $0.masterIndex == bridge.index }),
            let port = host.link(index: entry.index), port.kind == .veth
        else { return nil }
        return port
    }
}

extension Link {
    var isolatedPort: Bool { bridgePort?.isolated == true }
}
