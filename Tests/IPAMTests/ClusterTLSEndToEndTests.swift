import ClusterStore
import Foundation
import PierTestSupport
import Testing

/// The built `ipam` plugin in cluster mode against a real etcd that serves TLS only and
/// requires client certificates (made by `openssl` per test): two hosts share the store, and
/// a broken TLS setup fails with code 7 naming the file while a stopped etcd fails with 11,
/// neither leaving anything behind.
@Suite struct ClusterTLSEndToEndTests {
    static let runner = PluginEndToEndTests.runner

    static func conf(_ dir: TemporaryDirectory, store: String) -> String {
        PluginEndToEndTests.conf(dir, #""ranges":[[{"subnet":"10.53.0.0/29"}]],"store":{"type":"etcd",\#(store)}"#)
    }

    static func tlsStore(
        _ etcd: EtcdServer, _ pki: TestPKI, host: String, ca: String? = nil, cert: String? = nil, key: String? = nil
    ) -> String {
        #""endpoints":["\#(etcd.clientURL)"],"prefix":"/e2e","host":"\#(host)","timeoutMilliseconds":2000,"#
            + #""trustedCAFile":"\#(ca ?? pki.caFile)","certFile":"\#(cert ?? pki.clientCertFile)","#
            + #""keyFile":"\#(key ?? pki.clientKeyFile)""#
    }

    /// Every lease record in etcd, read with a client of its own.
    static func leaseKeys(_ etcd: EtcdServer, _ pki: TestPKI) throws -> [String] {
        let store = try EtcdClusterStore(
            endpoints: [etcd.clientURL], prefix: "/e2e",
            security: EtcdSecurity(
                trustedCAFile: pki.caFile, certFile: pki.clientCertFile, keyFile: pki.clientKeyFile))
        return try store.list(prefix: "pier/ipam/e2enet/leases/").records.map(\.key)
    }

    @Test func twoHostsShareATLSStoreThroughThePlugin() throws {
        let dir = try TemporaryDirectory()
        let pki = try TestPKI()
        let etcd = try EtcdServer(tls: .from(pki))
        defer { etcd.stop() }
        let nodeA = Self.conf(dir, store: Self.tlsStore(etcd, pki, host: "node-a"))
        let nodeB = Self.conf(dir, store: Self.tlsStore(etcd, pki, host: "node-b"))

        let first = try PluginEndToEndTests.run("ADD", nodeA, id: "c1")
        #expect(PluginEndToEndTests.addresses(first) == ["10.53.0.2/29"], "\(first.stdout)\(first.stderr)")
        #expect(PluginEndToEndTests.addresses(try PluginEndToEndTests.run("ADD", nodeB, id: "c1")) == ["10.53.0.3/29"])
        #expect(try Self.leaseKeys(etcd, pki).count == 2)
        #expect(try PluginEndToEndTests.run("CHECK", nodeB, id: "c1").status == 0)
        #expect(try PluginEndToEndTests.run("STATUS", nodeA).status == 0)
        #expect(try PluginEndToEndTests.run("DEL", nodeB, id: "c1").status == 0)
        #expect(try PluginEndToEndTests.run("CHECK", nodeB, id: "c1").errorCode == 999)
        #expect(try Self.leaseKeys(etcd, pki).count == 1)
        #expect(try PluginEndToEndTests.run("DEL", nodeA, id: "c1").status == 0)
        #expect(try Self.leaseKeys(etcd, pki).isEmpty)
        #expect(!FileManager.default.fileExists(atPath: dir.path + "/e2enet"), "cluster mode keeps no lease directory")
    }

    @Test func brokenTLSIsCode7NamingTheFileAndAStoppedEtcdIs11() throws {
        let dir = try TemporaryDirectory()
        let pki = try TestPKI()
        let etcd = try EtcdServer(tls: .from(pki))
        defer { etcd.stop() }
        let missingKey = pki.path("absent-key.pem")
        let cases: [(String, [String])] = [
            // Checked before anything is contacted.
            (Self.tlsStore(etcd, pki, host: "node-a", key: missingKey), ["keyFile \(missingKey) does not exist"]),
            (
                Self.tlsStore(
                    etcd, pki, host: "node-a", cert: pki.expiredClientCertFile, key: pki.expiredClientKeyFile),
                ["certFile \(pki.expiredClientCertFile) has expired"]
            ),
            // Found in the handshake.
            (
                Self.tlsStore(etcd, pki, host: "node-a", ca: pki.otherCAFile),
                ["trustedCAFile \(pki.otherCAFile)", "unable to get local issuer certificate"]
            ),
            (
                Self.tlsStore(
                    etcd, pki, host: "node-a", cert: pki.foreignClientCertFile, key: pki.foreignClientKeyFile),
                ["refused the client certificate certFile \(pki.foreignClientCertFile)"]
            ),
        ]
        for (store, words) in cases {
            let output = try PluginEndToEndTests.run("ADD", Self.conf(dir, store: store), id: "c1")
            #expect(output.errorCode == 7, "\(output.stdout)")
            for word in words { #expect(output.stdout.contains(word), "\(output.stdout) lacks \(word)") }
        }
        #expect(try Self.leaseKeys(etcd, pki).isEmpty)
        #expect(dir.names("").isEmpty, "created \(dir.names(""))")

        etcd.stop()
        let down = try PluginEndToEndTests.run(
            "ADD", Self.conf(dir, store: Self.tlsStore(etcd, pki, host: "a")), id: "c1")
        #expect(down.errorCode == 11, "\(down.stdout)")
        #expect(dir.names("").isEmpty, "created \(dir.names(""))")
    }
}
