import Testing

@testable import IPAM

@Test func placeholder() { #expect(Bool(true)) }
