import Glibc
import PierState
import Runtime

/// The `-p` forms Docker users type that the capability arguments do not carry directly: a container
/// port alone (a free host port is chosen) and ranges (`8000-8001:80-81`, one mapping per port).
/// Everything becomes `[hostIP:]hostPort:containerPort[/proto]`.
enum PortSpec {
    static func expand(_ specs: [String]) throws(RuntimeError) -> [String] {
        var expanded: [String] = []
        for spec in specs { expanded += try expand(spec) }
        return expanded
    }

    static func expand(_ text: String) throws(RuntimeError) -> [String] {
        var body = Substring(text)
        var suffix = ""
        if let slash = body.lastIndex(of: "/") {
            suffix = String(body[slash...])
            body = body[..<slash]
        }
        // The container port is what follows the last colon (an IPv6 host IP is bracketed).
        let colon = body.lastIndex(of: ":")
        let containerText = colon.map { body[body.index(after: $0)...] } ?? body
        let prefix = colon.map { body[..<$0] }
        guard let containerPorts = range(containerText) else {
            throw RuntimeError.invalidArgument("invalid port in -p \(text): ports are 1 to 65535")
        }
        // `[hostIP:]hostPort` or `hostIP:` (empty host port) or nothing.
        var hostIP: Substring?
        var hostText: Substring?
        if let prefix {
            if let hostColon = prefix.lastIndex(of: ":"), !prefix.hasSuffix("]") {
                hostIP = prefix[..<hostColon]
                hostText = prefix[prefix.index(after: hostColon)...]
            } else if prefix.hasPrefix("[") || prefix.contains(".") {
                hostIP = prefix
            } else {
                hostText = prefix
            }
        }
        let proto = suffix.isEmpty ? "tcp" : String(suffix.dropFirst()).lowercased()
        let hostPorts: [Int]
        if let hostText, !hostText.isEmpty {
            guard let ports = range(hostText) else {
                throw RuntimeError.invalidArgument("invalid port in -p \(text): ports are 1 to 65535")
            }
            guard ports.count == containerPorts.count else {
                throw RuntimeError.invalidArgument(
                    "invalid -p \(text): the host and container port ranges must be the same size")
            }
            hostPorts = ports
        } else {
            hostPorts = try containerPorts.map { _ throws(RuntimeError) in try freePort(proto: proto) }
        }
        let ip = hostIP.map { "\($0):" } ?? ""
        return zip(hostPorts, containerPorts).map { "\(ip)\($0):\($1)\(suffix)" }
    }

    /// `80` or `8000-8001`.
    private static func range(_ text: Substring) -> [Int]? {
        let bounds = text.split(separator: "-", omittingEmptySubsequences: false)
        guard (1...2).contains(bounds.count), let low = Int(bounds[0]), let last = bounds.last, let high = Int(last),
            1 <= low, low <= high, high <= 65535
        else { return nil }
        return Array(low...high)
    }

    /// A port no socket in this namespace holds, from the kernel's ephemeral range (as Docker picks).
    static func freePort(proto: String) throws(RuntimeError) -> Int {
        let type = proto == "udp" ? Int32(SOCK_DGRAM.rawValue) : Int32(SOCK_STREAM.rawValue)
        let descriptor = socket(AF_INET6, type | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard descriptor >= 0 else { throw RuntimeError.system("socket", errno: errno) }
        defer { close(descriptor) }
        var off: Int32 = 0
        _ = setsockopt(descriptor, Int32(IPPROTO_IPV6), IPV6_V6ONLY, &off, socklen_t(MemoryLayout<Int32>.size))
        var address = sockaddr_in6()
        address.sin6_family = sa_family_t(AF_INET6)
        var length = socklen_t(MemoryLayout<sockaddr_in6>.size)
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(descriptor, $0, length) }
        }
        guard bound == 0 else { throw RuntimeError.system("finding a free host port", errno: errno) }
        let named = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(descriptor, $0, &length) }
        }
        guard named == 0 else { throw RuntimeError.system("finding a free host port", errno: errno) }
        return Int(UInt16(bigEndian: address.sin6_port))
    }
}

/// `-e K=V`, `-e K` (copied from pier's environment when set, as Docker does) and `--env-file`.
enum EnvironmentOptions {
    static func resolve(env: [String], files: [String]) throws(RuntimeError) -> [String] {
        var entries: [String] = []
        for file in files {
            guard let bytes = try? FileSystem.read(file) else {
                throw RuntimeError.invalidArgument("cannot read --env-file \(file)")
            }
            let text = String(decoding: bytes, as: UTF8.self)
            for line in text.split(separator: "\n") {
                let trimmed = line.drop { $0 == " " || $0 == "\t" }
                if trimmed.isEmpty || trimmed.hasPrefix("#") { continue }
                entries.append(String(trimmed))
            }
        }
        entries += env
        let inherited = processEnvironment()
        var resolved: [String] = []
        for entry in entries {
            if entry.hasPrefix("=") { throw RuntimeError.invalidArgument("invalid environment variable: \(entry)") }
            if entry.contains("=") {
                resolved.append(entry)
            } else if let value = inherited[entry] {
                resolved.append("\(entry)=\(value)")
            }
        }
        return resolved
    }
}

/// Signal names as `kill -s` and Docker take them: KILL, SIGKILL, 9.
enum SignalNames {
    static let table: [String: Int32] = [
        "HUP": SIGHUP, "INT": SIGINT, "QUIT": SIGQUIT, "KILL": SIGKILL, "USR1": SIGUSR1, "USR2": SIGUSR2,
        "TERM": SIGTERM, "ALRM": SIGALRM, "CONT": SIGCONT, "STOP": SIGSTOP, "WINCH": SIGWINCH, "PIPE": SIGPIPE,
    ]

    static func number(_ text: String) -> Int32? {
        if let value = Int32(text), (1...64).contains(value) { return value }
        let upper = text.uppercased()
        return table[upper.hasPrefix("SIG") ? String(upper.dropFirst(3)) : upper]
    }
}
