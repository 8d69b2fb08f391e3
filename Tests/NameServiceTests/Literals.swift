import IPAddressing
import NameService

// Literals the tests spell as text; a typo is the test's own bug, so it stops the run.

func address(_ text: String) -> IPAddress {
    guard let value = IPAddress(text) else { preconditionFailure("bad address literal \(text)") }
    return value
}

func dnsName(_ text: String) -> DNSName {
    guard let value = DNSName(text) else { preconditionFailure("bad name literal \(text)") }
    return value
}

func upstream(_ text: String) -> DNSUpstream {
    guard let value = DNSUpstream(text) else { preconditionFailure("bad upstream literal \(text)") }
    return value
}
