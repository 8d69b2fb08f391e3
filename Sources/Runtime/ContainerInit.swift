import CPierShim
import Glibc

/// What `pier __init` does between being spawned and exec'ing the container command: join the
/// container's network namespace, get a UTS namespace (hostname = container name) and, with a root
/// filesystem, a mount namespace and chroot. It runs in a freshly spawned process before any thread
/// exists, because joining a mount namespace is refused to multi-threaded processes.
public struct InitSpec: Sendable, Equatable {
    /// Network namespace to join; nil keeps the caller's (host mode).
    public var netns: String?
    /// Set in a new UTS namespace; ignored when `joinUTS` is given.
    public var hostname: String?
    /// `exec`: namespaces of the running container process.
    public var joinUTS: String?
    public var joinMount: String?
    /// `exec` into a chrooted container: `/proc/<pid>/root`.
    public var joinRoot: String?
    /// New root filesystem (chroot) in a new mount namespace.
    public var rootfs: String?
    /// Files bind-mounted into the rootfs before the chroot: source → path inside the rootfs.
    public var binds: [(source: String, target: String)]
    /// Where to report a failure before exec (the parent reads it; exec closes it on success).
    public var reportDescriptor: Int32?
    /// Written with "pid starttime" before exec, so the process can be found even when the `pier` that
    /// started it died before recording its pid.
    public var pidFile: String?
    /// `K=V` entries set before exec.
    public var environment: [String] = []
    /// Working directory, inside the container's root.
    public var workdir: String?
    /// Detached containers: `__init` stays as the command's parent and writes its exit code here (there
    /// is no daemon to wait for it).
    public var exitFile: String?
    public var command: [String]

    public init(command: [String]) {
        self.command = command
        self.binds = []
    }

    public static func == (lhs: InitSpec, rhs: InitSpec) -> Bool {
        lhs.arguments == rhs.arguments
    }

    /// The `__init` command line; the inverse of `init(arguments:)`.
    public var arguments: [String] {
        var arguments: [String] = []
        if let netns { arguments += ["--netns", netns] }
        if let hostname { arguments += ["--hostname", hostname] }
        if let joinUTS { arguments += ["--join-uts", joinUTS] }
        if let joinMount { arguments += ["--join-mnt", joinMount] }
        if let joinRoot { arguments += ["--join-root", joinRoot] }
        if let rootfs { arguments += ["--rootfs", rootfs] }
        for bind in binds { arguments += ["--bind", bind.source, bind.target] }
        if let reportDescriptor { arguments += ["--report-fd", String(reportDescriptor)] }
        if let pidFile { arguments += ["--pid-file", pidFile] }
        for entry in environment { arguments += ["--env", entry] }
        if let workdir { arguments += ["--workdir", workdir] }
        if let exitFile { arguments += ["--exit-file", exitFile] }
        return arguments + ["--"] + command
    }

    public init(arguments: [String]) throws(RuntimeError) {
        self.init(command: [])
        var index = 0
        func value() throws(RuntimeError) -> String {
            index += 1
            guard index < arguments.count else { throw RuntimeError.invalidArgument("__init: missing value") }
            return arguments[index]
        }
        while index < arguments.count {
            switch arguments[index] {
            case "--netns": netns = try value()
            case "--hostname": hostname = try value()
            case "--join-uts": joinUTS = try value()
            case "--join-mnt": joinMount = try value()
            case "--join-root": joinRoot = try value()
            case "--rootfs": rootfs = try value()
            case "--bind":
                let source = try value()
                binds.append((source, try value()))
            case "--report-fd": reportDescriptor = Int32(try value())
            case "--pid-file": pidFile = try value()
            case "--env": environment.append(try value())
            case "--workdir": workdir = try value()
            case "--exit-file": exitFile = try value()
            case "--":
                command = Array(arguments[(index + 1)...])
                index = arguments.count
                continue
            default: throw RuntimeError.invalidArgument("__init: unknown option \(arguments[index])")
            }
            index += 1
        }
        guard !command.isEmpty else { throw RuntimeError.invalidArgument("__init: no command") }
    }
}

