import ArgumentParser
import Foundation
import Idefics

struct BenchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Measure load, image encoding, prefill and decode speed (greedy, end-of-sequence ignored).")

    @OptionGroup var modelOptions: ModelOptions

    @Option(help: "Text tokens in the prompt (after the images).")
    var promptTokens = 128

    @Option(help: "Tokens to generate.")
    var newTokens = 32

    @Option(name: .customLong("image"), help: "Images placed before the text (repeatable).")
    var images: [String] = []

    @Flag(help: "Split images into four crops plus the whole.")
    var imageSplitting = false

    @Option(help: "Repetitions; the best run is reported.")
    var runs = 1

    func run() throws {
        let clock = ContinuousClock()
        let loadStart = clock.now
        let pipeline = try modelOptions.load()
        let loadSeconds = (clock.now - loadStart).seconds
        let text = String(repeating: "The quick brown fox jumps over the lazy dog. ", count: promptTokens / 5 + 2)
        let words = pipeline.tokenizer.decode(Array(pipeline.tokenizer.encode(text, addSpecialTokens: false).prefix(promptTokens)))
        let pictures = try images.map { try ImageInput.load($0) }
        let options = Idefics2ImageProcessorOverrides(doImageSplitting: imageSplitting)
        let request = GenerationRequest(maxNewTokens: newTokens, doSample: false, badWordsIds: [], eosTokenIds: [])
        var best: (image: Double, timings: GenerationTimings)?
        for _ in 0..<max(1, runs) {
            let imageStart = clock.now
            let prepared = try pipeline.prepare(prompt: String(repeating: "<image>", count: pictures.count) + words,
                                                images: pictures, options: options)
            let imageSeconds = (clock.now - imageStart).seconds
            let timings = try pipeline.generate(prepared, request: request).timings
            if best == nil || timings.decodeTokensPerSecond > best!.timings.decodeTokensPerSecond {
                best = (imageSeconds, timings)
            }
        }
        let (imageSeconds, t) = best!
        print(String(format: "model=%@ weights=%.2fGB threads=%d load=%.2fs images=%d image_encode=%.2fs prompt=%d "
                     + "prefill=%.1f tok/s new=%d decode=%.2f tok/s",
                     pipeline.checkpoint.directory.lastPathComponent, Double(pipeline.checkpoint.weightBytes) / 1e9,
                     pipeline.pool.threadCount, loadSeconds, pictures.count, imageSeconds, t.promptTokens,
                     t.prefillTokensPerSecond, t.generatedTokens, t.decodeTokensPerSecond))
    }
}
