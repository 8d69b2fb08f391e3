import IPAddressing
import Testing

@testable import CNI

func prefix(_ text: String) throws -> IPPrefix { try #require(IPPrefix(text)) }
func address(_ text: String) throws -> IPAddress { try #require(IPAddress(text)) }
func bytes(_ text: String) -> [UInt8] { Array(text.utf8) }
func text(_ bytes: [UInt8]) -> String { String(decoding: bytes, as: UTF8.self) }

/// Runs `body`, requires it to throw a `CNIError` and checks its code (and message when given).
@discardableResult
func expectCNIError(
    _ code: CNIErrorCode, _ msg: String? = nil, sourceLocation: SourceLocation = #_sourceLocation,
    _ body: () throws -> Void
) -> CNIError? {
    do {
        try body()
        Issue.record("expected CNIError code \(code), nothing was thrown", sourceLocation: sourceLocation)
        return nil
    } catch let error as CNIError {
        #expect(error.code == code, "\(error)", sourceLocation: sourceLocation)
        if let msg { #expect(error.msg == msg, sourceLocation: sourceLocation) }
        return error
    } catch {
        Issue.record("expected CNIError, got \(error)", sourceLocation: sourceLocation)
        return nil
    }
}
