import IPAddressing
import Netlink

/// Text forms of kernel values, shared by every report so they always read the same.
enum Describe {
    static func state(_ link: Link) -> String {
        switch link.operationalState {
        case .up: "up"
        case .down: "down"
        case .lowerLayerDown: "lowerlayerdown"
        case .dormant: "dormant"
        case .testing: "testing"
        case .notPresent: "notpresent"
        case .unknown, nil: link.isUp ? "unknown" : "down"
        }
    }

    static func neighborState(_ state: NeighborState) -> String {
        let names: [(NeighborState, String)] = [
            (.incomplete, "incomplete"), (.reachable, "reachable"), (.stale, "stale"), (.delay, "delay"),
            (.probe, "probe"), (.failed, "failed"), (.noARP, "noarp"), (.permanent, "permanent"),
        ]
        let parts = names.filter { state.contains($0.0) }.map(\.1)
        return parts.isEmpty ? "none" : parts.joined(separator: ",")
    }

    static func scope(_ scope: RouteScope?) -> String {
        switch scope {
        case .universe, nil: "global"
        case .site: "site"
        case .link: "link"
        case .host: "host"
        case .nowhere: "nowhere"
        }
    }

    static func route(_ route: Route, in snapshot: NamespaceSnapshot) -> RouteReport {
        RouteReport(
            destination: route.isDefault ? "default" : "\(route.destination)", gateway: route.gateway.map { "\($0)" },
            device: route.outputIndex.flatMap { snapshot.link(index: $0)?.name }, source: route.source.map { "\($0)" },
            metric: route.metric, scope: scope(route.scope), table: route.table)
    }

    static func neighbor(_ neighbor: Neighbor, in snapshot: NamespaceSnapshot) -> NeighborReport {
        NeighborReport(
            address: "\(neighbor.address)", mac: neighbor.mac.map { "\($0)" },
            device: snapshot.link(index: neighbor.index)?.name, state: neighborState(neighbor.state))
    }

    /// Addresses a user cares about: link-local IPv6 addresses are noise in reports.
    static func addresses(of index: Int32, in snapshot: NamespaceSnapshot) -> [String] {
        snapshot.addresses(of: index).filter { !$0.prefix.address.isLinkLocal }.map { "\($0.prefix)" }
    }
}

/// Docker-style short form of a 64-hex-digit container ID; other IDs are shown whole.
func shortID(_ id: String) -> String {
    id.count == 64 && id.allSatisfy(\.isHexDigit) ? String(id.prefix(12)) : id
}
