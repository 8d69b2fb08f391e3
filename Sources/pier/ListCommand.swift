import ArgumentParser
import CNI
import Glibc
import Runtime

struct List: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ps", abstract: "List running containers (with -a: all of them, oldest first).")
    @OptionGroup var globals: GlobalOptions
    @Flag(name: [.customShort("a"), .customLong("all")], help: "Also created, exited and half-made containers.")
    var all = false
    @Flag(name: [.customShort("q"), .customLong("quiet")], help: "Only the IDs.")
    var quiet = false
    @Flag(help: "Print JSON: one object per container.")
    var json = false

    func run() throws {
        let manager = globals.manager
        // One read of the listing and one cheap liveness check per container (see `ContainerSummary`).
        let listed = manager.summaries().map { ($0, $0.isRunning) }.filter { all || $0.1 }
        if quiet {
            // One write for the whole list: a thousand lines were a thousand write(2)s.
            if !listed.isEmpty { printLine(listed.map { String($0.0.id.prefix(12)) }.joined(separator: "\n")) }
            return
        }
        if json {
            let objects = listed.compactMap { summary, _ in
                (try? manager.find(summary.id)).map { record in
                    var record = record
                    record.exitCode = manager.exitCode(of: record)
                    return record.json
                }
            }
            printLine(JSONValue.array(objects).encodedString)
            return
        }
        var rows = [["CONTAINER ID", "NAME", "STATUS", "NETWORKS", "ADDRESSES", "COMMAND"]]
        for (summary, running) in listed {
            rows.append([
                String(summary.id.prefix(12)), summary.name, manager.statusText(of: summary, running: running),
                summary.network, summary.addresses.joined(separator: ","), summary.command.joined(separator: " "),
            ])
        }
        printLine(table(rows).joined(separator: "\n"))
    }
}

/// Columns padded to their widest cell, two spaces apart.
func table(_ rows: [[String]]) -> [String] {
    guard let header = rows.first else { return [] }
    let widths = header.indices.map { column in rows.map { width($0[column]) }.max() ?? 0 }
    return rows.map { row in
        row.enumerated().map { index, cell in
            index == row.count - 1 ? cell : cell + String(repeating: " ", count: widths[index] - width(cell))
        }.joined(separator: "  ")
    }
}

/// Columns a cell takes: its Unicode scalars, counted from the UTF-8 bytes (counting characters
/// walks grapheme clusters, which a thousand-row `ps` felt).
private func width(_ cell: String) -> Int {
    cell.utf8.reduce(0) { $0 + ($1 & 0xC0 == 0x80 ? 0 : 1) }
}

struct Logs: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Print a detached container's output.")
    @OptionGroup var globals: GlobalOptions
    @Flag(
        name: [.customShort("f"), .customLong("follow")], help: "Keep printing new output until the container stops.")
    var follow = false
    @Option(name: [.customShort("n"), .customLong("tail")], help: "Only the last N lines (or \"all\").")
    var tail = "all"
    @Argument(help: "Container name or ID.") var container: String

    func validate() throws {
        guard tail == "all" || (Int(tail) ?? -1) >= 0 else { throw ValidationError("--tail wants a number or all") }
    }

    func run() throws {
        let manager = globals.manager
        var text = try reporting { () throws(RuntimeError) in try manager.logs(container) }
        if let count = Int(tail) {
            var lines = text.split(separator: "\n", omittingEmptySubsequences: false)
            if lines.last == "" { lines.removeLast() }
            text = lines.suffix(count).map { $0 + "\n" }.joined()
        }
        writeOut(Array(text.utf8))
        guard follow else { return }
        var offset = try reporting { () throws(RuntimeError) in try manager.logs(container) }.utf8.count
        while true {
            let running = (try? manager.find(container))?.isRunning ?? false
            let bytes = Array(((try? manager.logs(container)) ?? "").utf8)
            if bytes.count > offset {
                writeOut(Array(bytes[offset...]))
                offset = bytes.count
            }
            if !running { return }
            usleep(200_000)
        }
    }
}
