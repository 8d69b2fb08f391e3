import Firewall
import Foundation
import Glibc
import Netlink
import PluginSupport

@testable import NetNS

/// A kernel for plugin cores, played in memory behind `PluginKernel`: rtnetlink sessions over
/// `RecordingTransport`s whose responder answers from a small model of links and addresses per
/// namespace, nf_tables and conntrack clients over one that acknowledges batches, and sysctls
/// in a dictionary. Every request that changes something is decoded (independently of the
/// Netlink module's encoder) into one line of `log`, e.g. `host: create veth vethab12cd34
/// master pier0 peer eth0 in ctr`, so tests read the plan a core sent; `fail` makes a chosen
/// request fail with a chosen errno, as the kernel would.
///
/// Namespaces are tokens: handles on this process's own non-network namespace files (uts,
/// ipc, ...), which nothing can enter as a network namespace. A kernel access that bypassed
/// the seam would fail on them instead of touching the machine running the tests.
final class FakeKernel {
    struct FakeLink {
        var index: Int32
        var name: String
        var kind: String?
        var flags: UInt32 = 0
        var master: Int32?
        var alias: String?
        var mac: [UInt8]
        var mtu: UInt32 = 1500
        /// IFLA_LINK: a veth's peer index.
        var peer: Int32?
    }

    struct FakeAddress: Equatable {
        var index: Int32
        var family: UInt8
        var bytes: [UInt8]
        var length: UInt8
    }

    /// Links and addresses per namespace name: "host", then one per container path.
    private(set) var links: [String: [FakeLink]] = ["host": []]
    private(set) var addresses: [String: [FakeAddress]] = [:]
    private(set) var sysctls: [String: [String: String]] = [:]
    /// One line per request that changes kernel state, in order; failed ones end in " -> errno N".
    private(set) var log: [String] = []
    /// nf_tables batches committed, each as one line per message (`newsetelem inet pier dnat_v4`).
    private(set) var batches: [[String]] = []
    /// Requests of any kind sent to the fake (rtnetlink and nf_tables) and sysctl sessions.
    private(set) var requestCount = 0

    /// nf_tables dumps come back flagged inconsistent (NLM_F_DUMP_INTR), as while other
    /// processes keep changing the ruleset.
    var interruptNetfilterDumps = false

    /// What committed batches made of `inet pier` and `bridge pier`: tables ("family table")
    /// and the user data (comment) of each rule per "family table chain", answered to rule
    /// dumps, so a second ADD sees the layout the first one made.
    private var tables: Set<String> = []
    private var ruleUserData: [String: [[UInt8]]] = [:]

    private var failures: [(match: String, errno: Int32)] = []
    private var nextIndex: Int32 = 10
    private var tokens: [(name: String, namespace: NetworkNamespace)] = []
    private var tokenKinds = ["uts", "ipc", "cgroup", "mnt", "user", "pid", "time"]
    /// Short names for container paths in the log ("ctr" for the first).
    private var shortNames: [String: String] = ["host": "host"]

    init() {
        addLink("lo", kind: nil, in: "host", flags: 0x1 | 0x8 | 0x1_0000)
    }

    // MARK: - Scripting

    /// Adds a namespace at `path` (with its `lo`), logged under `short`.
    func addNamespace(_ path: String, short: String = "ctr") {
        links[path] = []
        shortNames[path] = short
        addLink("lo", kind: nil, in: path, flags: 0x8)
    }

    func removeNamespace(_ path: String) {
        links[path] = nil
        addresses[path] = nil
    }

    @discardableResult
    func addLink(_ name: String, kind: String?, in namespace: String = "host", flags: UInt32 = 0x1) -> FakeLink {
        let index = nextIndex
        nextIndex += 1
        let link = FakeLink(
            index: index, name: name, kind: kind, flags: flags, mac: [0x02, 0, 0, 0, 0, UInt8(index & 0xff)])
        links[namespace, default: []].append(link)
        return link
    }

    func link(_ name: String, in namespace: String = "host") -> FakeLink? {
        links[namespace]?.first { $0.name == name }
    }

