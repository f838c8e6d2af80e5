import ArgumentParser
import Foundation
import Idefics

struct ChatCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "chat",
        abstract: "An interactive chat in the terminal; the KV cache is kept between turns.",
        discussion: "Type a message and press return. Commands: /image PATH_OR_URL attaches an image to your next "
            + "message, /reset starts over, /quit leaves.")

    @OptionGroup var modelOptions: ModelOptions

    @Option(help: "A system message that opens the conversation.")
    var system: String?

    @Option(help: "Maximum number of tokens per answer.")
    var maxNewTokens = 512

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
            if input == "/quit" { break }
            if input == "/reset" {
                conversation.reset()
                pending = []
                Terminal.write("(conversation reset)\n")
                continue
            }
            if input.hasPrefix("/image ") {
                let reference = String(input.dropFirst(7)).trimmingCharacters(in: .whitespaces)
                do {
                    pending.append(.image(try ImageInput.load(reference)))
                } catch {
                    Terminal.writeError("\(error)\n")
                }
                continue
            }
            do {
                let output = try conversation.reply(to: pending + [.text(input)],
                                                    request: GenerationRequest(maxNewTokens: maxNewTokens)) { token in
                    Terminal.write(token.text)
                    return true
                }
                Terminal.write(String(format: "\n(%d tokens, %.1f tokens/s)\n", output.tokens.count,
                                      output.timings.decodeTokensPerSecond))
                pending = []
            } catch {
                Terminal.writeError("\(error)\n")
            }
        }
    }
}
