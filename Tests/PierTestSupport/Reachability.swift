import Foundation

/// The MAC `host`'s neighbour table holds for `address`, if any.
public func neighbourMAC(of address: String, in host: TestHost) throws -> String? {
    try host.ipJSON(["neigh", "show", "to", address]).first?["lladdr"] as? String
}

/// True when one echo to `address` is answered within 0.2 s: polling in short steps measures
/// how soon the address is reachable, not how long a lost echo is waited for.
public func answers(_ host: TestHost, _ address: String) -> Bool {
    let flag = address.contains(":") ? "-6" : "-4"
    return (try? host.run(["ping", flag, "-c", "1", "-W", "0.2", address]))?.succeeded ?? false
}

/// Polls `condition` until it holds or `seconds` have passed since `start`.
public func eventually(within seconds: Double, since start: Date, _ condition: () throws -> Bool) rethrows -> Bool {
    while Date().timeIntervalSince(start) < seconds {
        if try condition() { return true }
        usleep(20_000)
    }
    return false
}
