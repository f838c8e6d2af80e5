import ArgumentParser
import Foundation
import Idefics

struct ChatCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "chat",
        abstract: "An interactive chat in the terminal; the KV cache is kept between turns.",
        discussion: "Type a message and press return. " + ChatCommand.commands)

    static let commands = "Commands: /image PATH_OR_URL attaches an image to your next message, /reset starts over, "
        + "/quit leaves, /help shows this; start a message with // to send one that begins with /. Answers go to "
        + "stdout, statistics and errors to stderr."

    @OptionGroup var modelOptions: ModelOptions

    @Option(parsing: .unconditional, help: "A system message that opens the conversation.")
    var system: String?

    @Option(parsing: .unconditional, help: "Maximum number of tokens per answer.")
    var maxNewTokens = 512

    func validate() throws {
        try checkOption("max-new-tokens", maxNewTokens, 1...GenerationParameters.maxNewTokensLimit)
    }

    @Flag(help: "Do not split images into four crops plus the whole.")
    var noImageSplitting = false


    func run() throws {
        let pipeline = try modelOptions.load()
        let conversation = Conversation(pipeline: pipeline, system: system,
                                        options: .init(doImageSplitting: noImageSplitting ? false : nil))
        var pending: [Message.Content] = []
        let interactive = isatty(STDIN_FILENO) != 0
        while true {
            if interactive { Terminal.write(pending.isEmpty ? "> " : "> (\(pending.count) image\(pending.count == 1 ? "" : "s")) ") }
            guard let line = readLine() else { break }
            let input = line.trimmingCharacters(in: .whitespaces)
            if input.isEmpty { continue }
            var message = input
            if input.hasPrefix("//") {
                message = String(input.dropFirst())
            } else if input.hasPrefix("/") {
                let command = input.prefix { !$0.isWhitespace }
                let argument = input.dropFirst(command.count).trimmingCharacters(in: .whitespaces)
                switch (command, argument.isEmpty) {
                case ("/quit", true): return
                case ("/reset", true):
                    conversation.reset()
                    pending = []
                    Terminal.writeError("(conversation reset)\n")
                case ("/image", false):
                    do {
                        pending.append(.image(try ImageInput.load(argument)))
                    } catch {
                        Terminal.writeError("\(error)\n")
                    }
                case ("/help", true): Terminal.writeError(Self.commands + "\n")
                case ("/image", true): Terminal.writeError("/image needs a file path, URL or data URI\n")
                case ("/quit", false), ("/reset", false), ("/help", false):
                    Terminal.writeError("\(command) takes no argument\n")
                default: Terminal.writeError("unknown command \(command). " + Self.commands + "\n")
                }
                continue
            }
            do {
                let output = try conversation.reply(to: pending + [.text(message)],
                                                    request: GenerationRequest(maxNewTokens: maxNewTokens)) { token in
                    Terminal.write(token.text)
                    return true
                }
                Terminal.write("\n")
                Terminal.writeError(String(format: "(%d tokens, %.1f tokens/s)\n", output.tokens.count,
                                           output.timings.decodeTokensPerSecond))
                pending = []
            } catch {
                Terminal.writeError("\(error)\n")
            }
        }
    }
}