    func addressStrings(in namespace: String) -> [String] {
        (addresses[namespace] ?? []).map { "\(dotted($0.bytes))/\($0.length)" }
    }

    /// The next `times` requests whose log line contains `match` fail with `errno`.
    func fail(_ match: String, errno: Int32, times: Int = 1) {
        failures += Array(repeating: (match, errno), count: times)
    }

    func addAddress(_ text: String, to name: String, in namespace: String) {
        guard let index = link(name, in: namespace)?.index else { return }
        let parts = text.split(separator: "/")
        let isV4 = parts[0].contains(".")
        let bytes =
            isV4 ? parts[0].split(separator: ".").compactMap { UInt8($0) } : ipv6Bytes(String(parts[0]))
        addresses[namespace, default: []].append(
            FakeAddress(index: index, family: isV4 ? 2 : 10, bytes: bytes, length: UInt8(parts[1]) ?? 0))
    }

    func setSysctl(_ key: String, _ value: String, in namespace: String) {
        sysctls[namespace, default: [:]][key] = value
    }

    func sysctl(_ key: String, in namespace: String) -> String? { sysctls[namespace]?[key] }

    func setFlags(_ flags: UInt32, of name: String, in namespace: String) {
        guard var link = link(name, in: namespace) else { return }
        link.flags = flags
        update(link, in: namespace)
    }

    private func ipv6Bytes(_ text: String) -> [UInt8] {
        // Enough for the addresses tests use: "::1" and full groups around one "::".
        let halves = text.components(separatedBy: "::")
        let head = halves[0].split(separator: ":").compactMap { UInt16($0, radix: 16) }
        let tail = halves.count > 1 ? halves[1].split(separator: ":").compactMap { UInt16($0, radix: 16) } : []
        let groups = head + Array(repeating: 0, count: 8 - head.count - tail.count) + tail
        return groups.flatMap { [UInt8($0 >> 8), UInt8($0 & 0xff)] }
    }

    /// Every ctnetlink client shares this fake, so tests see what DEL asked of conntrack.
    let conntrackTransport = RecordingTransport()

    func clearLog() {
        log = []
        batches = []
        requestCount = 0
    }

    // MARK: - The seam

    var kernel: PluginKernel {
        PluginKernel(
            hostNetlink: { [unowned self] () throws(NetlinkError) in session(in: "host") },
            netlink: { [unowned self] namespace throws(NetlinkError) in
                session(in: name(of: namespace))
            },
            nftables: { [unowned self] () throws(FirewallError) in
                let transport = RecordingTransport()
                transport.responder = { [unowned self, unowned transport] datagram in
                    answerNetfilter(datagram, portID: transport.portID)
                }
                return NFTablesClient(transport: transport)
            },
            conntrack: { [unowned self] () throws(FirewallError) in ConntrackClient(transport: conntrackTransport) },
            openNamespace: { [unowned self] path throws(NamespaceError) in
                guard links[path] != nil else {
                    throw NamespaceError("open network namespace", path: path, errno: ENOENT)
                }
                return try token(for: path)
            },
            currentNamespace: { [unowned self] () throws(NamespaceError) in try token(for: "host") },
            scratchNamespace: { [unowned self] () throws(NamespaceError) in
                let name = "scratch\(tokens.count)"
                links[name] = []
                shortNames[name] = "scratch"
                return try token(for: name)
            },
            sysctls: { [unowned self] namespace, body in
                requestCount += 1
                let name = namespace.map { self.name(of: $0) } ?? "host"
                try body(
                    SysctlAccess(
                        read: { [unowned self] key in
                            guard let value = sysctls[name]?[key] else {
                                throw Sysctl.Failure(key: key, operation: "open", errno: ENOENT)
                            }
                            return value
                        },
                        write: { [unowned self] key, value in
                            if let code = record("\(shortNames[name] ?? name): sysctl \(key)=\(value)") {
                                throw FakeKernelError(errno: code)
                            }
                            sysctls[name, default: [:]][key] = value
                        }))
            })
    }

