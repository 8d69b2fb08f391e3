import Testing

@testable import CNI

@Test func placeholder() { #expect(Bool(true)) }
