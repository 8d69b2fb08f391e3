import Diagnostics
import Testing

/// Pure logic: argument parsing, table layout, severity order.
struct DiagnosticsUnitTests {
    @Test func traceTargetsSplitPorts() {
        #expect(TraceTargets.split("10.0.0.2:8080") == ("10.0.0.2", 8080))
        #expect(TraceTargets.split("10.0.0.2") == ("10.0.0.2", nil))
        #expect(TraceTargets.split("[fd00::2]:80") == ("fd00::2", 80))
        #expect(TraceTargets.split("fd00::2") == ("fd00::2", nil))
        #expect(TraceTargets.split("web:443") == ("web", 443))
        #expect(TraceTargets.split("web") == ("web", nil))
    }

    @Test func tablesAlignColumnsWithoutTrailingSpaces() {
        let lines = TextTable(["A", "BB", "C"], rows: [["xxx", "y", ""], ["z", "", "w"]]).lines(indent: "  ")
        #expect(lines == ["  A    BB  C", "  xxx  y", "  z        w"])
    }

    @Test func severitiesOrderAndWorstFinding() {
        #expect(Severity.ok < .warning && Severity.warning < .error)
        let report = DoctorReport(findings: [
            Finding(check: "a", severity: .ok, message: "fine"),
            Finding(check: "b", severity: .warning, message: "hm", fix: "do x"),
        ])
        #expect(report.worst == .warning)
        #expect(report.render(style: Style(enabled: false)).contains("fix: do x"))
        #expect(!report.render(style: Style(enabled: false)).contains("\u{1b}["))
        #expect(report.render(style: Style(enabled: true)).contains("\u{1b}[33m"))
    }
}
