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

struct Inspect: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Show a container as JSON: status, namespace, networks, interfaces and their addresses.")
    @OptionGroup var globals: GlobalOptions
    @Flag(help: "JSON output (the only format; accepted for scripts that ask for it).")
    var json = false
    @Argument var container: String

    func run() throws {
        let record = try reporting { () throws(RuntimeError) in try globals.manager.find(container) }
        printLine(record.json.encodedString)
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
