import Foundation
import PierTestSupport
import Testing

@testable import ClusterStore

/// The etcd store over TLS against real etcds on 127.0.0.1, with certificates made by
/// `openssl` for each test: verification of the server against `trustedCAFile`, client
/// certificates, etcd authentication, failover and a watch across a restart.
@Suite struct EtcdTLSTests {
    func clientSecurity(_ pki: TestPKI, ca: String? = nil, cert: String? = nil, key: String? = nil) -> EtcdSecurity {
        EtcdSecurity(
            trustedCAFile: ca ?? pki.caFile, certFile: cert ?? pki.clientCertFile, keyFile: key ?? pki.clientKeyFile)
    }

    /// The error a store operation throws, or nil (recorded as an issue) when it succeeds.
    func failure(_ body: () throws -> Void) -> ClusterStoreError? {
        do {
            try body()
            Issue.record("expected the operation to fail")
        } catch let error as ClusterStoreError {
            return error
        } catch {
            Issue.record("unexpected error \(error)")
        }
        return nil
    }

    @Test func roundTripWithAClientCertificate() throws {
        let pki = try TestPKI()
        let etcd = try EtcdServer(tls: .from(pki))
        defer { etcd.stop() }
        #expect(etcd.clientURL.hasPrefix("https://"))
        let store = try EtcdClusterStore(endpoints: [etcd.clientURL], prefix: "/tls", security: clientSecurity(pki))
        guard case .written(let first) = try store.create("pier/a", value: "one") else {
            Issue.record("create over TLS failed")
            return
        }
        #expect(try store.create("pier/a", value: "two") == .conflict(current: first))
        try store.put("pier/b", value: "two")
        #expect(try store.list(prefix: "pier/").records.map(\.value) == ["one", "two"])
        #expect(try store.delete("pier/a", ifValue: "one") == .deleted)
        try store.checkHealth()

        // The watch stream runs over TLS too.
        let start = try store.list(prefix: "pier/").revision
        #expect(try store.waitForChange(after: start, timeoutMilliseconds: 200) == start)
        let writer = try EtcdClusterStore(endpoints: [etcd.clientURL], prefix: "/tls", security: clientSecurity(pki))
        try writer.put("pier/c", value: "3")
        #expect(try store.waitForChange(after: start, timeoutMilliseconds: 5000) > start)

        // Plain HTTP to the TLS port gets nowhere.
        let plain = try EtcdClusterStore(endpoints: ["http://127.0.0.1:\(etcd.port)"], timeoutMilliseconds: 1000)
        #expect(throws: ClusterStoreError.self) { try plain.get("pier/b") }
    }

    @Test func aServerCertificateFromAnotherCAIsRefusedNamingTheCAFile() throws {
        let pki = try TestPKI()
        let etcd = try EtcdServer(tls: .from(pki))
        defer { etcd.stop() }
        let store = try EtcdClusterStore(
            endpoints: [etcd.clientURL], prefix: "/tls", security: clientSecurity(pki, ca: pki.otherCAFile))
        let error = failure { _ = try store.create("pier/x", value: "y") }
        #expect(error?.kind == .invalidArgument)
        #expect(error?.description.contains("trustedCAFile \(pki.otherCAFile)") == true)
        #expect(error?.description.contains("unable to get local issuer certificate") == true)
        // Nothing was written.
        let good = try EtcdClusterStore(endpoints: [etcd.clientURL], prefix: "/tls", security: clientSecurity(pki))
        #expect(try good.get("pier/x") == nil)
    }

