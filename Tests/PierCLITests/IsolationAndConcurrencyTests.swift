import Foundation
import PierTestSupport
import Testing

@Suite(.enabled(if: isRoot, Comment(rawValue: needsRootReason)))
struct IsolationAndConcurrencyTests {
    /// Concurrent `pier run`s serialize on the store lock: every container gets its own address, a
    /// name taken twice at once is given to exactly one of them.
    @Test func concurrentRunsAreSafe() throws {
        try withPier { pier in
            try pier.addNetwork("t224", subnet: "10.224.\(Int.random(in: 0...255)).0/24")
            let names = (0..<4).map { pier.name("c\($0)") }
            let shared = pier.name("same")
            let commands =
                names.map { ["run", "-d", "--name", $0, "--net", "t224", "sleep", "60"] }
                + [["run", "-d", "--name", shared, "--net", "t224", "sleep", "60"]]
                + [["run", "-d", "--name", shared, "--net", "t224", "sleep", "60"]]
            let results = ResultsBox(count: commands.count)
            DispatchQueue.concurrentPerform(iterations: commands.count) { index in
                results.set(index, (try? pier.pier(commands[index]))?.status ?? -1)
            }
            #expect(Array(results.values.prefix(4)) == [0, 0, 0, 0])
            #expect(results.values.suffix(2).sorted() == [0, 125], "\(results.values)")
            let addresses = try names.map { try pier.address(of: $0) }
            #expect(Set(addresses.compactMap { $0 }).count == 4, "\(addresses)")
            try pier.mustPier(["rm", "-f"] + names + [shared])
            #expect(try pier.leftovers() == [])
        }
    }

    /// `--rootfs`: a mount namespace and chroot, with the generated hosts file naming the container.
    @Test func rootfsContainerSeesItsOwnFiles() throws {
        try withPier { pier in
            try pier.addNetwork("t226", subnet: "10.226.\(Int.random(in: 0...255)).0/24")
            let rootfs = pier.directory + "/rootfs"
            for path in ["bin", "lib/x86_64-linux-gnu", "lib64", "etc", "proc"] {
                try FileManager.default.createDirectory(atPath: rootfs + "/" + path, withIntermediateDirectories: true)
            }
            // Symlinks (/bin/sh → dash, the loader, libc) are copied as what they point to.
            for file in [
                "/bin/sh", "/bin/cat", "/bin/hostname", "/lib/x86_64-linux-gnu/libc.so.6",
                "/lib64/ld-linux-x86-64.so.2",
            ] {
                let target = URL(fileURLWithPath: file).resolvingSymlinksInPath().path
                try FileManager.default.copyItem(atPath: target, toPath: rootfs + file)
            }
            try "marker\n".write(toFile: rootfs + "/marker", atomically: true, encoding: .utf8)

            let name = pier.name("rootfs")
            let result = try pier.mustPier([
                "run", "--rm", "--name", name, "--net", "t226", "--rootfs", rootfs, "/bin/sh", "-c",
                "cat /marker; hostname; cat /etc/hosts",
            ])
            let lines = result.stdout.split(separator: "\n").map(String.init)
            #expect(lines.first == "marker")
            #expect(lines.dropFirst().first == name)
            #expect(lines.contains { $0.hasPrefix("10.226.") && $0.hasSuffix(name) }, "\(result.stdout)")
            #expect(try pier.leftovers() == [])
        }
    }
}

private final class ResultsBox: @unchecked Sendable {
    private let lock = NSLock()
    private var storage: [Int32]

    init(count: Int) { storage = Array(repeating: -1, count: count) }

    func set(_ index: Int, _ value: Int32) {
        lock.lock()
        storage[index] = value
        lock.unlock()
    }

    var values: [Int32] {
        lock.lock()
        defer { lock.unlock() }
        return storage
    }
}
