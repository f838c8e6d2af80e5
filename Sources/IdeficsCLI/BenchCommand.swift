import ArgumentParser
import Foundation
import Idefics

struct BenchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Measure load, image encoding, prefill and decode speed (greedy, end-of-sequence ignored).")

    @OptionGroup var modelOptions: ModelOptions

    @Option(parsing: .unconditional, help: "Text tokens in the prompt (after the images; 1...1048576).")
    var promptTokens = 128

    @Option(parsing: .unconditional, help: "Tokens to generate.")
    var newTokens = 32

    @Option(name: .customLong("image"), help: "Images placed before the text (repeatable).")
    var images: [String] = []

    @Flag(help: "Split images into four crops plus the whole.")
    var imageSplitting = false

    @Option(parsing: .unconditional, help: "Repetitions; the best run is reported (1...1000).")
    var runs = 1

    @Flag(help: "Skip measuring this machine's read bandwidth and FMA peak (the ratios line).")
    var noMachineLimits = false

    func validate() throws {
        try checkOption("prompt-tokens", promptTokens, 1...(1 << 20))
        try checkOption("new-tokens", newTokens, 1...GenerationParameters.maxNewTokensLimit)
        try checkOption("runs", runs, 1...1000)
    }

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
        for run in 1...runs {
            let imageStart = clock.now
            let prepared = try pipeline.prepare(prompt: String(repeating: "<image>", count: pictures.count) + words,
                                                images: pictures, options: options)
            let imageSeconds = (clock.now - imageStart).seconds
            let timings = try pipeline.generate(prepared, request: request).timings
            if runs > 1 { // each run's own figures, not only the best run's
                Terminal.write(String(format: "run %d: image_encode=%.2fs prefill=%.1f tok/s decode=%.2f tok/s\n", run,
                                      imageSeconds, timings.prefillTokensPerSecond, timings.decodeTokensPerSecond))
            }
            if best == nil || timings.decodeTokensPerSecond > best!.timings.decodeTokensPerSecond {
                best = (imageSeconds, timings)
            }
        }
        let (imageSeconds, t) = best!
        Terminal.write(String(format: "model=%@ weights=%.2fGB threads=%d load=%.2fs images=%d image_encode=%.2fs prompt=%d "
                     + "prefill=%.1f tok/s new=%d decode=%.2f tok/s peak_rss=%.2fGB\n",
                     pipeline.checkpoint.directory.lastPathComponent, Double(pipeline.checkpoint.weightBytes) / 1e9,
                     pipeline.pool.threadCount, loadSeconds, pictures.count, imageSeconds, t.promptTokens,
                     t.prefillTokensPerSecond, t.generatedTokens, t.decodeTokensPerSecond,
                     Self.peakResidentBytes() / 1e9))
        guard !noMachineLimits else { return }
        let limits = MachineLimits.measure(pool: pipeline.pool)
        let figures = BenchFigures(pipeline: pipeline)
        var patches = [Int]()
        if let v1 = pipeline.ideficsV1 {
            patches = pictures.map { _ in v1.config.vision.patchCount + 1 }
        } else if let processor = pipeline.imageProcessor, let model = pipeline.idefics2 {
            for picture in pictures {
                for part in try processor.process(picture, overrides: options) {
                    let grid = model.vision.patchGrid(height: part.height, width: part.width)
                    patches.append(grid.rows * grid.columns)
                }
            }
        }
        let imageRate = imageSeconds > 0 ? figures.imageFlops(patches: patches) / imageSeconds : 0
        let prefillRate = t.prefillSeconds > 0 ? figures.prefillFlops(tokens: t.promptTokens) / t.prefillSeconds : 0
        let decodeRate = figures.bytesPerDecodedToken * t.decodeTokensPerSecond
        let bf16Name = KernelPath.active == .amx ? "bf16_amx_peak" : "bf16_dot_peak"
        let bf16 = limits.bf16Peak.map { String(format: " %@=%.0f GFLOP/s", bf16Name, $0 / 1e9) } ?? ""
        let int8 = KernelPath.hasInt8DotProducts ? ", VNNI int8 products" : ""
        Terminal.write(String(format: "machine: read=%.1f GB/s fma_peak=%.0f GFLOP/s%@ (%d threads, %@ kernels%@)\n",
                     limits.readBandwidth / 1e9, limits.fmaPeak / 1e9, bf16, limits.threads, limits.kernels.rawValue, int8))
        // Products at bf16 precision run on the bf16 GEMM where there is one: its peak is then the limit.
        let (peak, peakName) = modelOptions.matmulPrecision == .bfloat16 && limits.bf16Peak != nil
            ? (limits.bf16Peak!, "bf16") : (limits.fmaPeak, "FMA")
        Terminal.write(String(format: "image_encode=%.0f GFLOP/s (%.0f%% of %@ peak, %d patches) prefill=%.0f GFLOP/s "
                     + "(%.0f%%) decode=%.1f GB/s of weights (%.0f%% of read bandwidth)\n",
                     imageRate / 1e9, 100 * imageRate / peak, peakName, patches.reduce(0, +), prefillRate / 1e9,
                     100 * prefillRate / peak, decodeRate / 1e9, 100 * decodeRate / limits.readBandwidth))
    }

    /// Peak resident memory of this process so far (getrusage counts kilobytes on Linux, bytes on macOS).
    static func peakResidentBytes() -> Double {
        var usage = rusage()
        #if os(Linux)
        getrusage(__rusage_who_t(RUSAGE_SELF.rawValue), &usage)
        return Double(usage.ru_maxrss) * 1024
        #else
        getrusage(RUSAGE_SELF, &usage)
        return Double(usage.ru_maxrss)
        #endif
    }
}
