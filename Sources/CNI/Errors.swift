/// The error codes of the CNI spec (0–99 reserved) plus the two the Go library added, and room for
/// plugin-specific codes (100 and above).
public enum CNIErrorCode: Sendable, Hashable, CustomStringConvertible {
    case incompatibleVersion
    case unsupportedField
    case unknownContainer
    case invalidEnvironmentVariables
    case ioFailure
    case decodingFailure
    case invalidNetworkConfig
    /// Go library extension: `CNI_NETNS` is the plugin's own network namespace.
    case invalidNetNS
    case tryAgainLater
    case pluginNotAvailable
    case pluginNotAvailableLimitedConnectivity
    /// Go library extension for any other failure of plugin code.
    case internalError
    case pluginSpecific(UInt)

    public init(rawValue: UInt) {
        switch rawValue {
        case 1: self = .incompatibleVersion
        case 2: self = .unsupportedField
        case 3: self = .unknownContainer
        case 4: self = .invalidEnvironmentVariables
        case 5: self = .ioFailure
        case 6: self = .decodingFailure
        case 7: self = .invalidNetworkConfig
        case 8: self = .invalidNetNS
        case 11: self = .tryAgainLater
        case 50: self = .pluginNotAvailable
        case 51: self = .pluginNotAvailableLimitedConnectivity
        case 999: self = .internalError
        default: self = .pluginSpecific(rawValue)
        }
    }

    public var rawValue: UInt {
        switch self {
        case .incompatibleVersion: return 1
        case .unsupportedField: return 2
        case .unknownContainer: return 3
        case .invalidEnvironmentVariables: return 4
        case .ioFailure: return 5
        case .decodingFailure: return 6
        case .invalidNetworkConfig: return 7
        case .invalidNetNS: return 8
        case .tryAgainLater: return 11
        case .pluginNotAvailable: return 50
        case .pluginNotAvailableLimitedConnectivity: return 51
        case .internalError: return 999
        case .pluginSpecific(let code): return code
        }
    }

    public var description: String { String(rawValue) }
}

/// The one error type that crosses the plugin boundary: it is what a plugin prints on stdout when it
/// fails and what a runtime or delegating plugin reads back.
public struct CNIError: Error, Sendable, Equatable, CustomStringConvertible {
    public var code: CNIErrorCode
    public var msg: String
    public var details: String

    public init(_ code: CNIErrorCode, _ msg: String, details: String = "") {
        self.code = code
        self.msg = msg
        self.details = details
    }

    public var description: String {
        details.isEmpty ? msg : "\(msg); \(details)"
    }

    /// The wire form. The Go type omits `cniVersion`, but the spec asks for it; the input version is
    /// used when known so that old runtimes can still parse it.
    public func json(cniVersion: String?) -> JSONValue {
        var object = JSONObject()
        object["cniVersion"] = .string(cniVersion ?? CNIVersion.current)
        object["code"] = .integer(code.rawValue)
        object["msg"] = .string(msg)
        if !details.isEmpty { object["details"] = .string(details) }
        return .object(object)
    }

    /// Reads an Error document printed by another plugin. A missing or zero code becomes
    /// `internalError` so that a failure is never mistaken for success.
    public init?(json: JSONValue) {
        guard let object = json.objectValue, let msg = object["msg"]?.stringValue else { return nil }
        let rawCode = object["code"]?.intValue ?? 0
        self.init(
            rawCode > 0 ? CNIErrorCode(rawValue: UInt(rawCode)) : .internalError, msg,
            details: object["details"]?.stringValue ?? "")
    }
}

/// Lets another module's typed errors choose their spec code instead of the generic 999, without the
/// plugin having to catch and rewrap them.
public protocol CNIErrorConvertible: Error {
    var cniError: CNIError { get }
}

extension CNIError {
    /// The single place where any error from plugin code becomes a spec error.
    public init(converting error: any Error) {
        if let error = error as? CNIError {
            self = error
        } else if let convertible = error as? any CNIErrorConvertible {
            self = convertible.cniError
        } else {
            self.init(.internalError, String(describing: error))
        }
    }
}