    private func token(for name: String) throws(NamespaceError) -> NetworkNamespace {
        if let existing = tokens.first(where: { $0.name == name }) { return existing.namespace }
        guard !tokenKinds.isEmpty else { throw NamespaceError("fake namespace", path: name, errno: EMFILE) }
        let namespace = try NetworkNamespace.open(path: "/proc/thread-self/ns/" + tokenKinds.removeFirst())
        tokens.append((name, namespace))
        return namespace
    }

    private func name(of namespace: NetworkNamespace) -> String {
        tokens.first { $0.namespace.isSame(as: namespace) }?.name ?? "unknown"
    }

    private func name(ofDescriptor fd: Int32) -> String {
        tokens.first { $0.namespace.fileDescriptor == fd }?.name ?? "fd\(fd)"
    }

    private func session(in namespace: String) -> RouteNetlink {
        let transport = RecordingTransport()
        transport.responder = { [unowned self, unowned transport] datagram in
            answerRoute(datagram, namespace: namespace, portID: transport.portID)
        }
        return RouteNetlink(transport: transport, firstSequence: 1)
    }

    /// Logs `line`; returns the errno a scripted failure gives it, if any.
    private func record(_ line: String) -> Int32? {
        if let position = failures.firstIndex(where: { line.contains($0.match) }) {
            let code = failures.remove(at: position).errno
            log.append(line + " -> errno \(code)")
            return code
        }
        log.append(line)
        return nil
    }

    struct FakeKernelError: Error { var errno: Int32 }

    // MARK: - rtnetlink

    private func answerRoute(_ datagram: [UInt8], namespace ns: String, portID: UInt32) -> [[UInt8]] {
        requestCount += 1
        let type = u16(datagram, 4)
        let flags = u16(datagram, 6)
        let sequence = u32(datagram, 8)
        let payload = Array(datagram[16..<min(datagram.count, Int(u32(datagram, 0)))])
        let short = shortNames[ns] ?? ns
        func ack(_ code: Int32 = 0) -> [[UInt8]] {
            [RecordingTransport.errorReply(sequence: sequence, errno: code, portID: portID)]
        }
        func logged(_ line: String, _ apply: () -> Int32) -> [[UInt8]] {
            if let code = record("\(short): \(line)") { return ack(code) }
            return ack(apply())
        }
        let isDump = flags & 0x300 == 0x300
        switch type {
        case 18:  // RTM_GETLINK
            let attributes = parse(payload, from: 16)
            if isDump {
                return (links[ns] ?? []).map { linkMessage($0, sequence: sequence, portID: portID, multi: true) }
                    + [RecordingTransport.done(sequence: sequence, portID: portID)]
            }
            let index = i32(payload, 4)
            let wanted = attributes[3].map(string)
            guard let found = (links[ns] ?? []).first(where: { index != 0 ? $0.index == index : $0.name == wanted })
            else { return ack(ENODEV) }
            return [linkMessage(found, sequence: sequence, portID: portID)] + ack()
        case 16:  // RTM_NEWLINK
            let attributes = parse(payload, from: 16)
            if flags & 0x400 != 0 { return createLink(attributes, in: ns, short: short, ack: ack) }
            return changeLink(payload, attributes, in: ns, short: short, ack: ack)
        case 17:  // RTM_DELLINK
            let attributes = parse(payload, from: 16)
            let index = i32(payload, 4)
            let wanted = attributes[3].map(string)
            guard let found = (links[ns] ?? []).first(where: { index != 0 ? $0.index == index : $0.name == wanted })
            else { return logged("delete \(wanted ?? "link \(index)") (not there)") { ENODEV } }
            return logged("delete \(found.name)") {
                removeLink(found.index)
                return 0
            }
        case 20, 21:  // RTM_NEWADDR, RTM_DELADDR
            let attributes = parse(payload, from: 8)
            let address = FakeAddress(
                index: Int32(bitPattern: u32(payload, 4)), family: payload[0],
                bytes: attributes[2] ?? attributes[1] ?? [], length: payload[1])
            let device = linkName(address.index, in: ns)
            let text = "\(dotted(address.bytes))/\(address.length)"
            if type == 21 {
                return logged("delete address \(text) from \(device)") {
                    guard let position = addresses[ns]?.firstIndex(of: address) else { return EADDRNOTAVAIL }
                    addresses[ns]?.remove(at: position)
                    return 0
                }
            }
            return logged("add address \(text) to \(device)") {
                if addresses[ns]?.contains(address) == true { return EEXIST }
                addresses[ns, default: []].append(address)
                return 0
            }
        case 22:  // RTM_GETADDR (dump)
            let family = payload.first ?? 0
            return (addresses[ns] ?? []).filter { family == 0 || $0.family == family }.map {
                addressMessage($0, sequence: sequence, portID: portID)
            } + [RecordingTransport.done(sequence: sequence, portID: portID)]
        case 24, 25:  // RTM_NEWROUTE, RTM_DELROUTE
            let attributes = parse(payload, from: 12)
            let destination = attributes[1].map { "\(dotted($0))/\(payload[1])" } ?? "default"
            let via = attributes[5].map { " via \(dotted($0))" } ?? ""
            let device = attributes[4].map { " dev \(linkName(i32($0, 0), in: ns))" } ?? ""
            return logged("\(type == 24 ? "add" : "delete") route \(destination)\(via)\(device)") { 0 }
        default:
            // Gets and dumps this fake has no model for (routes, netconf): none there.
            if isDump { return [RecordingTransport.done(sequence: sequence, portID: portID)] }
            return ack()
        }
    }

