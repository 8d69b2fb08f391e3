import IPAddressing
// Every module that speaks CNI speaks JSON: `import CNI` brings the one JSON implementation along.
@_exported import JSON

/// A value read from one JSON object of a config, such as a plugin's own keys. Unknown keys are
/// ignored; a wrongly typed key is a `JSONReader` failure naming the key.
public protocol JSONReadable {
    init(_ reader: JSONReader) throws(CNIError)
}

/// Typed access to a JSON object whose failures name the offending key by its full path
/// (`ipam.ranges[0].subnet`), so a user can find the mistake in their config. Null counts as absent,
/// as it does for Go's decoder.
public struct JSONReader: Sendable {
    public let object: JSONObject
    /// The path of this object inside the document; empty for the top level.
    public let path: String
    public let code: CNIErrorCode
    /// What was being read, leading every message (`invalid network config`).
    public let context: String

    public init(_ object: JSONObject, path: String = "", code: CNIErrorCode, context: String) {
        self.object = object
        self.path = path
        self.code = code
        self.context = context
    }

    /// Reads the top level of a document, which must be an object.
    public init(_ value: JSONValue, code: CNIErrorCode, context: String) throws(CNIError) {
        guard let object = value.objectValue else {
            throw CNIError(code, "\(context): expected a JSON object, got \(value.kindName)")
        }
        self.init(object, code: code, context: context)
    }

    public func keyPath(_ key: String) -> String { path.isEmpty ? key : "\(path).\(key)" }

    public func failure(_ key: String, _ problem: String) -> CNIError {
        CNIError(code, "\(context): key \"\(keyPath(key))\": \(problem)")
    }

    public func mismatch(_ key: String, expected: String, got value: JSONValue) -> CNIError {
        failure(key, "expected \(expected), got \(value.kindName)")
    }

    /// A present, non-null value; null counts as absent as it does for Go's decoder. Keys match
    /// as Go's decoder matches struct fields, which every other CNI tool reads configs with: the
    /// exact key first, else any key equal to it ignoring case (containerd sends `HostPort`,
    /// `IngressRate` in runtimeConfig; the reference plugins accept them).
    public func value(_ key: String) -> JSONValue? {
        guard let value = object[key] ?? Self.caseInsensitiveMatch(key, in: object), value != .null else {
            return nil
        }
        return value
    }

    private static func caseInsensitiveMatch(_ key: String, in object: JSONObject) -> JSONValue? {
        let folded = key.lowercased()
        return object.entries.first { $0.key.lowercased() == folded }?.value
    }

    public func string(_ key: String) throws(CNIError) -> String? {
        guard let value = value(key) else { return nil }
        guard let text = value.stringValue else { throw mismatch(key, expected: "string", got: value) }
        return text
    }

    public func requiredString(_ key: String) throws(CNIError) -> String {
        guard let text = try string(key) else { throw failure(key, "missing") }
        return text
    }

    public func bool(_ key: String) throws(CNIError) -> Bool? {
        guard let value = value(key) else { return nil }
        guard let flag = value.boolValue else { throw mismatch(key, expected: "boolean", got: value) }
        return flag
    }

    public func int(_ key: String) throws(CNIError) -> Int? {
        guard let value = value(key) else { return nil }
        guard let number = value.intValue else { throw mismatch(key, expected: "integer", got: value) }
        return number
    }

    public func reader(_ key: String) throws(CNIError) -> JSONReader? {
        guard let value = value(key) else { return nil }
        guard let object = value.objectValue else { throw mismatch(key, expected: "object", got: value) }
        return JSONReader(object, path: keyPath(key), code: code, context: context)
    }

    public func array(_ key: String) throws(CNIError) -> [JSONValue]? {
        guard let value = value(key) else { return nil }
        guard let elements = value.arrayValue else { throw mismatch(key, expected: "array", got: value) }
        return elements
    }

    public func readers(_ key: String) throws(CNIError) -> [JSONReader]? {
        guard let elements = try array(key) else { return nil }
        var readers: [JSONReader] = []
        for (index, element) in elements.enumerated() {
            let elementKey = "\(key)[\(index)]"
            guard let object = element.objectValue else {
                throw mismatch(elementKey, expected: "object", got: element)
            }
            readers.append(JSONReader(object, path: keyPath(elementKey), code: code, context: context))
        }
        return readers
    }

    public func strings(_ key: String) throws(CNIError) -> [String]? {
        guard let elements = try array(key) else { return nil }
        var strings: [String] = []
        for (index, element) in elements.enumerated() {
            guard let text = element.stringValue else {
                throw mismatch("\(key)[\(index)]", expected: "string", got: element)
            }
            strings.append(text)
        }
        return strings
    }

    public func prefix(_ key: String) throws(CNIError) -> IPPrefix? {
        guard let text = try string(key) else { return nil }
        guard let prefix = IPPrefix(text) else { throw failure(key, "invalid CIDR \"\(text)\"") }
        return prefix
    }

    public func address(_ key: String) throws(CNIError) -> IPAddress? {
        guard let text = try string(key) else { return nil }
        guard let address = IPAddress(text) else { throw failure(key, "invalid IP address \"\(text)\"") }
        return address
    }

    public func requiredInt(_ key: String) throws(CNIError) -> Int {
        guard let number = try int(key) else { throw failure(key, "missing") }
        return number
    }

    /// A nested object read as its own type.
    public func read<T: JSONReadable>(_ key: String, as type: T.Type) throws(CNIError) -> T? {
        guard let nested = try reader(key) else { return nil }
        return try T(nested)
    }

    /// An array of objects, each read as its own type.
    public func readAll<T: JSONReadable>(_ key: String, as type: T.Type) throws(CNIError) -> [T]? {
        guard let elements = try readers(key) else { return nil }
        var values: [T] = []
        values.reserveCapacity(elements.count)
        for element in elements { values.append(try T(element)) }
        return values
    }
}
