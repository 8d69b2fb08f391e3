import Glibc
import IPAddressing
import JSON
import PierState

/// The name server: one process per records directory (one per host in production), serving
/// every network that has records, on each network's gateway addresses, port 53, UDP and TCP,
/// in the network namespace it was started in (the runtime's, where the bridges live).
///
/// Single-threaded over poll(2). Queries it cannot answer go to upstream resolvers with a new
/// random ID, one attempt per upstream (starting at the next in turn) with a timeout each, then
/// SERVFAIL: over UDP, or over TCP (non-blocking, a bounded number at once) when the client asked
/// over TCP or the upstream's UDP answer to a TCP client was truncated. It re-reads the records
/// when a plugin asks (`reload <network>` on the control socket, answered once the network's
/// sockets are bound) and when the directories' modification times change; it exits when no
/// network has records left.
public final class NameServer {
    public static let defaultPort: UInt16 = 53
    /// Per upstream attempt.
    static let upstreamTimeout = 2.0
    static let maximumAttempts = 3
    static let tcpIdleTimeout = 10.0
    static let maximumTCPConnections = 128
    static let maximumPendingForwards = 4096
    /// Forwards over TCP at once; beyond it they go over UDP (a truncated answer is passed on).
    static let maximumUpstreamConnections = 64

    let store: NameRecordStore
    let port: UInt16
    let resolvConfPath: String
    let log: (String) -> Void
    /// Records other hosts registered for a network in its cluster store (`store` JSON, network),
    /// without this host's own; nil where no store can be read (tests, a plain build).
    let sharedRecords: (@Sendable (JSONValue, String) -> [NameRecord])?
    /// The last records read from each network's cluster store, and when.
    private var remoteRecords: [String: [NameRecord]] = [:]
    private var localRecords: [NameRecord] = []
    private var remoteCheckedAt = -Double.infinity
    static let remoteInterval = 2.0

    private var zones: [String: NetworkZone] = [:]
    /// The networks each container is on: a name of one of them answers to it on any of them.
    private var networksByContainer: [String: [String]] = [:]
    /// Where the next list of several addresses starts: each answer rotates them (round robin).
    private var answerRotation = 0
    private var listeners: [IPAddress: Listener] = [:]
    private var bindErrors: [String: String] = [:]
    private var connections: [Int: TCPConnection] = [:]
    private var nextConnectionID = 0
    private var controlFD: Int32 = -1
    private var upstreamFDs: [IPFamily: Int32] = [:]
    private var pending: [UInt16: PendingForward] = [:]
    /// The TCP exchange of a pending forward's current attempt, by its upstream ID.
    private var upstreamConnections: [UInt16: UpstreamConnection] = [:]
    private var rotation = 0
    private var hostUpstreams: [DNSUpstream] = []
    private var resolvConfStamp: Int?
    private var resolvConfCheckedAt = -Double.infinity
    private var signature: [String: Int] = [:]
    private var signatureCheckedAt = 0.0
    private var buffer = [UInt8](repeating: 0, count: 65536)

    struct Listener {
        var network: String
        var udp: Int32
        var tcp: Int32
    }

    struct TCPConnection {
        var fd: Int32
        var gateway: IPAddress
        var peer: IPAddress?
        var inbox: [UInt8] = []
        var outbox: [UInt8] = []
        var lastActive: Double
    }

    enum Client {
        case udp(fd: Int32, address: SocketAddress)
        case tcp(connection: Int)
    }

    struct PendingForward {
        var client: Client
        var query: DNSMessage
        var packet: [UInt8]
        var upstreams: [DNSUpstream]
        var attempt: Int
        var deadline: Double
        /// How the client asked (how a SERVFAIL is encoded).
        var overUDP: Bool
        /// How the upstreams are asked.
        var overTCP: Bool
    }

    struct UpstreamConnection {
        var fd: Int32
        var connected: Bool
        var outbox: [UInt8]
        var inbox: [UInt8] = []
    }

