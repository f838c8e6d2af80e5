import ArgumentParser
import Foundation

@main
struct IdeficsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "idefics",
        abstract: "Run Idefics2 checkpoints on images and text, with transformers' exact outputs.",
        subcommands: [GenerateCommand.self, ChatCommand.self, EvalCommand.self, TokenizeCommand.self,
                      PreprocessCommand.self, QuantizeCommand.self, ServeCommand.self, BenchCommand.self, BenchImageCommand.self,
                      BenchOpsCommand.self])

    static func main() async {
        // A closed pipe on stdout becomes a write error with a message (Terminal.write), not a silent kill.
        signal(SIGPIPE, SIG_IGN)
        // Swift's CommandLine.arguments would replace invalid UTF-8 with U+FFFD and run on a changed prompt.
        for index in 1..<Int(CommandLine.argc) {
            guard let raw = CommandLine.unsafeArgv[index], String(validatingCString: raw) == nil else { continue }
            Terminal.writeError("Error: argument \(index) is not valid UTF-8 text\n")
            Foundation.exit(ExitCode.validationFailure.rawValue)
        }
        await main(nil)
    }
}

/// Range checks of numeric options, before anything is loaded: the option, its value and the range in the message.
func checkOption<T: Comparable>(_ name: String, _ value: T?, _ allowed: ClosedRange<T>) throws {
    guard let value, !allowed.contains(value) else { return }
    throw ValidationError("--\(name) must be in \(allowed.lowerBound)...\(allowed.upperBound), not \(value)")
}