    @Test func aServerRequiringClientCertificatesRefusesAClientWithout() throws {
        let pki = try TestPKI()
        let etcd = try EtcdServer(tls: .from(pki))
        defer { etcd.stop() }
        let store = try EtcdClusterStore(
            endpoints: [etcd.clientURL], security: EtcdSecurity(trustedCAFile: pki.caFile))
        for _ in 0..<5 {
            let error = failure { _ = try store.get("pier/x") }
            #expect(error?.kind == .invalidArgument)
            #expect(error?.description.contains("requires a client certificate") == true)
            #expect(error?.description.contains("set certFile and keyFile") == true)
        }
        let error = failure { _ = try store.waitForChange(after: 1, timeoutMilliseconds: 500) }
        #expect(error?.kind == .invalidArgument)
        #expect(error?.description.contains("requires a client certificate") == true)
        #expect(error?.description.contains("set certFile and keyFile") == true)
    }

    @Test func anExpiredClientCertificateIsRefusedBeforeConnecting() throws {
        let pki = try TestPKI()
        do {
            _ = try EtcdClusterStore(
                endpoints: ["https://127.0.0.1:1"],
                security: clientSecurity(pki, cert: pki.expiredClientCertFile, key: pki.expiredClientKeyFile))
            Issue.record("an expired client certificate was accepted")
        } catch {
            #expect(error.kind == .invalidArgument)
            #expect(error.description.contains("certFile \(pki.expiredClientCertFile) has expired (valid until 20"))
        }
    }

