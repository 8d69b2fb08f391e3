/// How bad a finding is: `ok` confirms a check passed, `warning` is worth fixing but Pier
/// still works, `error` breaks container networking.
public enum Severity: String, Sendable, Codable, Comparable, CaseIterable {
    case ok
    case warning
    case error

    public static func < (lhs: Severity, rhs: Severity) -> Bool {
        let order: [Severity] = [.ok, .warning, .error]
        return (order.firstIndex(of: lhs) ?? 0) < (order.firstIndex(of: rhs) ?? 0)
    }
}

/// One result of `pier doctor`.
public struct Finding: Sendable, Equatable, Codable {
    /// Stable check identifier (`kernel.vxlan`, `stale.lease`, …), for scripts.
    public var check: String
    public var severity: Severity
    /// What the finding is about (a link, a file, a set element), when there is one.
    public var subject: String?
    public var message: String
    /// A concrete fix; nil for `ok` findings.
    public var fix: String?

    public init(check: String, severity: Severity, subject: String? = nil, message: String, fix: String? = nil) {
        self.check = check
        self.severity = severity
        self.subject = subject
        self.message = message
        self.fix = fix
    }
}

public struct DoctorReport: Sendable, Equatable, Codable {
    public var schemaVersion: Int = 1
    public var findings: [Finding]

    public init(findings: [Finding]) { self.findings = findings }

    public var worst: Severity { findings.map(\.severity).max() ?? .ok }

    public func count(_ severity: Severity) -> Int { findings.filter { $0.severity == severity }.count }

    public func findings(_ check: String) -> [Finding] { findings.filter { $0.check == check } }

    public func render(style: Style) -> String {
        var lines: [String] = []
        for finding in findings {
            let mark: String
            switch finding.severity {
            case .ok: mark = style.green("ok     ")
            case .warning: mark = style.yellow("warning")
            case .error: mark = style.red("error  ")
            }
            let subject = finding.subject.map { " [\($0)]" } ?? ""
            lines.append("\(mark)  \(finding.check)\(subject): \(finding.message)")
            if let fix = finding.fix { lines.append("         " + style.dim("fix: ") + fix) }
        }
        lines.append("")
        lines.append(
            "\(count(.error)) error(s), \(count(.warning)) warning(s), \(count(.ok)) check(s) passed")
        return lines.joined(separator: "\n")
    }
}
