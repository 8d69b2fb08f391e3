import Foundation

/// The outcome of running a program: exit status and both output streams.
public struct CommandResult: Sendable {
    public let status: Int32
    public let stdout: String
    public let stderr: String

    public var succeeded: Bool { status == 0 }

    /// stdout decoded as JSON (for `ip -j`, `bridge -j`, `nft -j` and plugin results).
    public func json() throws -> Any {
        try JSONSerialization.jsonObject(with: Data(stdout.utf8), options: [.fragmentsAllowed])
    }
}

public struct CommandFailure: Error, CustomStringConvertible {
    public let command: [String]
    public let result: CommandResult
    public var description: String {
        "`\(command.joined(separator: " "))` exited \(result.status): \(result.stderr)\(result.stdout)"
    }
}

/// SIGPIPE would kill the whole test runner when a child closes its stdin early.
private let ignoringBrokenPipes: Void = { signal(SIGPIPE, SIG_IGN) }()

/// Runs a program directly (no shell), optionally feeding stdin, and collects its output.
@discardableResult
public func runCommand(
    _ argv: [String], stdin: String? = nil, environment: [String: String]? = nil,
    timeout: Double = 60
) throws -> CommandResult {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: argv[0].hasPrefix("/") ? argv[0] : "/usr/bin/env")
    process.arguments = argv[0].hasPrefix("/") ? Array(argv.dropFirst()) : argv
    if let environment { process.environment = environment }
    let outPipe = Pipe()
    let errPipe = Pipe()
    let inPipe = Pipe()
    process.standardOutput = outPipe
    process.standardError = errPipe
    process.standardInput = inPipe
    _ = ignoringBrokenPipes
    try process.run()
    // A plugin may exit before it reads stdin (a bad environment is refused first): the write
    // then fails with EPIPE, which is no failure of the test.
    if let stdin { try? inPipe.fileHandleForWriting.write(contentsOf: Data(stdin.utf8)) }
    try inPipe.fileHandleForWriting.close()

    // Read both pipes concurrently so a chatty child never blocks on a full pipe.
    let outBox = DataBox()
    let errBox = DataBox()
    let group = DispatchGroup()
    for (pipe, box) in [(outPipe, outBox), (errPipe, errBox)] {
        group.enter()
        DispatchQueue.global().async {
            box.data = pipe.fileHandleForReading.readDataToEndOfFile()
            group.leave()
        }
    }
    if group.wait(timeout: .now() + timeout) == .timedOut {
        // SIGKILL: a child of the test runner may inherit SIGTERM as ignored.
        kill(process.processIdentifier, SIGKILL)
        group.wait()
    }
    process.waitUntilExit()
    return CommandResult(
        status: process.terminationStatus,
        stdout: String(decoding: outBox.data, as: UTF8.self),
        stderr: String(decoding: errBox.data, as: UTF8.self))
}

/// Runs a program and throws unless it exits 0.
@discardableResult
public func mustRun(_ argv: [String], stdin: String? = nil) throws -> CommandResult {
    let result = try runCommand(argv, stdin: stdin)
    guard result.succeeded else { throw CommandFailure(command: argv, result: result) }
    return result
}

private final class DataBox: @unchecked Sendable {
    var data = Data()
}

/// Integration tests touch the kernel and need root; they skip with this reason otherwise.
public let isRoot: Bool = geteuid() == 0
public let needsRootReason = "integration test: needs root (CI runs as root) to create network namespaces"

/// A short random hex tag for names that must not collide between parallel tests.
public func uniqueTag(_ length: Int = 8) -> String {
    let digits = Array("0123456789abcdef")
    return String((0..<length).map { _ in digits[Int.random(in: 0..<16)] })
}
