import ArgumentParser
import Foundation
import Idefics

struct TokenizeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tokenize", abstract: "Print the token ids of a text, as the checkpoint's tokenizer.json gives them.")

    @Option(help: "Checkpoint folder (or model id in the local Hugging Face cache) holding tokenizer.json (default: the demo model).")
    var model: String?

    @Option(help: "Branch, tag or commit of a model id in the Hugging Face cache (default: main).")
    var revision: String?

    @Option(parsing: .unconditional, help: "The text to tokenize.")
    var text: String

    @Flag(help: "Do not add BOS/EOS as the tokenizer's template would.")
    var noSpecialTokens = false

    @Flag(help: "Print {\"ids\": [...]} (the default output is the same JSON).")
    var json = false

    func run() throws {
        let checkpointDirectory = try Checkpoint.resolveDirectory(DemoModel.resolve(model), revision: revision)
        let tokenizer = try Tokenizer(directory: checkpointDirectory)
        try Terminal.printJSON(["ids": tokenizer.encode(text, addSpecialTokens: !noSpecialTokens)])
    }
}