    private func createLink(
        _ attributes: [UInt16: [UInt8]], in ns: String, short: String, ack: (Int32) -> [[UInt8]]
    ) -> [[UInt8]] {
        let name = attributes[3].map(string) ?? "?"
        let info = parse(attributes[18] ?? [], from: 0)
        let kind = info[1].map(string) ?? "?"
        var line = "\(short): create \(kind) \(name)"
        if let parent = attributes[5] { line += " on \(linkName(i32(parent, 0), in: ns))" }
        let master = attributes[10].map { i32($0, 0) }
        if let master { line += " master \(linkName(master, in: ns))" }
        // Born in another namespace (a macvlan straight into the container).
        let target = attributes[28].map { self.name(ofDescriptor: i32($0, 0)) } ?? ns
        if target != ns { line += " in \(shortNames[target] ?? target)" }
        var peer: (name: String, namespace: String)?
        if kind == "veth", let data = info[2], let peerInfo = parse(data, from: 0)[1] {
            let peerAttributes = parse(peerInfo, from: 16)
            let peerNamespace = peerAttributes[28].map { self.name(ofDescriptor: i32($0, 0)) } ?? ns
            let peerName = peerAttributes[3].map(string) ?? "?"
            peer = (peerName, peerNamespace)
            line += " peer \(peerName) in \(shortNames[peerNamespace] ?? peerNamespace)"
        }
        if let code = record(line) { return ack(code) }
        if link(name, in: target) != nil { return ack(EEXIST) }
        var created = addLink(name, kind: kind, in: target, flags: 0)
        created.master = master
        if let peer {
            var other = addLink(peer.name, kind: "veth", in: peer.namespace, flags: 0)
            other.peer = created.index
            created.peer = other.index
            update(other, in: peer.namespace)
        }
        update(created, in: target)
        return ack(0)
    }