public enum ContainerInit {
    /// Sets up the namespaces and execs; returns only on failure, with the message already reported.
    public static func run(_ spec: InitSpec) -> Never {
        if let fd = spec.reportDescriptor { _ = fcntl(fd, F_SETFD, FD_CLOEXEC) }
        // Opened before entering the container, where the state directory may not be visible.
        var exitDescriptor: Int32 = -1
        if let exitFile = spec.exitFile {
            exitDescriptor = open(exitFile, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        }
        do {
            if let pidFile = spec.pidFile {
                let pid = getpid()
                let start = ProcessState.stat(pid)?.startTime ?? 0
                // Not synced: the process it names does not outlive a power loss.
                try Files.writeAtomically(Array("\(pid) \(start)\n".utf8), to: pidFile, mode: 0o600, durable: false)
            }
            try enter(spec)
            for entry in spec.environment {
                guard let equals = entry.firstIndex(of: "=") else { continue }
                setenv(String(entry[..<equals]), String(entry[entry.index(after: equals)...]), 1)
            }
            if let workdir = spec.workdir, chdir(workdir) != 0 {
                throw RuntimeError.system("working directory \(workdir)", errno: errno)
            }
        } catch {
            fail(spec, "\(error)", code: 126)
        }
        if exitDescriptor >= 0 { monitor(spec, exitDescriptor: exitDescriptor) }
        let arguments = spec.command.map { strdup($0) } + [nil]
        execvp(spec.command[0], arguments)
        let code = errno
        fail(
            spec, "exec \(spec.command[0]): \(String(cString: strerror(code)))",
            code: code == ENOENT ? 127 : 126)
    }

    /// Forks: the child goes on to exec the command; this process waits for it and records its exit
    /// code. Both share the process group `stop` and `kill` signal, so the monitor ignores every catchable
    /// signal (the command gets them, with default dispositions restored); SIGKILL ends both, and a
    /// monitor gone without writing a code therefore means 137.
    private static func monitor(_ spec: InitSpec, exitDescriptor: Int32) {
        let child = fork()
        if child < 0 { fail(spec, "fork: \(String(cString: strerror(errno)))", code: 126) }
        if child == 0 {
            close(exitDescriptor)
            return
        }
        for number in 1..<Int32(32) where number != SIGKILL && number != SIGSTOP && number != SIGCHLD {
            signal(number, SIG_IGN)
        }
        // The report pipe's other end sees EOF once the child's exec closes its copy.
        if let fd = spec.reportDescriptor { close(fd) }
        var status: Int32 = 0
        while waitpid(child, &status, 0) < 0 && errno == EINTR {}
        let signalNumber = status & 0x7f
        let code = signalNumber == 0 ? (status >> 8) & 0xff : 128 + signalNumber
        let text = "\(code)\n"
        _ = text.withCString { write(exitDescriptor, $0, strlen($0)) }
        close(exitDescriptor)
        _exit(code)
    }

    private static func fail(_ spec: InitSpec, _ message: String, code: Int32) -> Never {
        let text = "pier: \(message)\n"
        let target = spec.reportDescriptor ?? STDERR_FILENO
        _ = text.withCString { write(target, $0, strlen($0)) }
        // _exit: in a child forked from `pier`, `pier`'s exit handlers are not this process's to run.
        _exit(code)
    }

    private static func enter(_ spec: InitSpec) throws(RuntimeError) {
        // The root must be opened before joining the mount namespace, where /proc may not be mounted.
        var rootDescriptor: Int32 = -1
        if let joinRoot = spec.joinRoot {
            rootDescriptor = open(joinRoot, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
            guard rootDescriptor >= 0 else { throw RuntimeError.system("open \(joinRoot)", errno: errno) }
        }
        if let netns = spec.netns { try join(netns, pier_clone_newnet()) }
        if let joinUTS = spec.joinUTS {
            try join(joinUTS, pier_clone_newuts())
        } else if let hostname = spec.hostname {
            guard pier_unshare(pier_clone_newuts()) == 0 else {
                throw RuntimeError.system("unshare UTS namespace", errno: errno)
            }
            guard sethostname(hostname, hostname.utf8.count) == 0 else {
                throw RuntimeError.system("sethostname \(hostname)", errno: errno)
            }
        }
        if let joinMount = spec.joinMount { try join(joinMount, pier_clone_newns()) }
        if rootDescriptor >= 0 {
            guard fchdir(rootDescriptor) == 0, chroot(".") == 0, chdir("/") == 0 else {
                throw RuntimeError.system("enter the container root", errno: errno)
            }
            close(rootDescriptor)
        }
        if let rootfs = spec.rootfs {
            try enterRootfs(rootfs, binds: spec.binds)
        } else if !spec.binds.isEmpty {
            try bindOverHostFiles(spec.binds)
        }
    }

    /// The host's filesystem with the container's resolv.conf and hosts over /etc's, in a mount
    /// namespace of its own (slave: mounts the host makes later still show). A file the host does not
    /// have (a dangling resolv.conf symlink) is skipped rather than created on the host.
    private static func bindOverHostFiles(_ binds: [(source: String, target: String)]) throws(RuntimeError) {
        guard pier_unshare(pier_clone_newns()) == 0 else {
            throw RuntimeError.system("unshare mount namespace", errno: errno)
        }
        guard mount("none", "/", nil, UInt(MS_REC) | UInt(MS_SLAVE), nil) == 0 else {
            throw RuntimeError.system("make / a slave mount", errno: errno)
        }
        for bind in binds {
            let target = "/" + bind.target
            guard fileExists(target) else { continue }
            guard mount(bind.source, target, nil, UInt(MS_BIND), nil) == 0 else {
                throw RuntimeError.system("bind \(bind.source) on \(target)", errno: errno)
            }
        }
    }

    private static func join(_ path: String, _ type: Int32) throws(RuntimeError) {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw RuntimeError.system("open namespace \(path)", errno: errno) }
        defer { close(fd) }
        guard pier_setns(fd, type) == 0 else { throw RuntimeError.system("setns \(path)", errno: errno) }
    }

    /// A private mount namespace so nothing mounted here leaks to the host, the rootfs bound on itself
    /// (pivot_root wants a mount), the generated files (resolv.conf, hosts, hostname) bound over its own,
    /// /proc, then pivot_root with the old root detached: the container keeps no copy of the host's
    /// mounts, whose network namespace pins (a thousand with a thousand containers) would otherwise stay
    /// alive in every container started after them. Where pivot_root is refused (a ramfs root), chroot.
    private static func enterRootfs(_ rootfs: String, binds: [(source: String, target: String)]) throws(RuntimeError) {
        guard pier_unshare(pier_clone_newns()) == 0 else {
            throw RuntimeError.system("unshare mount namespace", errno: errno)
        }
        guard mount("none", "/", nil, UInt(MS_REC) | UInt(MS_PRIVATE), nil) == 0 else {
            throw RuntimeError.system("make / private", errno: errno)
        }
        guard mount(rootfs, rootfs, nil, UInt(MS_BIND) | UInt(MS_REC), nil) == 0 else {
            throw RuntimeError.system("bind \(rootfs) on itself", errno: errno)
        }
        for bind in binds {
            let target = rootfs + "/" + bind.target
            if !fileExists(target) {
                try Files.makeDirectories(directoryName(target))
                let fd = open(target, O_WRONLY | O_CREAT | O_CLOEXEC, 0o644)
                if fd >= 0 { close(fd) }
            }
            guard mount(bind.source, target, nil, UInt(MS_BIND), nil) == 0 else {
                throw RuntimeError.system("bind \(bind.source) on \(target)", errno: errno)
            }
        }
        if isDirectory(rootfs + "/proc") {
            _ = mount("proc", rootfs + "/proc", "proc", 0, nil)
        }
        guard chdir(rootfs) == 0 else { throw RuntimeError.system("chdir \(rootfs)", errno: errno) }
        if pier_pivot_root(".", ".") == 0 {
            // The old root is now stacked on the new one: detaching it leaves the new one as "/".
            guard umount2(".", Int32(Glibc.MNT_DETACH)) == 0 else {
                throw RuntimeError.system("detach the host's root", errno: errno)
            }
        } else if chroot(".") != 0 {
            throw RuntimeError.system("chroot \(rootfs)", errno: errno)
        }
        guard chdir("/") == 0 else { throw RuntimeError.system("chdir / in \(rootfs)", errno: errno) }
    }
}
