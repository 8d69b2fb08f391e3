import JSON

// The etcd v3 gRPC-gateway's JSON forms: keys and values are base64, 64-bit integers are
// decimal strings, and fields at their default value (false, 0, empty) are left out.
// Requests are built as `JSONValue`s; answers are read leniently (a field of an unexpected
// type counts as absent), but an answer that is not an object is refused.

/// A request body.
protocol EtcdRequestBody {
    var json: JSONValue { get }
}

/// An answer body; nil when it is not the object etcd sends.
protocol EtcdResponseBody {
    init?(json: JSONValue)
}

extension JSONObject {
    /// Adds the entry only when there is a value: etcd's gateway leaves defaults out.
    fileprivate mutating func setIfPresent(_ key: String, _ value: JSONValue?) {
        if let value { self[key] = value }
    }
}

extension JSONValue {
    /// The elements of an array field, each read as `T`; elements that are not objects are skipped.
    fileprivate func list<T: EtcdResponseBody>(_ key: String, as type: T.Type) -> [T]? {
        self[key]?.arrayValue.map { $0.compactMap { T(json: $0) } }
    }
}

struct EtcdKeyValue: EtcdResponseBody {
    var key: String
    var value: String?
    var mod_revision: String?

    init?(json: JSONValue) {
        guard json.objectValue != nil else { return nil }
        key = json["key"]?.stringValue ?? ""
        value = json["value"]?.stringValue
        mod_revision = json["mod_revision"]?.stringValue
    }
}

struct EtcdHeader: EtcdResponseBody {
    var revision: String?

    var revisionNumber: UInt64 { revision.flatMap { UInt64($0) } ?? 0 }

    init?(json: JSONValue) {
        guard json.objectValue != nil else { return nil }
        revision = json["revision"]?.stringValue
    }
}

struct EtcdRangeRequest: EtcdRequestBody {
    var key: String
    var range_end: String?
    var count_only: Bool?

    var json: JSONValue {
        var object: JSONObject = ["key": .string(key)]
        object.setIfPresent("range_end", range_end.map(JSONValue.string))
        object.setIfPresent("count_only", count_only.map(JSONValue.bool))
        return .object(object)
    }
}

struct EtcdRangeResponse: EtcdResponseBody {
    var header: EtcdHeader?
    var kvs: [EtcdKeyValue]?

    init?(json: JSONValue) {
        guard json.objectValue != nil else { return nil }
        header = json["header"].flatMap(EtcdHeader.init(json:))
        kvs = json.list("kvs", as: EtcdKeyValue.self)
    }
}

struct EtcdPutRequest: EtcdRequestBody {
    var key: String
    var value: String

    var json: JSONValue { .object(["key": .string(key), "value": .string(value)]) }
}

struct EtcdPutResponse: EtcdResponseBody {
    var header: EtcdHeader?

    init?(json: JSONValue) {
        guard json.objectValue != nil else { return nil }
        header = json["header"].flatMap(EtcdHeader.init(json:))
    }
}

struct EtcdDeleteRequest: EtcdRequestBody {
    var key: String

    var json: JSONValue { .object(["key": .string(key)]) }
}

struct EtcdCompare: EtcdRequestBody {
    var key: String
    var result = "EQUAL"
    var target: String
    var create_revision: String?
    var mod_revision: String?
    var value: String?

    var json: JSONValue {
        var object: JSONObject = ["key": .string(key), "result": .string(result), "target": .string(target)]
        object.setIfPresent("create_revision", create_revision.map(JSONValue.string))
        object.setIfPresent("mod_revision", mod_revision.map(JSONValue.string))
        object.setIfPresent("value", value.map(JSONValue.string))
        return .object(object)
    }
}

struct EtcdRequestOp: EtcdRequestBody {
    var request_range: EtcdRangeRequest?
    var request_put: EtcdPutRequest?
    var request_delete_range: EtcdDeleteRequest?

    var json: JSONValue {
        var object = JSONObject()
        object.setIfPresent("request_range", request_range?.json)
        object.setIfPresent("request_put", request_put?.json)
        object.setIfPresent("request_delete_range", request_delete_range?.json)
        return .object(object)
    }
}

struct EtcdTxnRequest: EtcdRequestBody {
    var compare: [EtcdCompare]
    var success: [EtcdRequestOp]
    var failure: [EtcdRequestOp]

    var json: JSONValue {
        .object([
            "compare": .array(compare.map(\.json)), "success": .array(success.map(\.json)),
            "failure": .array(failure.map(\.json)),
        ])
    }
}

struct EtcdResponseOp: EtcdResponseBody {
    var response_range: EtcdRangeResponse?

    init?(json: JSONValue) {
        guard json.objectValue != nil else { return nil }
        response_range = json["response_range"].flatMap(EtcdRangeResponse.init(json:))
    }
}

struct EtcdTxnResponse: EtcdResponseBody {
    var header: EtcdHeader?
    var succeeded: Bool?
    var responses: [EtcdResponseOp]?

    init?(json: JSONValue) {
        guard json.objectValue != nil else { return nil }
        header = json["header"].flatMap(EtcdHeader.init(json:))
        succeeded = json["succeeded"]?.boolValue
        responses = json.list("responses", as: EtcdResponseOp.self)
    }
}

struct EtcdWatchCreate: EtcdRequestBody {
    var key: String
    var range_end: String
    var start_revision: String

