import ArgumentParser
import CNI
import Runtime

struct List: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "ps", abstract: "List containers.")
    @OptionGroup var globals: GlobalOptions
    @Flag(help: "Print JSON: one object per container.")
    var json = false

    func run() throws {
        let records = globals.manager.list()
        if json {
            printLine(JSONValue.array(records.map(\.json)).encodedString)
            return
        }
        var rows = [["CONTAINER ID", "NAME", "STATUS", "NETWORKS", "ADDRESSES", "COMMAND"]]
        for record in records {
            rows.append([
                String(record.id.prefix(12)), record.name, record.displayStatus, record.networkDescription,
                record.attachments.flatMap(\.addresses).joined(separator: ","), record.command.joined(separator: " "),
            ])
        }
        for line in table(rows) { printLine(line) }
    }
}

/// Columns padded to their widest cell, two spaces apart.
func table(_ rows: [[String]]) -> [String] {
    guard let header = rows.first else { return [] }
    let widths = header.indices.map { column in rows.map { $0[column].count }.max() ?? 0 }
    return rows.map { row in
        row.enumerated().map { index, cell in
            index == row.count - 1 ? cell : cell + String(repeating: " ", count: widths[index] - cell.count)
        }.joined(separator: "  ")
    }
}

struct Logs: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Print a detached container's output.")
    @OptionGroup var globals: GlobalOptions
    @Argument var container: String

    func run() throws {
        let manager = globals.manager
        let text = try reporting { () throws(RuntimeError) in try manager.logs(container) }
        print(text, terminator: "")
    }
}
