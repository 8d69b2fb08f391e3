internal import CCurl
import PierState

/// How Pier proves who it is to etcd and checks who etcd is: TLS files and etcd's own
/// user/password authentication, under the `store` config's key names.
public struct EtcdSecurity: Sendable, Hashable {
    /// PEM CA certificates that members' server certificates must chain to; without it, the
    /// system's trusted CAs.
    public var trustedCAFile: String?
    /// PEM client certificate, for members started with `--client-cert-auth`.
    public var certFile: String?
    /// PEM private key of `certFile`.
    public var keyFile: String?
    /// etcd user (with `password`), for clusters with authentication enabled.
    public var username: String?
    public var password: String?

    public init(
        trustedCAFile: String? = nil, certFile: String? = nil, keyFile: String? = nil, username: String? = nil,
        password: String? = nil
    ) {
        self.trustedCAFile = trustedCAFile
        self.certFile = certFile
        self.keyFile = keyFile
        self.username = username
        self.password = password
    }

    var hasTLSFiles: Bool { trustedCAFile != nil || certFile != nil || keyFile != nil }

    /// Refuses a configuration that cannot work, before anything is contacted: TLS files with
    /// plain-HTTP endpoints, a certificate without its key (or the reverse), a user without a
    /// password, and files that are missing, unreadable or not PEM. Errors name the key and file.
    func validate(endpoints: [HTTPEndpoint]) throws(ClusterStoreError) {
        if hasTLSFiles, let plain = endpoints.first(where: { !$0.isTLS }) {
            throw Self.invalid(
                "trustedCAFile, certFile and keyFile need https:// endpoints, but \(plain) is plain HTTP")
        }
        if (certFile == nil) != (keyFile == nil) {
            throw Self.invalid(certFile == nil ? "keyFile is set without certFile" : "certFile is set without keyFile")
        }
        if (username == nil) != (password == nil) {
            throw Self.invalid(
                username == nil ? "password is set without username" : "username is set without password")
        }
        if let username, username.isEmpty { throw Self.invalid("username is empty") }
        if let trustedCAFile { try Self.checkPEM(trustedCAFile, key: "trustedCAFile", wants: "CERTIFICATE") }
        if let certFile {
            try Self.checkPEM(certFile, key: "certFile", wants: "CERTIFICATE")
            try Self.checkValidity(certFile, key: "certFile")
        }
        if let keyFile { try Self.checkPEM(keyFile, key: "keyFile", wants: "PRIVATE KEY") }
    }

    /// The file exists, is readable and holds a PEM block whose label ends in `wants`
    /// (`CERTIFICATE`; `PRIVATE KEY` also matches `RSA PRIVATE KEY` and `EC PRIVATE KEY`).
    static func checkPEM(_ path: String, key: String, wants label: String) throws(ClusterStoreError) {
        guard path.hasPrefix("/") else { throw invalid("\(key) \"\(path)\" must be an absolute path") }
        let contents: [UInt8]?
        do {
            contents = try FileSystem.read(path)
        } catch {
            throw invalid("\(key) \(path) is not readable: \(error)")
        }
        guard let contents else { throw invalid("\(key) \(path) does not exist") }
        let text = String(decoding: contents, as: UTF8.self)
        let hasBlock = text.split(whereSeparator: \.isNewline).contains { line in
            line.hasPrefix("-----BEGIN ") && line.trimmingTrailingSpace().hasSuffix("\(label)-----")
        }
        guard hasBlock else {
            throw invalid("\(key) \(path) is not PEM: it has no \"-----BEGIN ...\(label)-----\" block")
        }
    }

    /// A client certificate outside its validity period is refused here: servers answer one
    /// with a bare "bad certificate" alert that does not say why.
    static func checkValidity(_ path: String, key: String) throws(ClusterStoreError) {
        var when = [CChar](repeating: 0, count: 64)
        let verdict = pier_tls_certificate_validity(path, &when, when.count)
        let date = String(decoding: when.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        switch verdict {
        case 1: throw invalid("\(key) \(path) has expired (valid until \(date))")
        case 2: throw invalid("\(key) \(path) is not valid yet (valid from \(date))")
        default: return
        }
    }

    private static func invalid(_ message: String) -> ClusterStoreError {
        ClusterStoreError(.invalidArgument, operation: "etcd store config", message: message)
    }
}

extension Substring {
    fileprivate func trimmingTrailingSpace() -> Substring {
        var line = self
        while let last = line.last, last == "\r" || last == " " || last == "\t" { line.removeLast() }
        return line
    }
}
