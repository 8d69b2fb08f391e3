import PierState

/// The result's `dns` object.
public struct DNSSettings: Sendable, Hashable {
    public var nameservers: [String] = []
    public var domain: String?
    public var search: [String] = []
    public var options: [String] = []

    public init(nameservers: [String] = [], domain: String? = nil, search: [String] = [], options: [String] = []) {
        self.nameservers = nameservers
        self.domain = domain
        self.search = search
        self.options = options
    }

    public var isEmpty: Bool { nameservers.isEmpty && domain == nil && search.isEmpty && options.isEmpty }

    /// Parses resolv.conf text the way host-local does: `nameserver`, `domain`, `search` and
    /// `options` lines; `#`/`;` comments and other keywords ignored.
    public init(resolvConf text: String) {
        for line in text.split(whereSeparator: \.isNewline) {
            let fields = line.split(whereSeparator: { $0 == " " || $0 == "\t" }).map(String.init)
            guard let keyword = fields.first, !keyword.hasPrefix("#"), !keyword.hasPrefix(";") else { continue }
            let values = Array(fields.dropFirst())
            switch keyword {
            case "nameserver": nameservers.append(contentsOf: values.prefix(1))
            case "domain": domain = values.first
            case "search": search = values
            case "options": options.append(contentsOf: values)
            default: continue
            }
        }
    }

    /// Reads and parses a resolv.conf file; a missing or unreadable file is a config error.
    public static func load(resolvConf path: String) throws(IPAMError) -> DNSSettings {
        let contents: [UInt8]?
        do {
            contents = try FileSystem.read(path)
        } catch {
            throw IPAMError(.invalidConfig, "cannot read resolvConf \"\(path)\"", details: error.description)
        }
        guard let data = contents else { throw IPAMError(.invalidConfig, "resolvConf \"\(path)\" does not exist") }
        return DNSSettings(resolvConf: String(decoding: data, as: UTF8.self))
    }
}
