import ArgumentParser

@main
struct Pier: ParsableCommand {
    static let configuration = CommandConfiguration(subcommands: [AgentCommand.self])
    func run() throws { print("pier") }
}
