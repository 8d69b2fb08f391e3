import PierState

#if canImport(Glibc)
    import Glibc
#endif

extension Style {
    /// Colour only on a terminal, and never when NO_COLOR is set (https://no-color.org).
    public static var forStandardOutput: Style {
        Style(enabled: isatty(STDOUT_FILENO) != 0 && getenv("NO_COLOR") == nil)
    }
}

/// How the CLI finds a container's namespace before the runtime's records can be consulted:
/// a path is used as is, a bare name is looked up in the netns directory (`pier-<name>` is
/// how the runtime pins containers, the plain name is how `ip netns` does).
public enum NamespaceLocator {
    public static func path(for reference: String, netnsDirectory: String = DefaultPaths.netnsDirectory) -> String {
        if reference.hasPrefix("/") { return reference }
        for candidate in ["pier-" + reference, reference] where access(netnsDirectory + "/" + candidate, F_OK) == 0 {
            return netnsDirectory + "/" + candidate
        }
        return netnsDirectory + "/" + reference
    }
}
