import ArgumentParser
import Foundation
import Idefics

struct BenchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Measure load, prefill and decode speed on a checkpoint (greedy, end-of-sequence ignored).")

    @OptionGroup var modelOptions: ModelOptions

    @Option(help: "Prompt length in tokens.")
    var promptTokens = 128

    @Option(help: "Tokens to generate.")
    var newTokens = 32


    @Option(help: "Repetitions; the best run is reported.")
    var runs = 1

    func run() throws {
        let loadStart = ContinuousClock.now
        let generator = try modelOptions.load()
        let loadSeconds = (ContinuousClock.now - loadStart).seconds
        let text = String(repeating: "The quick brown fox jumps over the lazy dog. ", count: promptTokens / 5 + 2)
        let prompt = Array(generator.tokenizer.encode(text).prefix(promptTokens))
        let parameters = try GenerationParameters(request: .init(maxNewTokens: newTokens, doSample: false,
                                                                 eosTokenIds: []))
        var best: GenerationTimings?
        for _ in 0..<max(1, runs) {
            var session = DecoderSession(decoder: generator.decoder, pool: generator.pool)
            struct Silent: IncrementalTextDecoder {
                mutating func append(_ id: Int) -> String { "" }
                mutating func flush() -> String { "" }
            }
            let timings = try Generator.generate(model: &session, prompt: prompt, parameters: parameters, text: Silent()).timings
            if best == nil || timings.decodeTokensPerSecond > best!.decodeTokensPerSecond { best = timings }
        }
        let t = best!
        let weightsGB = Double(generator.checkpoint.weightBytes) / 1e9
        print(String(format: "model=%@ weights=%.2fGB threads=%d load=%.2fs prompt=%d prefill=%.1f tok/s new=%d decode=%.2f tok/s",
                     generator.checkpoint.directory.lastPathComponent, weightsGB, generator.pool.threadCount, loadSeconds, t.promptTokens, t.prefillTokensPerSecond,
                     t.generatedTokens, t.decodeTokensPerSecond))
    }
}
