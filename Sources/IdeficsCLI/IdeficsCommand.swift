import ArgumentParser

@main
struct IdeficsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "idefics",
        abstract: "Run Idefics2 checkpoints: text generation with transformers' exact outputs.",
        subcommands: [GenerateCommand.self, TokenizeCommand.self, BenchCommand.self])
}