    private func changeLink(
        _ payload: [UInt8], _ attributes: [UInt16: [UInt8]], in ns: String, short: String,
        ack: (Int32) -> [[UInt8]]
    ) -> [[UInt8]] {
        let index = i32(payload, 4)
        guard var link = (links[ns] ?? []).first(where: { $0.index == index }) else { return ack(ENODEV) }
        let flags = u32(payload, 8)
        let change = u32(payload, 12)
        var changes: [String] = []
        if change & 0x1 != 0 { changes.append(flags & 0x1 != 0 ? "up" : "down") }
        if let alias = attributes[20] { changes.append("alias \(string(alias))") }
        if let name = attributes[3] { changes.append("name \(string(name))") }
        if let mtu = attributes[4] { changes.append("mtu \(u32(mtu, 0))") }
        if attributes[1] != nil { changes.append("mac") }
        if let master = attributes[10] { changes.append("master \(linkName(i32(master, 0), in: ns))") }
        if attributes[26] != nil { changes.append("devconf") }
        if let fd = attributes[28] {
            let target = self.name(ofDescriptor: i32(fd, 0))
            changes.append("netns \(shortNames[target] ?? target)")
        }
        if attributes[18] != nil { changes.append("linkinfo") }
        if let code = record("\(short): set \(link.name) \(changes.joined(separator: " "))") { return ack(code) }
        let wasUp = link.flags & 0x1 != 0
        if change & 0x1 != 0 { link.flags = (link.flags & ~0x1) | (flags & 0x1) }
        // As the kernel does: a loopback coming up without IPv4 gets 127.0.0.1/8 (and ::1).
        if change & 0x1 != 0, flags & 0x1 != 0, !wasUp, link.flags & 0x8 != 0,
            !(addresses[ns] ?? []).contains(where: { $0.index == index && $0.family == 2 })
        {
            addresses[ns, default: []].append(FakeAddress(index: index, family: 2, bytes: [127, 0, 0, 1], length: 8))
            if !(addresses[ns] ?? []).contains(where: { $0.index == index && $0.family == 10 }) {
                addresses[ns, default: []].append(
                    FakeAddress(index: index, family: 10, bytes: Array(repeating: 0, count: 15) + [1], length: 128))
            }
        }
        if let alias = attributes[20] { link.alias = string(alias) }
        if let name = attributes[3] { link.name = string(name) }
        if let mtu = attributes[4] { link.mtu = u32(mtu, 0) }
        if let master = attributes[10] { link.master = i32(master, 0) }
        if let fd = attributes[28] {
            removeLink(index, peerToo: false)
            links[self.name(ofDescriptor: i32(fd, 0)), default: []].append(link)
            return ack(0)
        }
        update(link, in: ns)
        return ack(0)
    }

    private func update(_ link: FakeLink, in ns: String) {
        guard let position = links[ns]?.firstIndex(where: { $0.index == link.index }) else { return }
        links[ns]?[position] = link
    }

    /// Deletes a link (a veth takes its peer with it) and its addresses.
    private func removeLink(_ index: Int32, peerToo: Bool = true) {
        for ns in links.keys {
            guard let position = links[ns]?.firstIndex(where: { $0.index == index }),
                let removed = links[ns]?.remove(at: position)
            else { continue }
            addresses[ns]?.removeAll { $0.index == index }
            if peerToo, removed.kind == "veth", let peer = removed.peer { removeLink(peer, peerToo: false) }
        }
    }

    private func linkName(_ index: Int32, in ns: String) -> String {
        links[ns]?.first { $0.index == index }?.name ?? "link \(index)"
    }

    private func linkMessage(_ link: FakeLink, sequence: UInt32, portID: UInt32, multi: Bool = false) -> [UInt8] {
        var body: [UInt8] = [0, 0, 1, 0] + bytes(UInt32(bitPattern: link.index)) + bytes(link.flags) + bytes(0)
        body += attribute(3, Array(link.name.utf8) + [0])
        body += attribute(4, bytes(link.mtu))
        body += attribute(1, link.mac)
        if let master = link.master { body += attribute(10, bytes(UInt32(bitPattern: master))) }
        if let peer = link.peer { body += attribute(5, bytes(UInt32(bitPattern: peer))) }
        if let alias = link.alias { body += attribute(20, Array(alias.utf8) + [0]) }
        if let kind = link.kind { body += attribute(18 | 0x8000, attribute(1, Array(kind.utf8) + [0])) }
        return RecordingTransport.message(
            type: 16, flags: multi ? 0x2 : 0, sequence: sequence, portID: portID, payload: body)
    }

