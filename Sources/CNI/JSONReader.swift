import IPAddressing

/// Typed access to a JSON object whose failures name the offending key by its full path
/// (`ipam.ranges[0].subnet`), so a user can find the mistake in their config.
struct JSONReader {
    let object: JSONObject
    /// The path of this object inside the document; empty for the top level.
    let path: String
    let code: CNIErrorCode
    /// What was being read, leading every message (`invalid network config`).
    let context: String

    init(_ object: JSONObject, path: String = "", code: CNIErrorCode, context: String) {
        self.object = object
        self.path = path
        self.code = code
        self.context = context
    }

    /// Reads the top level of a document, which must be an object.
    init(_ value: JSONValue, code: CNIErrorCode, context: String) throws(CNIError) {
        guard let object = value.objectValue else {
            throw CNIError(code, "\(context): expected a JSON object, got \(value.kindName)")
        }
        self.init(object, code: code, context: context)
    }

    func keyPath(_ key: String) -> String { path.isEmpty ? key : "\(path).\(key)" }

    func failure(_ key: String, _ problem: String) -> CNIError {
        CNIError(code, "\(context): key \"\(keyPath(key))\": \(problem)")
    }

    func mismatch(_ key: String, expected: String, got value: JSONValue) -> CNIError {
        failure(key, "expected \(expected), got \(value.kindName)")
    }

    /// A present, non-null value; null counts as absent as it does for Go's decoder.
    func value(_ key: String) -> JSONValue? {
        guard let value = object[key], value != .null else { return nil }
        return value
    }

    func string(_ key: String) throws(CNIError) -> String? {
        guard let value = value(key) else { return nil }
        guard let text = value.stringValue else { throw mismatch(key, expected: "string", got: value) }
        return text
    }

    func requiredString(_ key: String) throws(CNIError) -> String {
        guard let text = try string(key) else { throw failure(key, "missing") }
        return text
    }

    func bool(_ key: String) throws(CNIError) -> Bool? {
        guard let value = value(key) else { return nil }
        guard let flag = value.boolValue else { throw mismatch(key, expected: "boolean", got: value) }
        return flag
    }

    func int(_ key: String) throws(CNIError) -> Int? {
        guard let value = value(key) else { return nil }
        guard let number = value.intValue else { throw mismatch(key, expected: "integer", got: value) }
        return number
    }

    func reader(_ key: String) throws(CNIError) -> JSONReader? {
        guard let value = value(key) else { return nil }
        guard let object = value.objectValue else { throw mismatch(key, expected: "object", got: value) }
        return JSONReader(object, path: keyPath(key), code: code, context: context)
    }

    func array(_ key: String) throws(CNIError) -> [JSONValue]? {
        guard let value = value(key) else { return nil }
        guard let elements = value.arrayValue else { throw mismatch(key, expected: "array", got: value) }
        return elements
    }

    func readers(_ key: String) throws(CNIError) -> [JSONReader]? {
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

    func strings(_ key: String) throws(CNIError) -> [String]? {
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

    func prefix(_ key: String) throws(CNIError) -> IPPrefix? {
        guard let text = try string(key) else { return nil }
        guard let prefix = IPPrefix(text) else { throw failure(key, "invalid CIDR \"\(text)\"") }
        return prefix
    }

    func address(_ key: String) throws(CNIError) -> IPAddress? {
        guard let text = try string(key) else { return nil }
        guard let address = IPAddress(text) else { throw failure(key, "invalid IP address \"\(text)\"") }
        return address
    }
}
