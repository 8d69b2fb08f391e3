import IPAddressing
import NetNS
import Netlink

extension TraceWalk {
    /// The namespace holding `address`: the one the caller named, else a cached ADD result
    /// that handed the address out; with the link that holds it there.
    func destinationNamespace(of address: IPAddress) -> (String, Link)? {
        var paths: [String] = []
        if let toNetns { paths.append(toNetns) }
        for entry in cached where entry.addresses.contains(where: { IPPrefix($0)?.address == address }) {
            if !entry.netns.isEmpty { paths.append(entry.netns) }
        }
        for path in paths {
            guard let namespace = try? NetworkNamespace.open(path: path),
                let snapshot = try? NamespaceSnapshot.read(namespace: namespace, includeFDB: false)
            else { continue }
            if let holder = snapshot.addresses.first(where: { $0.prefix.address == address }),
                let link = snapshot.link(index: holder.index)
            {
                return (path, link)
            }
            if path == toNetns, let link = snapshot.links.first(where: { $0.kind == .veth }) { return (path, link) }
        }
        return nil
    }

    /// The host end of a link in another namespace.
    func hostPeer(of link: Link, in path: String) -> Link? {
        guard link.kind == .veth, link.linkNetnsID != nil, let index = link.linkIndex,
            let peer = host.link(index: index), peer.kind == .veth, peer.linkIndex == link.index
        else { return nil }
        return peer
    }

    /// Last hop: an interface in the destination namespace holds the address and is up.
    mutating func destinationInterface(_ address: IPAddress, in path: String) {
        guard let namespace = try? NetworkNamespace.open(path: path),
            let snapshot = try? NamespaceSnapshot.read(namespace: namespace, includeFDB: false)
        else {
            add("destination.interface", "destination", .fail, "cannot open the destination namespace \(path)")
            return
        }
        guard let holder = snapshot.addresses.first(where: { $0.prefix.address == address }),
            let link = snapshot.link(index: holder.index)
        else {
            add(
                "destination.interface", "destination", .fail, "no interface in \(path) holds \(address)",
                fix: "recreate the destination's attachment so its address comes back")
            return
        }
        guard link.isUp else {
            add(
                "destination.interface", "destination", .fail, "\(link.name) holding \(address) in \(path) is down",
                fix: "\(ipCommand(path)) link set \(link.name) up")
            return
        }
        add("destination.interface", "destination", .ok, "\(address) is on \(link.name) in \(path), up")
    }
}
