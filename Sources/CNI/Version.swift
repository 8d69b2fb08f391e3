/// Spec versions this library speaks, and the comparisons the version rules need.
public enum CNIVersion {
    /// The newest version; used when the input's version is unknown.
    public static let current = "1.1.0"
    /// Oldest first, as Go's `version.All` lists them.
    public static let all = ["0.1.0", "0.2.0", "0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"]
    /// What a config without `cniVersion` means.
    public static let implied = "0.1.0"

    /// Orders two version strings numerically (`0.10.0` > `0.9.0`). Missing parts count as zero.
    public static func compare(_ lhs: String, _ rhs: String) throws(CNIError) -> Int {
        let left = try SemanticVersion(parsing: lhs)
        let right = try SemanticVersion(parsing: rhs)
        return left == right ? 0 : (left < right ? -1 : 1)
    }

    public static func isAtLeast(_ version: String, _ minimum: String) throws(CNIError) -> Bool {
        try compare(version, minimum) >= 0
    }

    /// The spec's exact-match rule: a plugin serves only versions it lists.
    public static func checkSupported(_ version: String, supported: [String]) throws(CNIError) {
        guard supported.contains(version) else {
            let quoted = supported.map { "\"\($0)\"" }.joined(separator: " ")
            throw CNIError(
                .incompatibleVersion, "incompatible CNI versions",
                details: "config is \"\(version)\", plugin supports [\(quoted)]")
        }
    }

    /// The newest of `versions` that is not newer than `current`, as libcni picks from `cniVersions`.
    public static func newestUsable(_ versions: [String]) -> String? {
        let usable = versions.compactMap { text -> (String, SemanticVersion)? in
            guard let parsed = try? SemanticVersion(parsing: text),
                let ceiling = try? SemanticVersion(parsing: current), !(ceiling < parsed)
            else { return nil }
            return (text, parsed)
        }
        return usable.max { $0.1 < $1.1 }?.0
    }
}

/// `major.minor.patch`, numerically ordered.
public struct SemanticVersion: Sendable, Hashable, Comparable, CustomStringConvertible {
    public let major: Int
    public let minor: Int
    public let patch: Int

    public init(major: Int, minor: Int, patch: Int) {
        self.major = major
        self.minor = minor
        self.patch = patch
    }

    /// Accepts one to three dot-separated non-negative integers, like Go's `version.ParseVersion`.
    public init(parsing text: String) throws(CNIError) {
        guard !text.isEmpty else {
            throw CNIError(.decodingFailure, "invalid version \"\(text)\": the version is empty")
        }
        let parts = text.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count <= 3 else { throw CNIError(.decodingFailure, "invalid version \"\(text)\": too many parts") }
        var numbers: [Int] = []
        for (index, part) in parts.enumerated() {
            guard !part.isEmpty, part.allSatisfy({ $0.isASCII && $0.isNumber }), let number = Int(part) else {
                let which = ["major", "minor", "micro"][index]
                throw CNIError(.decodingFailure, "invalid version \"\(text)\": \(which) version must be a number")
            }
            numbers.append(number)
        }
        while numbers.count < 3 { numbers.append(0) }
        self.init(major: numbers[0], minor: numbers[1], patch: numbers[2])
    }

    public var description: String { "\(major).\(minor).\(patch)" }

    public static func < (lhs: SemanticVersion, rhs: SemanticVersion) -> Bool {
        (lhs.major, lhs.minor, lhs.patch) < (rhs.major, rhs.minor, rhs.patch)
    }
}

/// The answer to the VERSION verb.
public struct VersionInfo: Sendable, Equatable {
    public var cniVersion: String
    public var supportedVersions: [String]

    public init(cniVersion: String = CNIVersion.current, supportedVersions: [String] = CNIVersion.all) {
        self.cniVersion = cniVersion
        self.supportedVersions = supportedVersions
    }

    public var json: JSONValue {
        .object(
            JSONObject([
                ("cniVersion", .string(cniVersion)),
                ("supportedVersions", .array(supportedVersions.map { .string($0) })),
            ]))
    }

    /// Reads a plugin's VERSION answer. A 0.2.0 answer without a list means 0.1.0 and 0.2.0, and an
    /// answer without either key comes from a pre-VERSION plugin, which only spoke 0.1.0.
    public init(decoding bytes: [UInt8]) throws(CNIError) {
        let value: JSONValue
        do { value = try JSONValue(parsing: bytes) } catch {
            throw CNIError(.decodingFailure, "decoding version info: \(error)")
        }
        guard let object = value.objectValue else {
            throw CNIError(.decodingFailure, "decoding version info: not a JSON object")
        }
        let version = object["cniVersion"]?.stringValue ?? ""
        if let list = object["supportedVersions"]?.arrayValue {
            let versions = list.compactMap(\.stringValue)
            guard versions.count == list.count else {
                throw CNIError(.decodingFailure, "decoding version info: supportedVersions must be strings")
            }
            self.init(cniVersion: version, supportedVersions: versions)
        } else if version == "0.2.0" || version.isEmpty {
            self.init(cniVersion: version, supportedVersions: version.isEmpty ? ["0.1.0"] : ["0.1.0", "0.2.0"])
        } else {
            throw CNIError(.decodingFailure, "decoding version info: missing supportedVersions")
        }
    }
}