    public init(
        store: NameRecordStore, port: UInt16 = NameServer.defaultPort, resolvConfPath: String = "/etc/resolv.conf",
        sharedRecords: (@Sendable (JSONValue, String) -> [NameRecord])? = nil, log: @escaping (String) -> Void
    ) {
        self.store = store
        self.port = port
        self.resolvConfPath = resolvConfPath
        self.sharedRecords = sharedRecords
        self.log = log
    }

    /// Takes the pidfile lock (waiting up to `lockTimeout` for a server that is exiting),
    /// opens the control socket and loads the records. Throws when another server runs.
    public func start(lockTimeout: Double = 5) throws(NameServiceError) {
        do {
            try FileSystem.makeDirectories(store.directory)
        } catch {
            throw NameServiceError("\(error)")
        }
        let pidFD = open(store.pidPath, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        guard pidFD >= 0 else { throw NameServiceError("open \(store.pidPath): \(Sockets.errorText())") }
        let deadline = Sockets.monotonicSeconds() + lockTimeout
        while flock(pidFD, LOCK_EX | LOCK_NB) != 0 {
            guard errno == EWOULDBLOCK || errno == EINTR, Sockets.monotonicSeconds() < deadline else {
                close(pidFD)
                throw NameServiceError("another name server holds \(store.pidPath)")
            }
            usleep(20_000)
        }
        // Kept open (and locked) for the life of the process.
        let pid = Array("\(getpid())\n".utf8)
        _ = ftruncate(pidFD, 0)
        _ = pwrite(pidFD, pid, pid.count, 0)

        unlink(store.socketPath)
        let fd = socket(
            AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0, let (address, length) = Sockets.unixAddress(store.socketPath) else {
            throw NameServiceError("control socket \(store.socketPath): \(Sockets.errorText())")
        }
        let bound = withUnsafePointer(to: address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) }
        }
        guard bound == 0, listen(fd, 64) == 0 else {
            let code = errno
            close(fd)
            throw NameServiceError("control socket \(store.socketPath): \(Sockets.errorText(code))")
        }
        chmod(store.socketPath, 0o600)
        controlFD = fd
        reload()
    }

    /// True while any network has a record of this host (other hosts' alone keep nothing alive).
    public var hasRecords: Bool { zones.values.contains { !$0.gateways.isEmpty } }

    /// Serves until no network has records left, then removes the control socket and returns.
    public func run() {
        while hasRecords {
            // Idle, wake once a second (the change check); with forwards in flight, often enough
            // for their timeouts.
            pollOnce(timeoutMilliseconds: pending.isEmpty ? 1000 : 100)
            let now = Sockets.monotonicSeconds()
            expireForwards(now)
            expireConnections(now)
            if now - signatureCheckedAt >= 1 {
                signatureCheckedAt = now
                if store.changeSignature() != signature { reload() }
            }
            if !remoteRecords.isEmpty && now - remoteCheckedAt >= Self.remoteInterval {
                rebuildZones(remote: readRemoteRecords(localRecords))
            }
        }
        unlink(store.socketPath)
        close(controlFD)
    }

    // MARK: Records and listeners

    /// Re-reads every record, binds the gateways that are new and closes the ones gone.
    func reload() {
        localRecords = store.allRecords { path, error in log("skipping \(path): \(error)") }
        rebuildZones(remote: readRemoteRecords(localRecords))
        signature = store.changeSignature()
        var wanted: [IPAddress: String] = [:]
        for zone in zones.values.sorted(by: { $0.network < $1.network }) {
            for gateway in zone.gateways where wanted[gateway] == nil { wanted[gateway] = zone.network }
        }
        for (gateway, listener) in listeners where wanted[gateway] == nil {
            close(listener.udp)
            close(listener.tcp)
            listeners[gateway] = nil
        }
        bindErrors = [:]
        for (gateway, network) in wanted {
            if listeners[gateway] != nil {
                listeners[gateway]?.network = network
                continue
            }
            do {
                listeners[gateway] = try bindListener(gateway, network: network)
            } catch {
                bindErrors[network] = error.message
                log("network \(network): \(error.message)")
            }
        }
    }

