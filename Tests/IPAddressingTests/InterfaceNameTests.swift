import Testing

@testable import IPAddressing

struct InterfaceNameTests {
    @Test(arguments: ["eth0", "0123456789abcde", "eth0.100", "br-x_y", "vethé"])
    func acceptsKernelNames(_ name: String) {
        #expect(InterfaceName.problem(name) == nil)
        #expect(InterfaceName.isValid(name))
    }

    @Test(arguments: [
        ("", InterfaceName.Problem.empty), ("0123456789abcdef", .tooLong), ("ééééééééé", .tooLong),
        (".", .dotName), ("..", .dotName), ("eth/0", .forbiddenCharacter), ("eth:0", .forbiddenCharacter),
        ("eth 0", .forbiddenCharacter), ("eth\t0", .forbiddenCharacter), ("eth\n0", .forbiddenCharacter),
        ("eth\u{0B}0", .forbiddenCharacter), ("eth\u{0}0", .forbiddenCharacter),
        // Unicode whitespace (libcni) and the kernel's Latin-1 space byte inside "à" (C3 A0).
        ("eth\u{A0}0", .forbiddenCharacter), ("eth\u{2003}0", .forbiddenCharacter), ("ethà", .forbiddenCharacter),
    ])
    func refusesWithTheReason(_ name: String, _ problem: InterfaceName.Problem) {
        #expect(InterfaceName.problem(name) == problem)
        #expect(!InterfaceName.isValid(name))
    }
}

struct IPProtocolTests {
    @Test func namesAndNumbers() {
        #expect(IPProtocol(name: "TCP") == .tcp)
        #expect(IPProtocol(name: "udp")?.rawValue == 17)
        #expect(IPProtocol(name: "sctp")?.rawValue == 132)
        #expect(IPProtocol(name: "icmp") == nil)
        #expect(IPProtocol(rawValue: 47).name == "proto 47")
        #expect(IPProtocol.transports.map(\.name) == ["tcp", "udp", "sctp"])
    }
}
