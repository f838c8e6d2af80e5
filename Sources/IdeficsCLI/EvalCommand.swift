import ArgumentParser
import Foundation
import Idefics

struct EvalCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "eval",
        abstract: "Exact-match accuracy on a JSON Lines set of {image, question, answer, type} items.",
        discussion: "Each item is asked as one chat turn (the image, then the question), answered greedily; the "
            + "answer counts when the stripped text equals `answer`. Image paths are taken as given, else relative "
            + "to the data file's folder, else to the folder two levels above it (the repository for the demo set).")

    @OptionGroup var modelOptions: ModelOptions

    @Option(help: "The evaluation set (JSON Lines).")
    var data: String

    @Option(parsing: .unconditional, help: "Evaluate only the first N items (at least 1).")
    var limit: Int?

    @Option(parsing: .unconditional, help: "Items generated together in one batch (1...256).")
    var batchSize = 8

    @Option(parsing: .unconditional, help: "Maximum answer length in tokens.")
    var maxNewTokens = 20

    @Option(help: "Write every item's answer here (JSON Lines).")
    var outputs: String?

    @Flag(help: "Print the report as JSON.")
    var json = false


    func validate() throws {
        try checkOption("limit", limit, 1...Int.max)
        try checkOption("batch-size", batchSize, 1...256)
        try checkOption("max-new-tokens", maxNewTokens, 1...GenerationParameters.maxNewTokensLimit)
    }

    func run() async throws {
        var items = try EvaluationItem.load(data)
        if let outputs { try OutputFile.check(outputs) } // before the evaluation, not after it
        let pipeline = try modelOptions.load()
        if let limit { items = Array(items.prefix(limit)) }
        let progress = ProgressBar(total: items.count)
        let results = try await Evaluation.run(items, pipeline: pipeline, batchSize: batchSize, maxNewTokens: maxNewTokens) {
            progress.advance(to: $0)
        }
        progress.finish()
        if let outputs {
            let lines = try results.map { String(decoding: try JSONEncoder.sorted.encode($0), as: UTF8.self) }
            try OutputFile.write(Data((lines.joined(separator: "\n") + "\n").utf8), to: outputs)
        }
        let report = EvaluationReport(results)
        if json { try Terminal.printJSON(report) } else { Terminal.write(report.table) }
    }
}

/// A one-line progress bar on stderr, drawn only when stderr is a terminal.
final class ProgressBar {
    let total: Int
    init(total: Int) { self.total = total }

    func advance(to done: Int) {
        guard Terminal.stderrIsTerminal, total > 0 else { return }
        let width = 30, filled = width * done / total
        Terminal.writeError("\r[" + String(repeating: "#", count: filled) + String(repeating: ".", count: width - filled)
                            + "] \(done)/\(total)")
    }

    func finish() {
        if Terminal.stderrIsTerminal { Terminal.writeError("\n") }
    }
}

extension JSONEncoder {
    static var sorted: JSONEncoder {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return encoder
    }
}
