import CNI
import Glibc

/// Everything the runtime can fail with, worded so that the user knows what to do next.
public enum RuntimeError: Error, CustomStringConvertible, Sendable {
    /// A plugin (or the CNI layer) failed; carries the spec error and which plugin/verb it was.
    case plugin(network: String, plugin: String, command: String, error: CNIError)
    case unknownNetwork(String, known: [String], directory: String)
    case pluginNotFound(String, searched: [String])
    case unknownContainer(String)
    case nameInUse(String)
    case invalidName(String, reason: String)
    case invalidArgument(String)
    case notRunning(String)
    case stillRunning(String)
    case notRoot
    case system(String, errno: Int32)
    case failed(String)
    /// The container command could not be started (not found: 127, not executable: 126, as shells say).
    case commandFailed(String, exitCode: Int32)

    public var description: String {
        switch self {
        case .plugin(let network, let plugin, let command, let error):
            // 999 ("internal") tells a user nothing; the others say what kind of failure it was.
            let code = error.code == .internalError ? "" : " (CNI error \(error.code))"
            var text = "network \"\(network)\": plugin \(plugin) \(command) failed\(code): \(error.msg)"
            if !error.details.isEmpty { text += " (\(error.details))" }
            if let hint = RuntimeError.hint(for: error) { text += "\n  hint: \(hint)" }
            return text
        case .unknownNetwork(let name, let known, let directory):
            let list = known.isEmpty ? "none" : known.joined(separator: ", ")
            return
                "unknown network \"\(name)\" in \(directory); known networks: \(list) (and host, none, container:NAME)"
        case .pluginNotFound(let name, let searched):
            return
                "plugin \"\(name)\" not found; looked in: \(searched.joined(separator: ", ")) (set CNI_PATH or build it)"
        case .unknownContainer(let name): return "no such container: \(name)"
        case .nameInUse(let name): return "the container name \"\(name)\" is already in use"
        case .invalidName(let name, let reason): return "invalid name \"\(name)\": \(reason)"
        case .invalidArgument(let text): return text
        case .notRunning(let name): return "container \(name) is not running"
        case .stillRunning(let name): return "container \(name) is running: stop it first or use rm -f"
        case .notRoot: return "pier needs root (CAP_SYS_ADMIN and CAP_NET_ADMIN) to manage namespaces: run it as root"
        case .system(let action, let code): return "\(action): \(String(cString: strerror(code))) (errno \(code))"
        case .failed(let text): return text
        case .commandFailed(let text, _): return text
        }
    }

    /// Port clashes come back from portmap as free text; point the user at the real cause.
    static func hint(for error: CNIError) -> String? {
        let text = (error.msg + " " + error.details).lowercased()
        if text.contains("address already in use") {
            return "a process on the host listens on that port: stop it, or pick another -p"
        }
        if text.contains("already allocated") || text.contains("port") && text.contains("in use") {
            return "another container already publishes that host port: pick another -p"
        }
        return nil
    }

    /// Turns a plugin-lookup failure from the CNI layer into the runtime's actionable form.
    static func fromFind(_ error: CNIError, plugin: String, searched: [String]) -> RuntimeError {
        if error.msg.hasPrefix("failed to find plugin") { return .pluginNotFound(plugin, searched: searched) }
        return .failed(error.description)
    }
}

/// Fails unless the effective user is root; namespaces and mounts need it.
public func requireRoot() throws(RuntimeError) {
    guard geteuid() == 0 else { throw RuntimeError.notRoot }
}
