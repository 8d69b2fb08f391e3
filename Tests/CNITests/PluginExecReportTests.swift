import CNI
import Glibc
import Testing

/// `PluginExec.collect` with an exit report (how `pier` collects a plugin it forked): the code comes from
/// the report, so collecting does not wait for the child to finish exiting; without a report the child's
/// real exit status counts, and a child left behind is reaped by `reapExited`.
struct PluginExecReportTests {
    /// `sh -c script` with stdout on one pipe and fd 3 on another; returns the pid and the read ends.
    func start(_ script: String) throws -> (pid: pid_t, stdout: Int32, report: Int32) {
        var out: [Int32] = [-1, -1]
        var report: [Int32] = [-1, -1]
        try #require(pipe(&out) == 0 && pipe(&report) == 0)
        // Close-on-exec, so only the dup2'd copies reach this child (and none reaches another test's).
        for end in out + report { _ = fcntl(end, F_SETFD, FD_CLOEXEC) }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_adddup2(&actions, out[1], STDOUT_FILENO)
        posix_spawn_file_actions_adddup2(&actions, report[1], 3)
        var pid: pid_t = 0
        let words: [String] = ["/bin/sh", "-c", script]
        let argv = words.map { strdup($0) } + [nil]
        defer { for argument in argv { free(argument) } }
        try #require(posix_spawn(&pid, "/bin/sh", &actions, nil, argv, environ) == 0)
        close(out[1])
        close(report[1])
        return (pid, out[0], report[0])
    }

    @Test func aReportedExitCodeIsTakenWithoutWaitingForTheExit() throws {
        // Reports 3, closes both pipes, then lingers: collect must return while it still runs.
        let child = try start(#"printf out; printf '\003\000\000\000' >&3; exec 1>&- 3>&-; sleep 30"#)
        defer {
            close(child.stdout)
            close(child.report)
        }
        let execution = try PluginExec.collect(
            pid: child.pid, stdout: child.stdout, name: "sh", reportedExit: child.report)
        #expect(execution.exitCode == 3 && execution.signal == nil)
        #expect(execution.stdout == Array("out".utf8))
        #expect(kill(child.pid, 0) == 0, "the child still runs")
        kill(child.pid, SIGKILL)
        PluginExec.reapExited(waiting: true)
        var status: Int32 = 0
        #expect(waitpid(child.pid, &status, WNOHANG) == -1 && errno == ECHILD, "reaped")
    }

    @Test func withoutAReportTheExitStatusCounts() throws {
        let child = try start("printf partial; printf '\\001' >&3; kill -KILL $$")
        defer {
            close(child.stdout)
            close(child.report)
        }
        let execution = try PluginExec.collect(
            pid: child.pid, stdout: child.stdout, name: "sh", reportedExit: child.report)
        #expect(execution.signal == SIGKILL, "exit \(String(describing: execution.exitCode))")
        #expect(execution.exitCode == nil)
        #expect(execution.stdout == Array("partial".utf8))
    }
}