    private func rebuildZones(remote: [NameRecord]) {
        zones = NetworkZone.zones(localRecords + remote)
        networksByContainer = [:]
        for zone in zones.values.sorted(by: { $0.network < $1.network }) {
            for container in Set(zone.containerByAddress.values) {
                networksByContainer[container, default: []].append(zone.network)
            }
        }
    }

    /// Other hosts' records of every network whose records name a cluster store: names and
    /// addresses only, never an attachment this host has itself.
    private func readRemoteRecords(_ local: [NameRecord]) -> [NameRecord] {
        guard let sharedRecords else { return [] }
        remoteCheckedAt = Sockets.monotonicSeconds()
        var stores: [String: JSONValue] = [:]
        for record in local { if let store = record.store { stores[record.network] = store } }
        let mine = Set(local.map { "\($0.network)/\($0.containerID)/\($0.ifName)" })
        remoteRecords = stores.mapValues { _ in [] }
        for (network, storeConfig) in stores {
            remoteRecords[network] = sharedRecords(storeConfig, network).filter {
                $0.network == network && !mine.contains("\($0.network)/\($0.containerID)/\($0.ifName)")
            }.map(\.forOtherHosts)
        }
        return remoteRecords.values.flatMap { $0 }
    }

    private func bindListener(_ gateway: IPAddress, network: String) throws(NameServiceError) -> Listener {
        let udp = try Sockets.bound(Int32(SOCK_DGRAM.rawValue), gateway, port: port)
        let tcp: Int32
        do {
            tcp = try Sockets.bound(Int32(SOCK_STREAM.rawValue), gateway, port: port)
        } catch {
            close(udp)
            throw error
        }
        guard listen(tcp, 64) == 0 else {
            let code = errno
            close(udp)
            close(tcp)
            throw NameServiceError("listen \(gateway) port \(port): \(Sockets.errorText(code))")
        }
        return Listener(network: network, udp: udp, tcp: tcp)
    }

    // MARK: The loop

    private enum Role {
        case control
        case udp(IPAddress)
        case tcpListener(IPAddress)
        case connection(Int)
        case upstream(IPFamily)
        case upstreamConnection(UInt16)
    }

    private func pollOnce(timeoutMilliseconds: Int32) {
        var descriptors: [pollfd] = [pollfd(fd: controlFD, events: Int16(POLLIN), revents: 0)]
        var roles: [Role] = [.control]
        for (gateway, listener) in listeners {
            descriptors.append(pollfd(fd: listener.udp, events: Int16(POLLIN), revents: 0))
            roles.append(.udp(gateway))
            if connections.count < Self.maximumTCPConnections {
                descriptors.append(pollfd(fd: listener.tcp, events: Int16(POLLIN), revents: 0))
                roles.append(.tcpListener(gateway))
            }
        }
        for (id, connection) in connections {
            let events = Int16(POLLIN) | (connection.outbox.isEmpty ? 0 : Int16(POLLOUT))
            descriptors.append(pollfd(fd: connection.fd, events: events, revents: 0))
            roles.append(.connection(id))
        }
        for (family, fd) in upstreamFDs {
            descriptors.append(pollfd(fd: fd, events: Int16(POLLIN), revents: 0))
            roles.append(.upstream(family))
        }
        for (id, connection) in upstreamConnections {
            let events = Int16(POLLIN) | (connection.outbox.isEmpty ? 0 : Int16(POLLOUT))
            descriptors.append(pollfd(fd: connection.fd, events: events, revents: 0))
            roles.append(.upstreamConnection(id))
        }
        let ready = poll(&descriptors, nfds_t(descriptors.count), timeoutMilliseconds)
        guard ready > 0 else { return }
        for (descriptor, role) in zip(descriptors, roles) where descriptor.revents != 0 {
            switch role {
            case .control: serveControl()
            case .udp(let gateway): receiveQueries(gateway)
            case .tcpListener(let gateway): acceptConnection(gateway)
            case .connection(let id): serviceConnection(id, revents: descriptor.revents)
            case .upstream(let family): receiveUpstreamAnswers(family)
            case .upstreamConnection(let id): serviceUpstreamConnection(id, revents: descriptor.revents)
            }
        }
    }

