/// Docker's rule for commands that take a container command: pier's options end at the first
/// argument that is not an option (or at an explicit `--`); everything from there on is the command,
/// passed untouched. An unknown option before it is an error, and `--help`/`-h` there asks for help.
enum CommandLineRules {
    /// Options that take a value, for the subcommands whose trailing arguments are a command. The
    /// flags need no listing: anything else starting with `-` is one (or unknown, which the parser
    /// then reports).
    static let valueOptions: [String: Set<String>] = {
        let globals: Set<String> = ["--root", "--cache-dir", "--config-dir", "--netns-dir", "--cni-path"]
        let container: Set<String> = [
            "--name", "--net", "-p", "--publish", "--ip", "--mac", "--args", "--rootfs", "-e", "--env",
            "--env-file", "-w", "--workdir", "--expose", "--alias", "--network-alias", "--dns", "--dns-search",
            "--dns-option", "--service", "--endpoint-mode", "--affinity", "--service-vip",
        ]
        return [
            "run": globals.union(container), "create": globals.union(container),
            "exec": globals.union(["-e", "--env", "--env-file", "-w", "--workdir"]),
        ]
    }()

    /// Inserts `--` where the container command begins (after the container name for `exec`), so the
    /// parser treats what follows as arguments, never as pier's options.
    static func endOptionsAtCommand(_ arguments: [String]) -> [String] {
        guard let subcommand = arguments.first, let takesValue = valueOptions[subcommand] else { return arguments }
        var positionalsBeforeCommand = subcommand == "exec" ? 1 : 0
        var index = 1
        while index < arguments.count {
            let argument = arguments[index]
            if argument == "--" { return arguments }
            if argument.hasPrefix("-") && argument.count > 1 {
                index += consumed(argument, takesValue: takesValue)
                continue
            }
            if positionalsBeforeCommand > 0 {
                positionalsBeforeCommand -= 1
                index += 1
                continue
            }
            return Array(arguments[..<index]) + ["--"] + Array(arguments[index...])
        }
        return arguments
    }

    /// How many arguments an option occupies: `--name X` two, `--name=X` one, `-dp 80` two, `-p80` one.
    private static func consumed(_ argument: String, takesValue: Set<String>) -> Int {
        if argument.hasPrefix("--") {
            return !argument.contains("=") && takesValue.contains(argument) ? 2 : 1
        }
        // A cluster of short options: the first one that takes a value takes the rest of the cluster,
        // or the next argument when it is last.
        let letters = Array(argument.dropFirst())
        for (position, letter) in letters.enumerated() where takesValue.contains("-\(letter)") {
            return position == letters.count - 1 ? 2 : 1
        }
        return 1
    }
}