    var json: JSONValue {
        .object(["key": .string(key), "range_end": .string(range_end), "start_revision": .string(start_revision)])
    }
}

struct EtcdWatchRequest: EtcdRequestBody {
    var create_request: EtcdWatchCreate

    var json: JSONValue { .object(["create_request": create_request.json]) }
}

struct EtcdWatchEvent: EtcdResponseBody {
    var kv: EtcdKeyValue?

    init?(json: JSONValue) {
        guard json.objectValue != nil else { return nil }
        kv = json["kv"].flatMap(EtcdKeyValue.init(json:))
    }
}

struct EtcdWatchResult: EtcdResponseBody {
    var header: EtcdHeader?
    var created: Bool?
    var canceled: Bool?
    var compact_revision: String?
    var events: [EtcdWatchEvent]?

    init?(json: JSONValue) {
        guard json.objectValue != nil else { return nil }
        header = json["header"].flatMap(EtcdHeader.init(json:))
        created = json["created"]?.boolValue
        canceled = json["canceled"]?.boolValue
        compact_revision = json["compact_revision"]?.stringValue
        events = json.list("events", as: EtcdWatchEvent.self)
    }
}

/// One message of the watch stream (errors arrive as `{"error": {...}}`).
struct EtcdWatchMessage: EtcdResponseBody {
    var result: EtcdWatchResult?
    var error: EtcdErrorBody?

    init?(json: JSONValue) {
        guard json.objectValue != nil else { return nil }
        result = json["result"].flatMap(EtcdWatchResult.init(json:))
        error = json["error"].flatMap(EtcdErrorBody.init(json:))
    }
}

/// The gateway's error body.
struct EtcdErrorBody: EtcdResponseBody {
    var error: String?
    var message: String?
    var code: Int?

    var text: String { message ?? error ?? "unknown error" }

    init?(json: JSONValue) {
        guard json.objectValue != nil else { return nil }
        error = json["error"]?.stringValue
        message = json["message"]?.stringValue
        code = json["code"]?.intValue
    }
}

/// Standard base64 (RFC 4648 §4, with padding), as etcd's gateway carries keys and values.
enum Base64 {
    private static let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8)

    /// Each alphabet byte's 6-bit value; 0xff for bytes outside the alphabet.
    private static let values: [UInt8] = {
        var table = [UInt8](repeating: 0xff, count: 256)
        for (index, byte) in alphabet.enumerated() { table[Int(byte)] = UInt8(index) }
        return table
    }()

    static func encode(_ text: String) -> String { encode(Array(text.utf8)) }

    static func encode(_ bytes: [UInt8]) -> String {
        var output: [UInt8] = []
        output.reserveCapacity((bytes.count + 2) / 3 * 4)
        var index = 0
        while index < bytes.count {
            let remaining = bytes.count - index
            let first = UInt32(bytes[index])
            let second = remaining > 1 ? UInt32(bytes[index + 1]) : 0
            let third = remaining > 2 ? UInt32(bytes[index + 2]) : 0
            let group = first << 16 | second << 8 | third
            output.append(alphabet[Int(group >> 18 & 0x3f)])
            output.append(alphabet[Int(group >> 12 & 0x3f)])
            output.append(remaining > 1 ? alphabet[Int(group >> 6 & 0x3f)] : UInt8(ascii: "="))
            output.append(remaining > 2 ? alphabet[Int(group & 0x3f)] : UInt8(ascii: "="))
            index += 3
        }
        return String(decoding: output, as: UTF8.self)
    }

    /// The decoded bytes, or nil when `text` is not padded standard base64.
    static func decodeBytes(_ text: String) -> [UInt8]? {
        let input = Array(text.utf8)
        guard input.count % 4 == 0 else { return nil }
        var output: [UInt8] = []
        output.reserveCapacity(input.count / 4 * 3)
        var index = 0
        while index < input.count {
            let isLast = index + 4 == input.count
            let padding = isLast ? input[index...].reversed().prefix(while: { $0 == UInt8(ascii: "=") }).count : 0
            guard padding <= 2 else { return nil }
            var group: UInt32 = 0
            for offset in 0..<4 {
                let byte = input[index + offset]
                let value: UInt8
                if offset >= 4 - padding {
                    value = 0
                } else {
                    value = values[Int(byte)]
                    guard value != 0xff else { return nil }
                }
                group = group << 6 | UInt32(value)
            }
            output.append(UInt8(group >> 16 & 0xff))
            if padding < 2 { output.append(UInt8(group >> 8 & 0xff)) }
            if padding < 1 { output.append(UInt8(group & 0xff)) }
            index += 4
        }
        return output
    }

    /// Absent (etcd leaves empty values out) decodes to "".
    static func decode(_ text: String?) -> String? {
        guard let text else { return "" }
        return decodeBytes(text).map { String(decoding: $0, as: UTF8.self) }
    }
}

struct EtcdAuthenticateRequest: EtcdRequestBody {
    var name: String
    var password: String

    var json: JSONValue { .object(["name": .string(name), "password": .string(password)]) }
}

struct EtcdAuthenticateResponse: EtcdResponseBody {
    var token: String?

    init?(json: JSONValue) {
        guard json.objectValue != nil else { return nil }
        token = json["token"]?.stringValue
    }
}
