import Foundation

/// A throwaway network namespace that plays a host (or a container) in integration tests.
///
/// Created with `ip netns add` under a unique `pier-t-` name and destroyed by `destroy()`,
/// which also removes every link left inside (they die with the namespace). Tests never touch
/// the root namespace: everything they create lives in test hosts.
public final class TestHost: @unchecked Sendable {
    public let name: String
    public var path: String { "/run/netns/\(name)" }
    private var destroyed = false

    public init(prefix: String = "pier-t") throws {
        name = "\(prefix)-\(uniqueTag())"
        try PierTestSupport.mustRun(["ip", "netns", "add", name])
        try PierTestSupport.mustRun(["ip", "-n", name, "link", "set", "lo", "up"])
    }

    /// Runs a program inside this namespace (`ip netns exec` also gives it this netns's /sys).
    @discardableResult
    public func run(
        _ argv: [String], stdin: String? = nil, environment: [String: String]? = nil,
        timeout: Double = 60
    ) throws -> CommandResult {
        try runCommand(
            ["ip", "netns", "exec", name] + argv, stdin: stdin, environment: environment,
            timeout: timeout)
    }

    /// Runs a program inside this namespace and throws unless it exits 0.
    @discardableResult
    public func mustRun(_ argv: [String], stdin: String? = nil) throws -> CommandResult {
        let result = try run(argv, stdin: stdin)
        guard result.succeeded else { throw CommandFailure(command: argv, result: result) }
        return result
    }

    /// `ip -j -n NAME <args>` decoded: the independent oracle of kernel state.
    public func ipJSON(_ args: [String]) throws -> [[String: Any]] {
        let result = try PierTestSupport.mustRun(["ip", "-j", "-d", "-n", name] + args)
        if result.stdout.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty { return [] }
        return (try result.json() as? [[String: Any]]) ?? []
    }

    /// `bridge -j <args>` inside this namespace.
    public func bridgeJSON(_ args: [String]) throws -> [[String: Any]] {
        let result = try mustRun(["bridge", "-j"] + args)
        if result.stdout.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty { return [] }
        return (try result.json() as? [[String: Any]]) ?? []
    }

    /// `nft -j <args>` inside this namespace; returns the `nftables` array.
    public func nftJSON(_ args: [String]) throws -> [[String: Any]] {
        let result = try mustRun(["nft", "-j"] + args)
        let object = try result.json() as? [String: Any]
        return (object?["nftables"] as? [[String: Any]]) ?? []
    }

    /// The link named `name` as `ip -j -d link show` reports it, or nil when absent.
    public func link(_ linkName: String) throws -> [String: Any]? {
        let result = try runCommand(["ip", "-j", "-d", "-n", name, "link", "show", "dev", linkName])
        guard result.succeeded else { return nil }
        return (try result.json() as? [[String: Any]])?.first
    }

    /// Addresses (`local/prefixlen`) on a link, as the kernel reports them; link-local ones
    /// (which the kernel adds by itself) only when asked.
    public func addresses(of linkName: String, includeLinkLocal: Bool = false) throws -> [String] {
        let links = try ipJSON(["addr", "show", "dev", linkName])
        let infos = links.first?["addr_info"] as? [[String: Any]] ?? []
        return infos.compactMap { info in
            guard let local = info["local"] as? String, let prefix = info["prefixlen"] as? Int else { return nil }
            if !includeLinkLocal && (info["scope"] as? String) == "link" { return nil }
            return "\(local)/\(prefix)"
        }
    }

    /// Names of every link in this namespace (lo included).
    public func linkNames() throws -> [String] {
        try ipJSON(["link", "show"]).compactMap { $0["ifname"] as? String }
    }

    /// True when one ICMP echo to `address` is answered (from inside this namespace).
    public func canPing(_ address: String, timeoutSeconds: Int = 2) -> Bool {
        let flag = address.contains(":") ? "-6" : "-4"
        let result = try? run(["ping", flag, "-c", "1", "-W", String(timeoutSeconds), address])
        return result?.succeeded ?? false
    }

    /// Deletes the namespace; idempotent. Call it in `defer` so failures clean up too.
    public func destroy() {
        guard !destroyed else { return }
        destroyed = true
        _ = try? runCommand(["ip", "netns", "delete", name])
    }

    deinit { destroy() }
}

/// Runs `body` with fresh test hosts that are destroyed afterwards, whatever happens.
public func withTestHosts<T>(_ count: Int, _ body: ([TestHost]) throws -> T) throws -> T {
    var hosts: [TestHost] = []
    defer { for host in hosts { host.destroy() } }
    for _ in 0..<count { hosts.append(try TestHost()) }
    return try body(hosts)
}

/// Joins two test hosts with a veth pair (`ifA` in `a`, `ifB` in `b`), both up.
/// The pair is created inside `a`, so nothing ever appears in the root namespace.
public func connect(_ a: TestHost, _ ifA: String, to b: TestHost, _ ifB: String) throws {
    try a.mustRun(["ip", "link", "add", ifA, "type", "veth", "peer", "name", ifB, "netns", b.name])
    try a.mustRun(["ip", "link", "set", ifA, "up"])
    try b.mustRun(["ip", "link", "set", ifB, "up"])
}