    private func addressMessage(_ address: FakeAddress, sequence: UInt32, portID: UInt32) -> [UInt8] {
        let body =
            [address.family, address.length, 0, 0] + bytes(UInt32(bitPattern: address.index))
            + attribute(1, address.bytes) + attribute(2, address.bytes)
        return RecordingTransport.message(type: 20, flags: 0x2, sequence: sequence, portID: portID, payload: body)
    }

    // MARK: - nf_tables

    private static let nfMessageNames: [UInt8: String] = [
        0: "newtable", 2: "deltable", 3: "newchain", 5: "delchain", 6: "newrule", 8: "delrule", 9: "newset",
        11: "delset", 12: "newsetelem", 14: "delsetelem",
    ]

    private func answerNetfilter(_ datagram: [UInt8], portID: UInt32) -> [[UInt8]] {
        requestCount += 1
        var messages: [(type: UInt16, flags: UInt16, sequence: UInt32, payload: [UInt8])] = []
        var offset = 0
        while offset + 16 <= datagram.count {
            let length = Int(u32(datagram, offset))
            guard length >= 16, offset + length <= datagram.count else { break }
            messages.append(
                (
                    u16(datagram, offset + 4), u16(datagram, offset + 6), u32(datagram, offset + 8),
                    Array(datagram[(offset + 16)..<(offset + length)])
                ))
            offset += (length + 3) & ~3
        }
        guard let first = messages.first else { return [] }
        func reply(_ sequence: UInt32, _ code: Int32) -> [UInt8] {
            RecordingTransport.errorReply(sequence: sequence, errno: code, portID: portID)
        }
        if first.type == 0x10 {  // NFNL_MSG_BATCH_BEGIN
            var lines: [String] = []
            var replies: [[UInt8]] = []
            var madeTables: [String] = []
            var madeRules: [(chain: String, userData: [UInt8])] = []
            for message in messages.dropFirst().dropLast() {
                let name = Self.nfMessageNames[UInt8(message.type & 0xff)] ?? "type \(message.type & 0xff)"
                let attributes = parse(message.payload, from: 4)
                let family = [1: "inet", 2: "ip", 7: "bridge", 10: "ip6"][Int(message.payload.first ?? 0)] ?? "?"
                var line = "\(name) \(family) \(attributes[1].map(string) ?? "")"
                let object = message.type & 0xff == 3 ? attributes[3] : attributes[2]
                if let object { line += " \(string(object))" }
                if message.type & 0xff == 12 || message.type & 0xff == 14 {
                    line += " (\(count(parse(attributes[3] ?? [], from: 0, all: true))) elements)"
                }
                lines.append(line)
                let table = "\(message.payload.first ?? 0) \(attributes[1].map(string) ?? "")"
                if message.type & 0xff == 0 { madeTables.append(table) }
                if message.type & 0xff == 6, let chain = attributes[2] {
                    madeRules.append((table + " " + string(chain), attributes[7] ?? []))
                }
                if message.flags & 0x4 != 0 { replies.append(reply(message.sequence, 0)) }
            }
            // Elements of named sets; a rule's anonymous set (`__set%d`) comes with its rule.
            let summary = lines.filter {
                ($0.hasPrefix("newsetelem") || $0.hasPrefix("delsetelem")) && !$0.contains(" __set")
            }
            let code = record("nft: batch of \(lines.count): " + summary.joined(separator: ", "))
            batches.append(lines)
            if let code { return [reply(messages.dropFirst().first?.sequence ?? first.sequence, code)] }
            tables.formUnion(madeTables)
            for rule in madeRules { ruleUserData[rule.chain, default: []].append(rule.userData) }
            return replies
        }
        let isDump = first.flags & 0x300 == 0x300
        switch first.type & 0xff {
        case 7 where isDump && !interruptNetfilterDumps:  // NFT_MSG_GETRULE
            let attributes = parse(first.payload, from: 4)
            let table = "\(first.payload.first ?? 0) \(attributes[1].map(string) ?? "")"
            guard tables.contains(table) else { return [reply(first.sequence, ENOENT)] }
            let chain = attributes[2].map(string) ?? ""
            let rules = (ruleUserData[table + " " + chain] ?? []).enumerated().map { handle, userData in
                RecordingTransport.message(
                    type: 0x0a00 | 6, flags: 0x2, sequence: first.sequence, portID: portID,
                    payload: [first.payload.first ?? 0, 0, 0, 0] + attribute(1, attributes[1] ?? [])
                        + attribute(2, Array(chain.utf8) + [0])
                        + attribute(3, [0, 0, 0, 0, 0, 0, 0, UInt8(handle + 1)]) + attribute(7, userData))
            }
            return rules + [RecordingTransport.done(sequence: first.sequence, portID: portID)]
        case 16:  // NFT_MSG_GETGEN
            let generation = RecordingTransport.message(
                type: 0x0a00 | 15, sequence: first.sequence, portID: portID,
                payload: [0, 0, 0, 0] + attribute(1, [0, 0, 0, 1]))
            return [generation, reply(first.sequence, 0)]
        default:
            if isDump && interruptNetfilterDumps {
                return [RecordingTransport.done(sequence: first.sequence, portID: portID, flags: 0x2 | 0x10)]
            }
            // An empty host: no table, so no rules, sets or elements to read.
            if isDump { return [RecordingTransport.done(sequence: first.sequence, portID: portID, status: -ENOENT)] }
            return [reply(first.sequence, ENOENT)]
        }
    }

