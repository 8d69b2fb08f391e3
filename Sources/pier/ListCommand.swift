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
        let summaries = manager.summaries()
        let running = summaries.map(\.isRunning)
        let all = all
        let listed = summaries.indices.filter { all || running[$0] }
        if quiet {
            // One write for the whole list: a thousand lines were a thousand write(2)s.
            let ids = listed.map { String(decoding: summaries[$0].id.utf8.prefix(12), as: UTF8.self) }
            if !ids.isEmpty { printLine(ids.joined(separator: "\n")) }
            return
        }
        if json {
            let objects = listed.compactMap { index in
                (try? manager.find(summaries[index].id)).map { record in
                    var record = record
                    record.exitCode = manager.exitCode(of: record)
                    return record.json
                }
            }
            printLine(JSONValue.array(objects).encodedString)
            return
        }
        var cells = ["CONTAINER ID", "NAME", "STATUS", "NETWORKS", "ADDRESSES", "COMMAND"]
        cells.reserveCapacity(cells.count * (listed.count + 1))
        for index in listed {
            let summary = summaries[index]
            cells += [
                String(decoding: summary.id.utf8.prefix(12), as: UTF8.self), summary.name,
                manager.statusText(of: summary, running: running[index]), summary.network,
                summary.addresses.joined(separator: ","), summary.command.joined(separator: " "),
            ]
        }
        printLine(tableText(cells, columns: 6))
    }
}

/// Columns padded to their widest cell, two spaces apart, one line per row.
func table(_ rows: [[String]]) -> [String] {
    guard let header = rows.first else { return [] }
    return tableText(rows.flatMap { $0 }, columns: header.count).split(
        separator: "\n", omittingEmptySubsequences: false
    ).map(String.init)
}

/// `table` as one text (lines joined by newlines) of `cells` row after row, built as bytes: a
/// thousand-row `ps` spent more on padding and joining strings cell by cell than on everything else it
/// does per container.
func tableText(_ cells: [String], columns: Int) -> String {
    guard columns > 0, !cells.isEmpty else { return "" }
    var widths = [Int](repeating: 0, count: columns)
    var cellWidths: [Int] = []
    cellWidths.reserveCapacity(cells.count)
    var total = 0
    for (index, cell) in cells.enumerated() {
        let cellWidth = width(cell)
        cellWidths.append(cellWidth)
        widths[index % columns] = max(widths[index % columns], cellWidth)
        total += cell.utf8.count
    }
    var text: [UInt8] = []
    text.reserveCapacity(total + cells.count / columns * (widths.reduce(0, +) + 2 * columns))
    for (index, cell) in cells.enumerated() {
        let column = index % columns
        if column == 0 && index > 0 { text.append(UInt8(ascii: "\n")) }
        text.append(contentsOf: cell.utf8)
        guard column < columns - 1 else { continue }
        text.append(contentsOf: repeatElement(UInt8(ascii: " "), count: widths[column] - cellWidths[index] + 2))
    }
    return String(decoding: text, as: UTF8.self)
}

/// Columns a cell takes: its Unicode scalars, counted from the UTF-8 bytes (counting characters
/// walks grapheme clusters, which a thousand-row `ps` felt).
private func width(_ cell: String) -> Int {
    let continuations =
        cell.utf8.withContiguousStorageIfAvailable { bytes in
            bytes.reduce(0) { $0 + ($1 & 0xC0 == 0x80 ? 1 : 0) }
        } ?? cell.utf8.reduce(0) { $0 + ($1 & 0xC0 == 0x80 ? 1 : 0) }
    return cell.utf8.count - continuations
}

struct Logs: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "logs", abstract: "Print a detached container's output.")
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
