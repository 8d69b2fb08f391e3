import ArgumentParser
import Glibc
import Runtime

@main
struct Pier: ParsableCommand {
    static let version = "0.1.0"

    static let configuration = CommandConfiguration(
        commandName: "pier",
        abstract: "Container networking runtime: containers over network namespaces, wired by CNI plugins.",
        discussion: """
            Global options (--root, --cache-dir, --config-dir, --netns-dir, --cni-path) may come before or after \
            the subcommand. Options of run, create and exec end at the container command (as in Docker); `--` \
            ends them explicitly.
            """,
        version: "pier version \(version)",
        subcommands: [
            Create.self, Start.self, Run.self, Exec.self, Stop.self, Restart.self, Kill.self, Remove.self,
            List.self, Inspect.self, Logs.self, Port.self, Check.self, DoctorCommand.self, TraceCommand.self,
            GarbageCollect.self, Network.self, PluginCommand.self, AgentCommand.self, Reap.self,
            FirewallCommand.self, FirewallReloadAlias.self, ServiceCommand.self, ServiceWatch.self,
        ])

    /// `pier __init` runs before the argument parser and before anything else can start a thread: it
    /// joins namespaces (a mount namespace refuses multi-threaded callers) and execs the command.
    static func main() {
        let arguments = Array(CommandLine.arguments.dropFirst())
        if arguments.first == "__init" {
            do {
                ContainerInit.run(try InitSpec(arguments: Array(arguments.dropFirst())))
            } catch {
                printError("pier: \(error)")
                Glibc.exit(126)
            }
        }
        let (globals, rest) = GlobalOptions.extractLeading(arguments)
        GlobalOptions.leading = globals
        if let first = rest.first, !first.hasPrefix("-"),
            !configuration.subcommands.contains(where: { $0._commandName == first }), first != "help"
        {
            fail("'\(first)' is not a pier command.\nSee 'pier --help'.")
        }
        let normalized = CommandLineRules.endOptionsAtCommand(rest)
        do {
            var command = try parsedAlone(normalized) ?? parseAsRoot(normalized)
            try command.run()
        } catch let code as ExitCode {
            Glibc.exit(code.rawValue)
        } catch let failure as PierFailure {
            fail(failure.message)
        } catch {
            // Help and --version are "errors" that exit 0: the parser prints them.
            if exitCode(for: error) == .success { exit(withError: error) }
            let subcommand = rest.first { !$0.hasPrefix("-") }.map { " " + $0 } ?? ""
            fail("\(message(for: error))\nSee 'pier\(subcommand) --help'.")
        }
        Glibc.exit(0)
    }
}

extension Pier {
    /// A subcommand without subcommands of its own, named first (after the groups it is in, as in
    /// `pier plugin del`), parsed on its own: the root's parse builds the whole command tree, reflecting
    /// on every command (about 2 ms of every `pier run`). Whatever does not parse that way (help, a usage
    /// error, a group's default subcommand) is parsed again from the root, so help and messages are the
    /// root's.
    static func parsedAlone(_ arguments: [String]) -> ParsableCommand? {
        var candidates = configuration.subcommands
        var rest = arguments[...]
        while let name = rest.first, let command = candidates.first(where: { $0.configuration.commandName == name }) {
            rest = rest.dropFirst()
            guard command.configuration.subcommands.isEmpty else {
                candidates = command.configuration.subcommands
                continue
            }
            // A help request parses as the parser's own help command, which would print the subcommand's
            // usage without the `pier` before it.
            guard let parsed = try? command.parseAsRoot(Array(rest)), type(of: parsed) == command else { return nil }
            return parsed
        }
        return nil
    }
}

/// One style for every error, as Docker has: `pier: <message>` on stderr and exit status 125.
func fail(_ message: String) -> Never {
    printError("pier: \(message)")
    Glibc.exit(125)
}

/// A command failed for a reason the user can act on (not a usage mistake: no pointer to --help).
struct PierFailure: Error, CustomStringConvertible {
    let message: String
    var description: String { message }
}

/// Reports a runtime error the way users expect from a CLI: one line on stderr, non-zero exit.
func reporting<T>(_ body: () throws(RuntimeError) -> T) throws -> T {
    do {
        return try body()
    } catch {
        printError("pier: \(error)")
        // Like Docker: 125 when pier itself failed, 126/127 when the command could not be run.
        if case .commandFailed(_, let code) = error, code == 126 || code == 127 { throw ExitCode(code) }
        throw ExitCode(125)
    }
}

/// Unbuffered, so output interleaves correctly with plugins' and containers' output on the same streams.
func printLine(_ text: String) {
    writeAll(STDOUT_FILENO, Array(text.utf8) + [UInt8(ascii: "\n")])
}

/// Raw bytes to stdout, as they are (container output need not be UTF-8 or end in a newline).
func writeOut(_ bytes: [UInt8]) {
    writeAll(STDOUT_FILENO, bytes)
}

func printError(_ text: String) {
    writeAll(STDERR_FILENO, Array(text.utf8) + [UInt8(ascii: "\n")])
}

private func writeAll(_ descriptor: Int32, _ bytes: [UInt8]) {
    var bytes = bytes[...]
    while !bytes.isEmpty {
        let written = bytes.withUnsafeBytes { write(descriptor, $0.baseAddress, $0.count) }
        if written < 0 && errno == EINTR { continue }
        guard written > 0 else { return }
        bytes = bytes.dropFirst(written)
    }
}
