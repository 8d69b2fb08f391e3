/// `pier trace`: the path from a source namespace to a destination, hop by hop from kernel
/// state, then real probes. Keys are only ever added (bump `schemaVersion` otherwise).
public struct TraceReport: Sendable, Equatable, Codable {
    public var schemaVersion: Int = 1
    public var from: String
    public var to: String
    public var hops: [TraceHop]
    public var probes: [ProbeResult]
    /// `healthy` or `broken`.
    public var verdict: String
    /// Index into `hops` of the first hop that is wrong (absent when none is, even if a probe failed).
    public var firstFailure: Int?
    /// One sentence: what is wrong and where, or that the path is healthy.
    public var summary: String

    public var isHealthy: Bool { verdict == "healthy" }
    public var failedHop: TraceHop? { firstFailure.map { hops[$0] } }
}

public struct TraceHop: Sendable, Equatable, Codable {
    public enum Status: String, Sendable, Codable {
        /// Checked and right.
        case ok
        /// Wrong: packets are lost here.
        case fail
        /// Suspicious but not necessarily fatal.
        case warn
        /// Not checked or nothing to check (state is learned on the first packet, say).
        case info
    }

    /// Stable step identifier: `source.route`, `source.interface`, `host.veth`, `bridge.port`,
    /// `overlay.neighbor`, `overlay.fdb`, `bridge.fdb`, `host.forwarding`, `host.route`,
    /// `nat.dnat`, `nat.masquerade`, `isolation`, `destination.interface`, …
    public var step: String
    /// Where: `source`, `host`, `destination`.
    public var location: String
    public var status: Status
    public var detail: String
    public var fix: String?

    public init(step: String, location: String, status: Status, detail: String, fix: String? = nil) {
        self.step = step
        self.location = location
        self.status = status
        self.detail = detail
        self.fix = fix
    }
}

extension TraceReport {
    public func render(style: Style) -> String {
        var lines = [style.bold("Trace \(from) → \(to)")]
        let rows = hops.enumerated().map { index, hop -> [String] in
            let mark: String
            switch hop.status {
            case .ok: mark = style.green("ok")
            case .fail: mark = style.red("FAIL")
            case .warn: mark = style.yellow("warn")
            case .info: mark = style.dim("info")
            }
            return ["\(index + 1)", hop.location, hop.step, mark, hop.detail]
        }
        lines += TextTable(["#", "WHERE", "STEP", "", "DETAIL"], rows: rows).lines(indent: "  ")
        if !probes.isEmpty {
            lines.append("")
            let rows = probes.map { probe -> [String] in
                let outcome = probe.reached ? style.green(probe.result) : style.red(probe.result)
                return [
                    probe.kind, probe.target, outcome, probe.milliseconds.map { "\($0) ms" } ?? "", probe.detail ?? "",
                ]
            }
            lines += TextTable(["PROBE", "TARGET", "RESULT", "TIME", ""], rows: rows).lines(indent: "  ")
        }
        lines.append("")
        lines.append(isHealthy ? style.green(summary) : style.red(summary))
        let suspect = isHealthy ? nil : hops.first { $0.status == .warn }
        if let fix = failedHop?.fix ?? suspect?.fix { lines.append("fix: \(fix)") }
        return lines.joined(separator: "\n")
    }
}
