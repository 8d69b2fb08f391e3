import IPAddressing
import PierTables

extension TraceWalk {
    /// A service VIP: the slots of `service_vips_*` (or their affinity twins) DNAT it to one of
    /// the service's members. Returns the member the walk follows (the first in slot order;
    /// every member is named), or nil when `destination` is no VIP.
    mutating func serviceHop(_ destination: IPAddress) -> IPAddress? {
        let suffix = destination.family == .v4 ? "v4" : "v6"
        let maps =
            (destination.family == .v4
            ? [ServiceRules.vipsV4, ServiceRules.vipsAffinityV4] : [ServiceRules.vipsV6, ServiceRules.vipsAffinityV6])
            .map(\.path.description)
        let slots = firewall.elements.filter { maps.contains($0.set) && $0.key.first == "\(destination)" }
        guard let first = slots.first else { return nil }
        var members: [String] = []
        for slot in slots {
            if let member = slot.value?.first, !members.contains(member) { members.append(member) }
        }
        let affinity = first.set == maps[1]
        let rule = "pier:services-\(suffix)-vips" + (affinity ? "-affinity" : "")
        let service = first.comment ?? "a service"
        guard firewall.ruleComments["service_prerouting"]?.contains(rule) ?? false else {
            add(
                "nat.service", "host", .fail,
                "\(destination) is the VIP of \(service), but rule inet pier service_prerouting \"\(rule)\" is missing",
                fix: "pier firewall reload (it re-applies every service)")
            return nil
        }
        add(
            "nat.service", "host", .ok,
            "\(destination) is the VIP of \(service): \(slots.count) slots in \(first.set) spread new connections over "
                + "\(members.joined(separator: ", ")); following \(members[0])")
        return IPAddress(members[0])
    }
}
