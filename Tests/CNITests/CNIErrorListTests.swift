import Testing

@testable import CNI

/// A module error that chooses its own code, as NetlinkError or FirewallError do.
private struct BusyError: CNIErrorConvertible {
    var cniError: CNIError { CNIError(.tryAgainLater, "generation changed") }
}

private struct PlainError: Error, CustomStringConvertible {
    var description: String { "plain failure" }
}

@Suite struct CNIErrorListTests {
    @Test func nothingFailedThrowsNothing() throws {
        var failures = CNIErrorList()
        failures.attempt {}
        #expect(failures.isEmpty)
        #expect(failures.combined("DEL incomplete") == nil)
        try failures.throwIfAny("DEL incomplete")
    }

    @Test func keepsGoingPastEachFailure() {
        var failures = CNIErrorList()
        var ran: [Int] = []
        failures.attempt {
            ran.append(1)
            throw PlainError()
        }
        failures.attempt { ran.append(2) }
        failures.attempt {
            ran.append(3)
            throw CNIError(.ioFailure, "disk")
        }
        #expect(ran == [1, 2, 3])
        #expect(failures.failures.map(\.code) == [.internalError, .ioFailure])
    }

    @Test func aSingleFailureKeepsItsCodeAndDetails() {
        var failures = CNIErrorList()
        failures.record(CNIError(.invalidNetworkConfig, "bad key", details: "key x"))
        #expect(
            failures.combined("bridge DEL incomplete")
                == CNIError(.invalidNetworkConfig, "bridge DEL incomplete: bad key", details: "key x"))
    }

    @Test func aConvertibleErrorKeepsItsCode() {
        var failures = CNIErrorList()
        failures.record(BusyError())
        #expect(failures.combined("DEL")?.code == .tryAgainLater)
    }

    @Test func tryAgainLaterWinsWhereverItIs() {
        var failures = CNIErrorList()
        failures.record(PlainError())
        failures.record(CNIError(.ioFailure, "disk"))
        failures.record(BusyError())
        let combined = failures.combined("bridge DEL incomplete")
        #expect(combined?.code == .tryAgainLater)
        #expect(combined?.msg == "bridge DEL incomplete: plain failure; disk; generation changed")
    }

    @Test(arguments: [
        ([CNIErrorCode.internalError, .ioFailure, .invalidNetworkConfig], CNIErrorCode.ioFailure),
        ([.internalError, .internalError], .internalError),
        ([.unknownContainer, .tryAgainLater], .tryAgainLater),
        ([.pluginSpecific(120), .ioFailure], .pluginSpecific(120)),
    ])
    func otherwiseTheFirstSpecificCodeWins(_ codes: [CNIErrorCode], _ expected: CNIErrorCode) {
        var failures = CNIErrorList()
        for (index, code) in codes.enumerated() { failures.record(CNIError(code, "failure \(index)")) }
        #expect(failures.combined("GC")?.code == expected)
        #expect(CNIErrorList.mostSpecific(codes).map { codes[$0] } == expected)
    }

    @Test func throwsTheCombinedError() {
        var failures = CNIErrorList()
        failures.record(BusyError())
        expectCNIError(.tryAgainLater, "portmap DEL incomplete: generation changed") {
            try failures.throwIfAny("portmap DEL incomplete")
        }
    }
}
