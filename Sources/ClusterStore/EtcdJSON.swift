import FoundationEssentials

// The etcd v3 gRPC-gateway's JSON forms: keys and values are base64, 64-bit integers are
// decimal strings, and fields at their default value (false, 0, empty) are left out.

struct EtcdKeyValue: Decodable {
    var key: String
    var value: String?
    var mod_revision: String?
}

struct EtcdHeader: Decodable {
    var revision: String?

    var revisionNumber: UInt64 { revision.flatMap { UInt64($0) } ?? 0 }
}

struct EtcdRangeRequest: Encodable {
    var key: String
    var range_end: String?
    var count_only: Bool?
}

struct EtcdRangeResponse: Decodable {
    var header: EtcdHeader?
    var kvs: [EtcdKeyValue]?
}

struct EtcdPutRequest: Encodable {
    var key: String
    var value: String
}

struct EtcdPutResponse: Decodable {
    var header: EtcdHeader?
}

struct EtcdDeleteRequest: Encodable {
    var key: String
}

struct EtcdCompare: Encodable {
    var key: String
    var result = "EQUAL"
    var target: String
    var create_revision: String?
    var mod_revision: String?
    var value: String?
}

struct EtcdRequestOp: Encodable {
    var request_range: EtcdRangeRequest?
    var request_put: EtcdPutRequest?
    var request_delete_range: EtcdDeleteRequest?
}

struct EtcdTxnRequest: Encodable {
    var compare: [EtcdCompare]
    var success: [EtcdRequestOp]
    var failure: [EtcdRequestOp]
}

struct EtcdResponseOp: Decodable {
    var response_range: EtcdRangeResponse?
}

struct EtcdTxnResponse: Decodable {
    var header: EtcdHeader?
    var succeeded: Bool?
    var responses: [EtcdResponseOp]?
}

struct EtcdWatchCreate: Encodable {
    var key: String
    var range_end: String
    var start_revision: String
}

struct EtcdWatchRequest: Encodable {
    var create_request: EtcdWatchCreate
}

struct EtcdWatchEvent: Decodable {
    var kv: EtcdKeyValue?
}

struct EtcdWatchResult: Decodable {
    var header: EtcdHeader?
    var created: Bool?
    var canceled: Bool?
    var compact_revision: String?
    var events: [EtcdWatchEvent]?
}

/// One message of the watch stream (errors arrive as `{"error": {...}}`).
struct EtcdWatchMessage: Decodable {
    var result: EtcdWatchResult?
    var error: EtcdErrorBody?
}

/// The gateway's error body.
struct EtcdErrorBody: Decodable {
    var error: String?
    var message: String?
    var code: Int?

    var text: String { message ?? error ?? "unknown error" }
}

enum Base64 {
    static func encode(_ text: String) -> String { Data(text.utf8).base64EncodedString() }
    static func encode(_ bytes: [UInt8]) -> String { Data(bytes).base64EncodedString() }

    static func decode(_ text: String?) -> String? {
        guard let text else { return "" }
        guard let data = Data(base64Encoded: text) else { return nil }
        return String(decoding: data, as: UTF8.self)
    }
}