    private func zone(for gateway: IPAddress) -> NetworkZone? {
        listeners[gateway].flatMap { zones[$0.network] }
    }

    /// One datagram from `fd` into `buffer`, with its sender; nil when none is waiting.
    private func receiveDatagram(_ fd: Int32) -> (count: Int, from: SocketAddress)? {
        var from = SocketAddress()
        let count = buffer.withUnsafeMutableBytes { raw in
            withUnsafeMutablePointer(to: &from.storage) { storage in
                storage.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    recvfrom(fd, raw.baseAddress, raw.count, 0, $0, &from.length)
                }
            }
        }
        return count >= 0 ? (count, from) : nil
    }

    private func receiveQueries(_ gateway: IPAddress) {
        guard let fd = listeners[gateway]?.udp else { return }
        // A batch per wake-up, bounded so TCP and upstream answers are not starved.
        for _ in 0..<64 {
            guard let (count, from) = receiveDatagram(fd) else { return }
            guard let zone = zone(for: gateway) else { return }
            let packet = Array(buffer[0..<count])
            handle(packet, zone: zone, client: .udp(fd: fd, address: from))
        }
    }

    private func handle(_ packet: [UInt8], zone: NetworkZone, client: Client) {
        let overUDP: Bool
        let source: IPAddress?
        switch client {
        case .udp(_, let address):
            overUDP = true
            source = address.address
        case .tcp(let id):
            overUDP = false
            source = connections[id]?.peer
        }
        // The asking container's other networks: it resolves their names too, with the addresses
        // there (the network it shares with the name's holder). Anyone else gets this network's.
        let shared =
            source.flatMap { zone.containerByAddress[$0] }.map { container in
                (networksByContainer[container] ?? []).filter { $0 != zone.network }.compactMap { zones[$0] }
            } ?? []
        answerRotation &+= 1
        switch Resolver.resolve(packet, zone: zone, overUDP: overUDP, sharedZones: shared, rotation: answerRotation) {
        case .ignore: break
        case .reply(let bytes): deliver(bytes, to: client)
        case .forward(let query):
            let own = source.flatMap { zone.upstreamsByAddress[$0] }
            forward(query, packet: packet, zone: zone, client: client, overUDP: overUDP, containerUpstreams: own)
        }
    }

    private func deliver(_ bytes: [UInt8], to client: Client) {
        switch client {
        case .udp(let fd, let address):
            _ = bytes.withUnsafeBytes { raw in
                address.withSockaddr { sendto(fd, raw.baseAddress, raw.count, Int32(MSG_NOSIGNAL), $0, $1) }
            }
        case .tcp(let id):
            guard connections[id] != nil, bytes.count <= Int(UInt16.max) else { return }
            connections[id]?.outbox += [UInt8(bytes.count >> 8), UInt8(bytes.count & 0xFF)] + bytes
            flush(id)
        }
    }

    // MARK: TCP

    private func acceptConnection(_ gateway: IPAddress) {
        guard let listener = listeners[gateway] else { return }
        let fd = Sockets.accept(listener.tcp, nonBlocking: true)
        guard fd >= 0 else { return }
        var peer = SocketAddress()
        let named = withUnsafeMutablePointer(to: &peer.storage) { storage in
            storage.withMemoryRebound(to: sockaddr.self, capacity: 1) { getpeername(fd, $0, &peer.length) }
        }
        nextConnectionID += 1
        connections[nextConnectionID] = TCPConnection(
            fd: fd, gateway: gateway, peer: named == 0 ? peer.address : nil, lastActive: Sockets.monotonicSeconds())
    }

    private func serviceConnection(_ id: Int, revents: Int16) {
        guard var connection = connections[id] else { return }
        if revents & Int16(POLLOUT) != 0 { flush(id) }
        guard revents & (Int16(POLLIN) | Int16(POLLHUP) | Int16(POLLERR)) != 0 else { return }
        let count = buffer.withUnsafeMutableBytes { recv(connection.fd, $0.baseAddress, $0.count, 0) }
        if count == 0 || (count < 0 && errno != EAGAIN && errno != EINTR) {
            closeConnection(id)
            return
        }
        guard count > 0 else { return }
        connection.inbox += buffer[0..<count]
        connection.lastActive = Sockets.monotonicSeconds()
        var messages: [[UInt8]] = []
        while connection.inbox.count >= 2 {
            let length = Int(connection.inbox[0]) << 8 | Int(connection.inbox[1])
            guard connection.inbox.count >= 2 + length else { break }
            messages.append(Array(connection.inbox[2..<2 + length]))
            connection.inbox.removeFirst(2 + length)
        }
        connections[id] = connection
        guard let zone = zone(for: connection.gateway) else {
            closeConnection(id)
            return
        }
        for message in messages { handle(message, zone: zone, client: .tcp(connection: id)) }
    }

    private func flush(_ id: Int) {
        guard var connection = connections[id], !connection.outbox.isEmpty else { return }
        let count = connection.outbox.withUnsafeBytes {
            send(connection.fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL) | Int32(MSG_DONTWAIT))
        }
        if count < 0 {
            if errno != EAGAIN && errno != EINTR { closeConnection(id) }
            return
        }
        connection.outbox.removeFirst(count)
        connections[id] = connection
    }

    private func closeConnection(_ id: Int) {
        guard let connection = connections.removeValue(forKey: id) else { return }
        close(connection.fd)
    }

    private func expireConnections(_ now: Double) {
        for (id, connection) in connections where now - connection.lastActive > Self.tcpIdleTimeout {
            closeConnection(id)
        }
    }

    // MARK: Forwarding

    /// The container's own upstreams, else the zone's configured ones, else the host's, never one
    /// of our own listeners.
    private func upstreams(for zone: NetworkZone, containerUpstreams: [DNSUpstream]?) -> [DNSUpstream] {
        let candidates =
            containerUpstreams ?? (zone.upstreams.isEmpty ? currentHostUpstreams() : zone.upstreams)
        return candidates.filter { !(listeners[$0.address] != nil && $0.port == port) }
    }

    private func currentHostUpstreams() -> [DNSUpstream] {
        let now = Sockets.monotonicSeconds()
        guard now - resolvConfCheckedAt >= 1 else { return hostUpstreams }
        resolvConfCheckedAt = now
        var info = stat()
        let stamp = stat(resolvConfPath, &info) == 0 ? info.st_mtim.tv_sec * 1_000_000_000 + info.st_mtim.tv_nsec : nil
        if stamp != resolvConfStamp || stamp == nil {
            resolvConfStamp = stamp
            let text = ((try? FileSystem.read(resolvConfPath)) ?? nil).map { String(decoding: $0, as: UTF8.self) } ?? ""
            hostUpstreams = ResolvConf.nameservers(text)
        }
        return hostUpstreams
    }

    private func forward(
        _ query: DNSMessage, packet: [UInt8], zone: NetworkZone, client: Client, overUDP: Bool,
        containerUpstreams: [DNSUpstream]?
    ) {
        var upstreams = upstreams(for: zone, containerUpstreams: containerUpstreams)
        guard !upstreams.isEmpty, pending.count < Self.maximumPendingForwards else {
            deliver(Resolver.serverFailure(for: query, overUDP: overUDP), to: client)
            return
        }
        // Rotate, so the load and the first timeout are spread over every upstream.
        rotation = (rotation + 1) % upstreams.count
        upstreams = Array(upstreams[rotation...] + upstreams[..<rotation])
        var id = UInt16.random(in: 0...UInt16.max)
        while pending[id] != nil { id = UInt16.random(in: 0...UInt16.max) }
        pending[id] = PendingForward(
            client: client, query: query, packet: packet, upstreams: upstreams, attempt: 0, deadline: 0,
            overUDP: overUDP, overTCP: !overUDP)
        sendAttempt(id)
    }

    /// Sends the pending query to its current upstream; moves on at once when sending fails.
    private func sendAttempt(_ id: UInt16) {
        closeUpstreamConnection(id)
        while var forward = pending[id] {
            guard forward.attempt < min(forward.upstreams.count, Self.maximumAttempts) else {
                pending[id] = nil
                deliver(Resolver.serverFailure(for: forward.query, overUDP: forward.overUDP), to: forward.client)
                return
            }
            let upstream = forward.upstreams[forward.attempt]
            var packet = forward.packet
            packet[0] = UInt8(id >> 8)
            packet[1] = UInt8(id & 0xFF)
            let address = SocketAddress(upstream.address, port: upstream.port)
            let sent: Bool
            if forward.overTCP && upstreamConnections.count < Self.maximumUpstreamConnections {
                sent = connectUpstream(id, address, family: upstream.address.family, packet: packet)
            } else {
                sent =
                    upstreamSocket(upstream.address.family).map { fd in
                        packet.withUnsafeBytes { raw in
                            address.withSockaddr {
                                sendto(fd, raw.baseAddress, raw.count, Int32(MSG_NOSIGNAL), $0, $1)
                            }
                        }
                    } == packet.count
            }
            if sent {
                forward.deadline = Sockets.monotonicSeconds() + Self.upstreamTimeout
                pending[id] = forward
                return
            }
            forward.attempt += 1
            pending[id] = forward
        }
    }

    private func upstreamSocket(_ family: IPFamily) -> Int32? {
        if let fd = upstreamFDs[family] { return fd }
        let fd = socket(
            family == .v4 ? AF_INET : AF_INET6,
            Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return nil }
        upstreamFDs[family] = fd
        return fd
    }

    private func receiveUpstreamAnswers(_ family: IPFamily) {
        guard let fd = upstreamFDs[family] else { return }
        for _ in 0..<64 {
            guard let (count, from) = receiveDatagram(fd) else { return }
            guard count >= DNSMessage.headerSize else { continue }
            let id = UInt16(buffer[0]) << 8 | UInt16(buffer[1])
            // Only from the upstream asked, with the ID it was given, while it is asked over UDP:
            // anything else is spoofed or stale.
            guard let forward = pending[id], upstreamConnections[id] == nil,
                forward.upstreams[forward.attempt].address == from.address,
                forward.upstreams[forward.attempt].port == from.port
            else { continue }
            let truncated = buffer[2] & 0x02 != 0
            if truncated, case .tcp = forward.client, upstreamConnections.count < Self.maximumUpstreamConnections {
                // A TCP client can take the whole answer: ask the same upstream again over TCP.
                pending[id]?.overTCP = true
                sendAttempt(id)
                continue
            }
            pending[id] = nil
            relay(Array(buffer[0..<count]), of: forward)
        }
    }

    /// Passes an upstream's answer on under the client's own query ID.
    private func relay(_ answer: [UInt8], of forward: PendingForward) {
        var answer = answer
        answer[0] = UInt8(forward.query.id >> 8)
        answer[1] = UInt8(forward.query.id & 0xFF)
        deliver(answer, to: forward.client)
    }

    /// Starts a non-blocking connect to the upstream with the length-prefixed query queued.
    private func connectUpstream(_ id: UInt16, _ address: SocketAddress, family: IPFamily, packet: [UInt8]) -> Bool {
        let fd = socket(
            family == .v4 ? AF_INET : AF_INET6,
            Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return false }
        let result = address.withSockaddr { Glibc.connect(fd, $0, $1) }
        guard result == 0 || errno == EINPROGRESS else {
            close(fd)
            return false
        }
        upstreamConnections[id] = UpstreamConnection(
            fd: fd, connected: result == 0, outbox: [UInt8(packet.count >> 8), UInt8(packet.count & 0xFF)] + packet)
        return true
    }

    private func serviceUpstreamConnection(_ id: UInt16, revents: Int16) {
        guard var connection = upstreamConnections[id], let forward = pending[id] else { return }
        if revents & Int16(POLLOUT) != 0 && !connection.outbox.isEmpty {
            if !connection.connected {
                var code: Int32 = 0
                var length = socklen_t(MemoryLayout<Int32>.size)
                guard getsockopt(connection.fd, SOL_SOCKET, SO_ERROR, &code, &length) == 0, code == 0 else {
                    return failUpstreamAttempt(id)
                }
                connection.connected = true
            }
            let count = connection.outbox.withUnsafeBytes {
                send(connection.fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL) | Int32(MSG_DONTWAIT))
            }
            if count < 0 && errno != EAGAIN && errno != EINTR { return failUpstreamAttempt(id) }
            if count > 0 { connection.outbox.removeFirst(count) }
        }
        if revents & (Int16(POLLIN) | Int16(POLLHUP) | Int16(POLLERR)) != 0 {
            let count = buffer.withUnsafeMutableBytes { recv(connection.fd, $0.baseAddress, $0.count, 0) }
            if count == 0 || (count < 0 && errno != EAGAIN && errno != EINTR) { return failUpstreamAttempt(id) }
            if count > 0 { connection.inbox += buffer[0..<count] }
        }
        upstreamConnections[id] = connection
        let inbox = connection.inbox
        guard inbox.count >= 2 else { return }
        let length = Int(inbox[0]) << 8 | Int(inbox[1])
        guard inbox.count >= 2 + length else { return }
        // The whole answer, and to the ID asked (else this upstream failed).
        guard length >= DNSMessage.headerSize, UInt16(inbox[2]) << 8 | UInt16(inbox[3]) == id else {
            return failUpstreamAttempt(id)
        }
        closeUpstreamConnection(id)
        pending[id] = nil
        relay(Array(inbox[2..<2 + length]), of: forward)
    }

    /// The current upstream refused, closed or garbled the TCP exchange: on to the next.
    private func failUpstreamAttempt(_ id: UInt16) {
        closeUpstreamConnection(id)
        pending[id]?.attempt += 1
        sendAttempt(id)
    }

    private func closeUpstreamConnection(_ id: UInt16) {
        guard let connection = upstreamConnections.removeValue(forKey: id) else { return }
        close(connection.fd)
    }

    private func expireForwards(_ now: Double) {
        for (id, forward) in pending where forward.deadline <= now {
            pending[id]?.attempt += 1
            sendAttempt(id)
        }
    }

    // MARK: Control

    /// One request per connection: `reload <network>` answers `ok` once the records are
    /// re-read and the network's sockets bound, or `error <why>`; `ping` answers `ok`.
    private func serveControl() {
        let fd = Sockets.accept(controlFD, nonBlocking: false)
        guard fd >= 0 else { return }
        defer { close(fd) }
        var timeout = timeval(tv_sec: 1, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var request: [UInt8] = []
        while !request.contains(UInt8(ascii: "\n")) && request.count < 1024 {
            let count = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, 1024, 0) }
            if count < 0 && errno == EINTR { continue }
            guard count > 0 else { break }
            request += buffer[0..<count]
        }
        let line = String(decoding: request.prefix { $0 != UInt8(ascii: "\n") }, as: UTF8.self)
        let words = line.split(separator: " ").map(String.init)
        let reply: String
        switch words.first {
        case "reload":
            reload()
            if words.count > 1, let error = bindErrors[words[1]] { reply = "error \(error)" } else { reply = "ok" }
        case "ping":
            reply = "ok"
        default:
            reply = "error unknown request \"\(line)\""
        }
        Sockets.writeAll(fd, Array((reply + "\n").utf8))
    }
}

/// The nameservers of a resolv.conf, in order (a zone index, `%eth0`, is dropped: the server
/// cannot use a link-local upstream of another interface anyway).
public enum ResolvConf {
    public static func nameservers(_ text: String) -> [DNSUpstream] {
        text.split(separator: "\n").compactMap { line in
            let words = line.split(whereSeparator: { $0 == " " || $0 == "\t" })
            guard words.count >= 2, words[0] == "nameserver" else { return nil }
            let address = words[1].split(separator: "%").first.map(String.init) ?? ""
            return IPAddress(address).map { DNSUpstream(address: $0) }
        }
    }
}