    @Test func aClientCertificateTheServerDoesNotTrustIsRefusedNamingIt() throws {
        let pki = try TestPKI()
        let etcd = try EtcdServer(tls: .from(pki))
        defer { etcd.stop() }
        let store = try EtcdClusterStore(
            endpoints: [etcd.clientURL],
            security: clientSecurity(pki, cert: pki.foreignClientCertFile, key: pki.foreignClientKeyFile))
        // TLS 1.3 lets the refusal race the request: every attempt must still name the file.
        for _ in 0..<5 {
            let error = failure { _ = try store.get("pier/x") }
            #expect(error?.kind == .invalidArgument, "\(String(describing: error))")
            #expect(
                error?.description.contains("refused the client certificate certFile \(pki.foreignClientCertFile)")
                    == true)
            #expect(error?.description.contains("bad certificate") == true)
        }
    }

    @Test func anExpiredServerCertificateIsRefusedNamingTheCAFile() throws {
        let pki = try TestPKI()
        // etcd's own gateway cannot reach its gRPC side through an expired certificate, so a
        // plain TLS server stands in: the client must give up in the handshake anyway.
        let server = try TLSServer(certFile: pki.expiredServerCertFile, keyFile: pki.expiredServerKeyFile)
        defer { server.stop() }
        let store = try EtcdClusterStore(
            endpoints: ["https://127.0.0.1:\(server.port)"], security: clientSecurity(pki))
        let error = failure { _ = try store.get("pier/x") }
        #expect(error?.kind == .invalidArgument)
        #expect(error?.description.contains("trustedCAFile \(pki.caFile)") == true)
        #expect(error?.description.contains("certificate has expired") == true)
    }

    @Test func aServerCertificateThatDoesNotNameTheEndpointIsRefused() throws {
        let pki = try TestPKI()
        let etcd = try EtcdServer(
            tls: .from(pki, certFile: pki.addressOnlyServerCertFile, keyFile: pki.addressOnlyServerKeyFile))
        defer { etcd.stop() }
        // The certificate names 127.0.0.1 only: by address it is fine, as `localhost` it is not.
        let byAddress = try EtcdClusterStore(endpoints: [etcd.clientURL], security: clientSecurity(pki))
        try byAddress.checkHealth()
        let byName = try EtcdClusterStore(
            endpoints: ["https://localhost:\(etcd.port)"], security: clientSecurity(pki))
        let error = failure { _ = try byName.get("pier/x") }
        #expect(error?.kind == .invalidArgument)
        #expect(error?.description.contains("server certificate of localhost rejected") == true)
        #expect(error?.description.contains("localhost") == true)
    }

    @Test func brokenTLSSettingsAreRefusedBeforeAnythingIsContacted() throws {
        let pki = try TestPKI()
        let notPEM = pki.path("not-pem.pem")
        try "just text\n".write(toFile: notPEM, atomically: true, encoding: .utf8)
        let unreadable = pki.path("directory.pem")
        try FileManager.default.createDirectory(atPath: unreadable, withIntermediateDirectories: false)
        let endpoint = "https://127.0.0.1:1"
        let cases: [(EtcdSecurity, String, [String])] = [
            (
                clientSecurity(pki, ca: pki.path("absent.pem")), endpoint,
                ["trustedCAFile", "absent.pem", "does not exist"]
            ),
            (clientSecurity(pki, cert: notPEM), endpoint, ["certFile \(notPEM)", "is not PEM"]),
            (clientSecurity(pki, key: pki.clientCertFile), endpoint, ["keyFile \(pki.clientCertFile)", "is not PEM"]),
            (clientSecurity(pki, ca: unreadable), endpoint, ["trustedCAFile \(unreadable)", "not readable"]),
            (clientSecurity(pki, ca: "relative.pem"), endpoint, ["trustedCAFile", "absolute"]),
            (EtcdSecurity(certFile: pki.clientCertFile), endpoint, ["certFile is set without keyFile"]),
            (EtcdSecurity(username: "root"), endpoint, ["username is set without password"]),
            (EtcdSecurity(trustedCAFile: pki.caFile), "http://127.0.0.1:1", ["need https://", "http://127.0.0.1:1"]),
        ]
        for (security, endpoint, words) in cases {
            do {
                _ = try EtcdClusterStore(endpoints: [endpoint], security: security)
                Issue.record("accepted \(security)")
            } catch {
                #expect(error.kind == .invalidArgument)
                for word in words { #expect(error.description.contains(word), "\(error) lacks \(word)") }
            }
        }
    }

    @Test func usernameAndPasswordWithTokenRefresh() throws {
        let pki = try TestPKI()
        // Tokens that expire a second after their last use, so the test sees one go stale.
        let etcd = try EtcdServer(
            tls: .from(pki, clientCertificates: false), extraArguments: ["--auth-token-ttl", "1"])
        defer { etcd.stop() }
        try etcd.enableAuthentication(rootPassword: "s3cret")
        let tls = EtcdSecurity(trustedCAFile: pki.caFile)

        let anonymous = try EtcdClusterStore(endpoints: [etcd.clientURL], security: tls)
        let missing = failure { _ = try anonymous.get("pier/x") }
        #expect(missing?.kind == .invalidArgument)
        #expect(missing?.description.contains("set username and password") == true)

        var wrong = tls
        wrong.username = "root"
        wrong.password = "guess"
        let refused = failure { _ = try EtcdClusterStore(endpoints: [etcd.clientURL], security: wrong).get("pier/x") }
        #expect(refused?.kind == .invalidArgument)
        #expect(refused?.description.contains("authentication failed") == true)
        #expect(refused?.description.contains("user root") == true)

        var root = tls
        root.username = "root"
        root.password = "s3cret"
        let store = try EtcdClusterStore(endpoints: [etcd.clientURL], prefix: "/auth", security: root)
        try store.put("pier/a", value: "1")
        let firstToken = try #require(store.token)
        #expect(try store.get("pier/a")?.value == "1")
        #expect(store.token == firstToken)

        // An expired token is refused with "invalid auth token": the store fetches a new one.
        usleep(3_000_000)
        #expect(try store.get("pier/a")?.value == "1")
        #expect(store.token != nil && store.token != firstToken)

        // The watch carries the token as well.
        let start = try store.list(prefix: "pier/").revision
        try EtcdClusterStore(endpoints: [etcd.clientURL], prefix: "/auth", security: root).put("pier/b", value: "2")
        #expect(try store.waitForChange(after: start, timeoutMilliseconds: 5000) > start)
    }

    @Test func failsOverFromADeadFirstEndpoint() throws {
        let pki = try TestPKI()
        let etcd = try EtcdServer(tls: .from(pki))
        defer { etcd.stop() }
        let dead = "https://127.0.0.1:\(try freeLoopbackPort())"
        let store = try EtcdClusterStore(
            endpoints: [dead, etcd.clientURL], prefix: "/f", timeoutMilliseconds: 1000, security: clientSecurity(pki))
        try store.put("pier/f", value: "1")
        #expect(store.preferredEndpoint == 1)
        #expect(try store.get("pier/f")?.value == "1")
        guard case .written = try store.create("pier/g", value: "2") else {
            Issue.record("create after failover failed")
            return
        }
        let start = try store.list(prefix: "pier/").revision
        try EtcdClusterStore(endpoints: [etcd.clientURL], prefix: "/f", security: clientSecurity(pki))
            .put("pier/h", value: "3")
        #expect(try store.waitForChange(after: start, timeoutMilliseconds: 5000) > start)

        // Every endpoint down: unavailable (code 11), naming each.
        etcd.stop()
        let error = failure { _ = try store.get("pier/f") }
        #expect(error?.kind == .unavailable)
        #expect(error?.description.contains(dead) == true)
        #expect(error?.description.contains(etcd.clientURL) == true)
    }

    @Test func aWatchResumesAfterTheMemberRestarts() throws {
        let pki = try TestPKI()
        let etcd = try EtcdServer(tls: .from(pki))
        defer { etcd.stop() }
        let store = try EtcdClusterStore(endpoints: [etcd.clientURL], prefix: "/w", security: clientSecurity(pki))
        try store.put("pier/a", value: "1")
        let start = try store.list(prefix: "pier/").revision
        // A quiet wait leaves the stream open...
        #expect(try store.waitForChange(after: start, timeoutMilliseconds: 200) == start)
        #expect(store.watchStream != nil)
        // ...until the member goes away: the next wait finds it broken and nobody to reconnect to.
        etcd.stop()
        let down = failure { _ = try store.waitForChange(after: start, timeoutMilliseconds: 500) }
        #expect(down?.kind == .unavailable)
        // Back up, with a write made before the watcher returns: the new stream starts right
        // after `start`, so etcd replays it.
        try etcd.start()
        try EtcdClusterStore(endpoints: [etcd.clientURL], prefix: "/w", security: clientSecurity(pki))
            .put("pier/b", value: "2")
        #expect(try store.waitForChange(after: start, timeoutMilliseconds: 5000) > start)

        // The same across a restart while the watcher is waiting.
        let next = try store.list(prefix: "pier/").revision
        #expect(try store.waitForChange(after: next, timeoutMilliseconds: 200) == next)
        etcd.stop()
        try etcd.start()
        try EtcdClusterStore(endpoints: [etcd.clientURL], prefix: "/w", security: clientSecurity(pki))
            .put("pier/c", value: "3")
        #expect(try store.waitForChange(after: next, timeoutMilliseconds: 5000) > next)
    }
}

/// `openssl s_server` on a free loopback port, for TLS handshakes etcd cannot be made to offer.
final class TLSServer {
    let port: Int
    private let process = Process()

    init(certFile: String, keyFile: String) throws {
        port = try freeLoopbackPort()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/openssl")
        process.arguments = [
            "s_server", "-accept", "127.0.0.1:\(port)", "-cert", certFile, "-key", keyFile, "-www", "-quiet",
        ]
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        for _ in 0..<100 {
            if (try? runCommand(["bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/\(port)"], timeout: 2))?.succeeded == true {
                return
            }
            usleep(50_000)
        }
        stop()
        throw TLSServerDidNotListen(port: port)
    }

    func stop() {
        guard process.isRunning else { return }
        // SIGKILL: a child of the test runner may inherit SIGTERM as ignored.
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
    }
}

struct TLSServerDidNotListen: Error {
    let port: Int
}
