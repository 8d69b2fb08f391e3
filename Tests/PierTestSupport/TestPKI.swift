import Foundation

/// Throwaway certificates for TLS tests, made with `openssl` in a temporary directory at test
/// time: a CA, a server certificate for 127.0.0.1 and localhost, a client certificate, expired
/// client and server certificates, a server certificate for 127.0.0.1 alone, and a second CA
/// with a client certificate of its own. Keys are P-256. The directory is removed on deinit.
public final class TestPKI: @unchecked Sendable {
    public let directory: String

    public var caFile: String { path("ca.pem") }
    /// A CA that signed none of the certificates below.
    public var otherCAFile: String { path("other-ca.pem") }
    public var serverCertFile: String { path("server.pem") }
    public var serverKeyFile: String { path("server-key.pem") }
    public var clientCertFile: String { path("client.pem") }
    public var clientKeyFile: String { path("client-key.pem") }
    /// A client certificate whose validity ended before it began.
    public var expiredClientCertFile: String { path("expired-client.pem") }
    public var expiredClientKeyFile: String { path("expired-client-key.pem") }
    /// A client certificate signed by the other CA, which servers of this PKI do not trust.
    public var foreignClientCertFile: String { path("foreign-client.pem") }
    public var foreignClientKeyFile: String { path("foreign-client-key.pem") }
    public var expiredServerCertFile: String { path("expired-server.pem") }
    public var expiredServerKeyFile: String { path("expired-server-key.pem") }
    /// A server certificate for the address 127.0.0.1 only: `localhost` is not among its names.
    public var addressOnlyServerCertFile: String { path("address-only-server.pem") }
    public var addressOnlyServerKeyFile: String { path("address-only-server-key.pem") }

    public init() throws {
        directory = NSTemporaryDirectory() + "pier-t-pki-\(uniqueTag())"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        do {
            try makeCA("ca", name: "pier-test-ca")
            try makeCA("other-ca", name: "pier-test-other-ca")
            let serverNames = "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth,clientAuth\n"
            try issue("server", name: "pier-test-etcd", extensions: serverNames)
            try issue("client", name: "pier", extensions: "extendedKeyUsage=clientAuth\n")
            try issue("expired-client", name: "pier", extensions: "extendedKeyUsage=clientAuth\n", days: -1)
            try issue(
                "foreign-client", name: "pier", extensions: "extendedKeyUsage=clientAuth\n", issuer: "other-ca")
            try issue("expired-server", name: "pier-test-etcd", extensions: serverNames, days: -1)
            try issue(
                "address-only-server", name: "pier-test-etcd",
                extensions: "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth,clientAuth\n")
        } catch {
            try? FileManager.default.removeItem(atPath: directory)
            throw error
        }
    }

    deinit { try? FileManager.default.removeItem(atPath: directory) }

    public func path(_ name: String) -> String { directory + "/" + name }

    private func makeCA(_ stem: String, name: String) throws {
        try openssl([
            "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout",
            path("\(stem)-key.pem"), "-out", path("\(stem).pem"), "-days", "2", "-subj", "/CN=\(name)",
        ])
    }

    /// A key and a certificate signed by `issuer` (the CA); `days: -1` makes one that has expired.
    private func issue(_ stem: String, name: String, extensions: String, days: Int = 2, issuer: String = "ca") throws {
        let extensionsFile = path("\(stem).ext")
        try extensions.write(toFile: extensionsFile, atomically: true, encoding: .utf8)
        try openssl([
            "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout",
            path("\(stem)-key.pem"), "-out", path("\(stem).csr"), "-subj", "/CN=\(name)",
        ])
        try openssl([
            "x509", "-req", "-in", path("\(stem).csr"), "-CA", path("\(issuer).pem"), "-CAkey",
            path("\(issuer)-key.pem"),
            "-CAcreateserial", "-days", String(days), "-extfile", extensionsFile, "-out", path("\(stem).pem"),
        ])
    }

    private func openssl(_ arguments: [String]) throws {
        let result = try runCommand(["openssl"] + arguments, timeout: 30)
        guard result.succeeded else { throw OpenSSLFailed(arguments: arguments, output: result.stderr) }
    }
}

public struct OpenSSLFailed: Error, CustomStringConvertible {
    public let arguments: [String]
    public let output: String
    public var description: String { "openssl \(arguments.joined(separator: " ")) failed: \(output)" }
}
