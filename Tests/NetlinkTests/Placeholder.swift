import Testing

@testable import Netlink

@Test func placeholder() { #expect(Bool(true)) }
