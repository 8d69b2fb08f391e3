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
        // One read of the listing and one cheap liveness check per container, each line read in place
        // (`ListedContainer`): the table is written from the listing's bytes, no string per field.
        let all = all
        var ids: [String] = []
        let output = manager.withListedContainers { containers -> [UInt8] in
            let listed = containers.lazy.map { ($0, $0.isRunning) }.filter { all || $0.1 }
            if quiet {
                var text: [UInt8] = []
                for (container, _) in listed {
                    appendShortID(of: container, to: &text)
                    text.append(UInt8(ascii: "\n"))
                }
                return text
            }
            if json {
                ids = listed.map { $0.0.id.string }
                return []
            }
            var table = TableText(
                ["CONTAINER ID", "NAME", "STATUS", "NETWORKS", "ADDRESSES", "COMMAND"], rows: containers.count,
                bytes: containers.count * 128)
            for (container, running) in listed {
                table.cell { appendShortID(of: container, to: &$0) }
                table.cell { container.name.append(to: &$0) }
                table.cell(manager.statusText(of: container, running: running))
                table.cell { container.network.append(to: &$0) }
                table.cell { container.addresses.append(to: &$0) }
                table.cell { container.command.append(to: &$0, joiningPiecesWith: UInt8(ascii: " ")) }
            }
            return table.text + [UInt8(ascii: "\n")]
        }
        if json {
            let objects = ids.compactMap { id in
                (try? manager.find(id)).map { record in
                    var record = record
                    record.exitCode = manager.exitCode(of: record)
                    return record.json
                }
            }
            printLine(JSONValue.array(objects).encodedString)
            return
        }
        // One write for the whole list: a thousand lines were a thousand write(2)s.
        writeOut(output)
    }
}

/// The ID as `ps` shows it: its first 12 characters (IDs are hex, so 12 bytes).
private func appendShortID(of container: ListedContainer, to bytes: inout [UInt8]) {
    let start = bytes.count
    container.id.append(to: &bytes)
    bytes.removeLast(max(0, bytes.count - start - 12))
}

/// Columns padded to their widest cell, two spaces apart, one line per row.
func table(_ rows: [[String]]) -> [String] {
    guard let header = rows.first else { return [] }
    var table = TableText(header)
    for cell in rows.dropFirst().joined() { table.cell(cell) }
    return String(decoding: table.text, as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: false)
        .map(String.init)
}

/// A table built as bytes, cell after cell, row after row: columns padded to their widest cell (counted in
/// Unicode scalars), two spaces apart, one line per row. A thousand-row `ps` spent more on strings per cell
/// and on padding and joining them than on everything else it does per container.
struct TableText {
    private let columns: Int
    /// The cells' bytes, back to back.
    private var cells: [UInt8] = []
    /// Where each cell ends in `cells`, and its width.
    private var ends: [(end: Int, width: Int)] = []

    /// `rows` (and `bytes` of cells), when known, sizes the buffers once.
    init(_ header: [String], rows: Int = 0, bytes: Int = 0) {
        columns = header.count
        ends.reserveCapacity(columns * (rows + 1))
        cells.reserveCapacity(bytes)
        for title in header { cell(title) }
    }

    mutating func cell(_ text: String) {
        cell { $0.append(contentsOf: text.utf8) }
    }

    /// A cell whose bytes `write` appends.
    mutating func cell(_ write: (inout [UInt8]) -> Void) {
        let start = cells.count
        write(&cells)
        ends.append((cells.count, width(from: start)))
    }

    /// The lines joined by newlines (no newline after the last).
    var text: [UInt8] {
        guard columns > 0 else { return [] }
        var widths = [Int](repeating: 0, count: columns)
        for (index, cell) in ends.enumerated() { widths[index % columns] = max(widths[index % columns], cell.width) }
        var text: [UInt8] = []
        text.reserveCapacity(cells.count + ends.count / columns * (widths.reduce(0, +) + 2 * columns + 1))
        cells.withUnsafeBufferPointer { cells in
            var start = 0
            for (index, cell) in ends.enumerated() {
                let column = index % columns
                if column == 0 && index > 0 { text.append(UInt8(ascii: "\n")) }
                text.append(contentsOf: UnsafeBufferPointer(rebasing: cells[start..<cell.end]))
                start = cell.end
                guard column < columns - 1 else { continue }
                text.append(contentsOf: repeatElement(UInt8(ascii: " "), count: widths[column] - cell.width + 2))
            }
        }
        return text
    }

    /// Columns the cell from `start` to the end of `cells` takes: its Unicode scalars, counted from the
    /// UTF-8 bytes (counting characters walks grapheme clusters, which a thousand-row `ps` felt).
    private func width(from start: Int) -> Int {
        cells.withUnsafeBytes { cells in
            let bytes = UnsafeRawBufferPointer(rebasing: cells[start...])
            // Eight bytes at a time: a continuation byte (10xxxxxx) has bit 7 set and bit 6 clear.
            var continuations = 0
            var offset = 0
            while offset + 8 <= bytes.count {
                let word = bytes.loadUnaligned(fromByteOffset: offset, as: UInt64.self)
                continuations += (word & ~(word << 1) & 0x8080_8080_8080_8080).nonzeroBitCount
                offset += 8
            }
            for byte in bytes[offset...] where byte & 0xC0 == 0x80 { continuations += 1 }
            return bytes.count - continuations
        }
    }
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
        let output = try reporting { () throws(RuntimeError) in try manager.logs(container) }
        writeOut(Int(tail).map { Array(Self.lastLines($0, of: output)) } ?? output)
        guard follow else { return }
        var offset = output.count
        while true {
            let running = (try? manager.find(container))?.isRunning ?? false
            let bytes = (try? manager.logs(container)) ?? []
            if bytes.count > offset {
                writeOut(Array(bytes[offset...]))
                offset = bytes.count
            }
            if !running { return }
            usleep(200_000)
        }
    }

    /// The last `count` lines of `output`, as they are (a last line without its newline counts as one).
    static func lastLines(_ count: Int, of output: [UInt8]) -> ArraySlice<UInt8> {
        guard count > 0 else { return [] }
        let newline = UInt8(ascii: "\n")
        var end = output.last == newline ? output.count - 1 : output.count
        var remaining = count
        while let cut = output[..<end].lastIndex(of: newline) {
            remaining -= 1
            if remaining == 0 { return output[(cut + 1)...] }
            end = cut
        }
        return output[...]
    }
}
