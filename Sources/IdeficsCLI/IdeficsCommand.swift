import ArgumentParser

@main
struct IdeficsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "idefics",
        abstract: "Run Idefics2 checkpoints on images and text, with transformers' exact outputs.",
        subcommands: [GenerateCommand.self, ChatCommand.self, EvalCommand.self, TokenizeCommand.self,
                      PreprocessCommand.self, BenchCommand.self, BenchImageCommand.self])
}