    private func count(_ list: [(UInt16, [UInt8])]) -> Int { list.count }

    // MARK: - Wire helpers (a naive, independent reading of netlink)

    private func parse(_ bytes: [UInt8], from start: Int) -> [UInt16: [UInt8]] {
        var found: [UInt16: [UInt8]] = [:]
        for (type, value) in parse(bytes, from: start, all: true) where found[type] == nil { found[type] = value }
        return found
    }

    private func parse(_ bytes: [UInt8], from start: Int, all: Bool) -> [(UInt16, [UInt8])] {
        var found: [(UInt16, [UInt8])] = []
        var offset = start
        while offset + 4 <= bytes.count {
            let length = Int(u16(bytes, offset))
            guard length >= 4, offset + length <= bytes.count else { break }
            found.append((u16(bytes, offset + 2) & 0x3fff, Array(bytes[(offset + 4)..<(offset + length)])))
            offset += (length + 3) & ~3
        }
        return found
    }

    private func attribute(_ type: UInt16, _ value: [UInt8]) -> [UInt8] {
        let length = UInt16(4 + value.count)
        return [UInt8(length & 0xff), UInt8(length >> 8), UInt8(type & 0xff), UInt8(type >> 8)] + value
            + [UInt8](repeating: 0, count: (4 - value.count % 4) % 4)
    }

    private func string(_ bytes: [UInt8]) -> String { String(decoding: bytes.prefix { $0 != 0 }, as: UTF8.self) }
    private func u16(_ bytes: [UInt8], _ offset: Int) -> UInt16 {
        UInt16(bytes[offset]) | UInt16(bytes[offset + 1]) << 8
    }
    private func u32(_ bytes: [UInt8], _ offset: Int) -> UInt32 {
        (0..<4).reduce(UInt32(0)) { $0 | UInt32(bytes[offset + $1]) << (8 * $1) }
    }
    private func i32(_ bytes: [UInt8], _ offset: Int) -> Int32 { Int32(bitPattern: u32(bytes, offset)) }
    private func bytes(_ value: UInt32) -> [UInt8] { (0..<4).map { UInt8((value >> (8 * $0)) & 0xff) } }
    private func dotted(_ bytes: [UInt8]) -> String {
        bytes.count == 4
            ? bytes.map(String.init).joined(separator: ".")
            : stride(from: 0, to: bytes.count, by: 2).map {
                String(UInt16(bytes[$0]) << 8 | UInt16(bytes[$0 + 1]), radix: 16)
            }
            .joined(separator: ":")
    }
}
