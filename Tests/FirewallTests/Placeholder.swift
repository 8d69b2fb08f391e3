import Testing

@testable import Firewall

@Test func placeholder() { #expect(Bool(true)) }
