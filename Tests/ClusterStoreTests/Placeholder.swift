import Testing

@testable import ClusterStore

@Test func placeholder() { #expect(Bool(true)) }
