import ArgumentParser

@main
struct Pier: ParsableCommand {
    func run() throws { print("pier") }
}
