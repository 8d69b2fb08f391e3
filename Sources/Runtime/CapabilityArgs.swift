import CNI
import IPAddressing

/// Command-line options that become CNI capability arguments (CONVENTIONS.md): `-p` → `portMappings`,
/// `--ip` → `ips`, `--mac` → `mac`. Plugins only see the ones their `capabilities` ask for.
public enum CapabilityArgs {
    /// `[hostIP:]hostPort:containerPort[/tcp|udp|sctp]`; an IPv6 host IP goes in brackets
    /// (`[::1]:8080:80`), as with Docker.
    public static func portMapping(_ text: String) throws(RuntimeError) -> JSONValue {
        var spec = Substring(text)
        var proto = "tcp"
        if let slash = spec.lastIndex(of: "/") {
            proto = spec[spec.index(after: slash)...].lowercased()
            spec = spec[..<slash]
            guard ["tcp", "udp", "sctp"].contains(proto) else {
                throw RuntimeError.invalidArgument("invalid protocol in -p \(text): use tcp, udp or sctp")
            }
        }
        var hostIP: String?
        if spec.hasPrefix("["), let close = spec.firstIndex(of: "]") {
            hostIP = String(spec[spec.index(after: spec.startIndex)..<close])
            spec = spec[spec.index(after: close)...]
            guard spec.hasPrefix(":") else { throw RuntimeError.invalidArgument("invalid -p \(text)") }
            spec = spec.dropFirst()
        }
        let parts = spec.split(separator: ":", omittingEmptySubsequences: false)
        let hostPortText: Substring
        let containerPortText: Substring
        switch (parts.count, hostIP) {
        case (2, _):
            hostPortText = parts[0]
            containerPortText = parts[1]
        case (3, nil):
            hostIP = String(parts[0])
            hostPortText = parts[1]
            containerPortText = parts[2]
        default:
            throw RuntimeError.invalidArgument(
                "invalid -p \(text): expected [hostIP:]hostPort:containerPort[/protocol]")
        }
        guard let hostPort = port(hostPortText), let containerPort = port(containerPortText) else {
            throw RuntimeError.invalidArgument("invalid port in -p \(text): ports are 1 to 65535")
        }
        var mapping = JSONObject()
        mapping["hostPort"] = .integer(hostPort)
        mapping["containerPort"] = .integer(containerPort)
        mapping["protocol"] = .string(proto)
        if let hostIP, !hostIP.isEmpty {
            guard IPAddress(hostIP) != nil else {
                throw RuntimeError.invalidArgument("invalid host IP \(hostIP) in -p \(text)")
            }
            mapping["hostIP"] = .string(hostIP)
        }
        return .object(mapping)
    }

    private static func port(_ text: Substring) -> Int? {
        guard let value = Int(text), (1...65535).contains(value) else { return nil }
        return value
    }

    /// `--dns` must be addresses, `--dns-search` domain names, `--dns-option` one resolv.conf word each.
    public static func validateDNS(servers: [String], search: [String], options: [String]) throws(RuntimeError) {
        for server in servers where IPAddress(server) == nil {
            throw RuntimeError.invalidArgument("invalid --dns \(server): expected an IP address")
        }
        for domain in search where !isDomainName(domain) {
            throw RuntimeError.invalidArgument("invalid --dns-search \(domain): expected a domain name")
        }
        for option in options where option.isEmpty || option.contains(where: { $0 == " " || $0 == "\t" || $0 == "\n" })
        {
            throw RuntimeError.invalidArgument("invalid --dns-option \"\(option)\": one word like ndots:2")
        }
    }

    static func isDomainName(_ text: String) -> Bool {
        let name = text.hasSuffix(".") ? String(text.dropLast()) : text
        guard !name.isEmpty, name.utf8.count <= 253 else { return false }
        return name.split(separator: ".", omittingEmptySubsequences: false).allSatisfy { label in
            (1...63).contains(label.utf8.count)
                && label.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-" || $0 == "_") }
        }
    }

    /// The CNI `dns` capability (`{"servers": […], "searches": […], "options": […]}`), nil when empty.
    public static func dns(_ process: ProcessOptions) -> JSONValue? {
        var object = JSONObject()
        if let servers = process.dnsServers, !servers.isEmpty {
            object["servers"] = .array(servers.map { .string($0) })
        }
        if let search = process.dnsSearch, !search.isEmpty { object["searches"] = .array(search.map { .string($0) }) }
        if let options = process.dnsOptions, !options.isEmpty {
            object["options"] = .array(options.map { .string($0) })
        }
        return object.isEmpty ? nil : .object(object)
    }

    /// The capability object for one attachment.
    public static func build(ports: [String], ips: [String], mac: String?) throws(RuntimeError) -> JSONObject {
        var object = JSONObject()
        if !ports.isEmpty {
            var mappings: [JSONValue] = []
            for text in ports { mappings.append(try portMapping(text)) }
            object["portMappings"] = .array(mappings)
        }
        if !ips.isEmpty {
            for ip in ips where IPAddress(ip) == nil && IPPrefix(ip) == nil {
                throw RuntimeError.invalidArgument("invalid --ip \(ip): expected an address, optionally /prefix")
            }
            object["ips"] = .array(ips.map { .string($0) })
        }
        if let mac {
            let groups = mac.split(separator: ":")
            guard groups.count == 6, groups.allSatisfy({ $0.count == 2 && UInt8($0, radix: 16) != nil }) else {
                throw RuntimeError.invalidArgument(
                    "invalid --mac \(mac): expected six hex pairs like c2:11:22:33:44:55")
            }
            object["mac"] = .string(mac)
        }
        return object
    }
}
