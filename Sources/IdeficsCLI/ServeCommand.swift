import ArgumentParser
import Foundation
import Idefics
import IdeficsServer
import Logging

struct ServeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "Serve the model over HTTP: text-generation-inference's and OpenAI's APIs.",
        discussion: "Routes: POST /generate, /generate_stream (SSE), / (TGI compat); POST /v1/chat/completions, "
            + "/v1/completions (stream or not); GET /info, /health, /v1/models. The port opens once the model is "
            + "loaded and has run one token. SIGTERM or SIGINT stops accepting, lets running requests finish for "
            + "--shutdown-grace-seconds, then ends the rest with what they have generated, and exits 0.")

    @OptionGroup var modelOptions: ModelOptions

    @Option(help: "Address to bind (default: loopback only).")
    var host = "127.0.0.1"

    @Option(parsing: .unconditional, help: "Port (0: any free one, printed on stderr).")
    var port = 8080

    @Option(parsing: .unconditional, help: "Most prompt tokens a request may have (images count as their tokens).")
    var maxInputTokens = 4095

    @Option(parsing: .unconditional, help: "Most prompt + new tokens a request may have.")
    var maxTotalTokens = 4096

    @Option(parsing: .unconditional, help: "Requests running or queued at once; more are answered 429.")
    var maxConcurrentRequests = 128

    @Option(parsing: .unconditional, help: "Most requests decoded together in one step (continuous batching).")
    var maxBatchSize = 32

    @Option(parsing: .unconditional, help: "Most sampled runs of one TGI `best_of` request (TGI's default, 2).")
    var maxBestOf = 2

    @Option(parsing: .unconditional, help: "Prompt tokens prefilled per step beside the decoding rows (chunked prefill).")
    var maxBatchPrefillTokens = 512

    @Option(parsing: .unconditional, help: "Positions of finished requests kept for prompts that start like them (0: none).")
    var prefixCacheTokens = 4096

    @Option(parsing: .unconditional, help: "Megabytes of image vectors kept by image content (0: none).")
    var imageCacheMb = 256

    @Option(parsing: .unconditional, help: "Largest request body in bytes (413 past it).")
    var maxBodyBytes = 20 << 20

    @Option(help: "Require `Authorization: Bearer KEY` on every route but /health.")
    var apiKey: String?

    @Flag(help: "Take images only as data: URIs (never fetch URLs).")
    var noImageUrls = false

    @Flag(help: "Fetch image URLs whose host resolves to loopback, private or link-local addresses too.")
    var allowPrivateImageUrls = false

    @Option(parsing: .unconditional, help: "Seconds running requests may go on after SIGTERM or SIGINT before they are cut short.")
    var shutdownGraceSeconds = 30.0
    @Option(help: "Model name for /info, /v1/models and OpenAI answers (default: the checkpoint folder's name).")
    var servedModelName: String?

    func validate() throws {
        try checkOption("port", port, 0...65535)
        try checkOption("max-input-tokens", maxInputTokens, 1...(1 << 24))
        try checkOption("max-total-tokens", maxTotalTokens, 2...(1 << 24))
        try checkOption("max-concurrent-requests", maxConcurrentRequests, 1...65536)
        try checkOption("max-batch-size", maxBatchSize, 1...1024)
        try checkOption("max-best-of", maxBestOf, 1...64)
        try checkOption("max-batch-prefill-tokens", maxBatchPrefillTokens, 1...(1 << 20))
        try checkOption("prefix-cache-tokens", prefixCacheTokens, 0...(1 << 24))
        try checkOption("image-cache-mb", imageCacheMb, 0...(1 << 20))
        try checkOption("max-body-bytes", maxBodyBytes, 1024...(1 << 30))
        try checkOption("shutdown-grace-seconds", shutdownGraceSeconds, 0...86400)
        guard maxInputTokens < maxTotalTokens else {
            throw ValidationError("--max-input-tokens (\(maxInputTokens)) must be less than --max-total-tokens (\(maxTotalTokens))")
        }
        if let apiKey, apiKey.isEmpty { throw ValidationError("--api-key is empty") }
    }

    func run() async throws {
        let pipeline = try modelOptions.load()
        _ = try pipeline.generate(prompt: "Hi", request: GenerationRequest(maxNewTokens: 1)) // warm: the first pass faults the weights in
        var logger = Logger(label: "idefics.serve")
        logger.logLevel = .info
        let configuration = ServerConfiguration(
            host: host, port: port,
            limits: ServerLimits(maxInputTokens: maxInputTokens, maxTotalTokens: maxTotalTokens,
                                 maxConcurrentRequests: maxConcurrentRequests, maxBatchSize: maxBatchSize,
                                 maxBodyBytes: maxBodyBytes, maxBestOf: maxBestOf),
            apiKey: apiKey, images: .init(fetchURLs: !noImageUrls, allowPrivateHosts: allowPrivateImageUrls),
            modelName: servedModelName ?? pipeline.checkpoint.directory.lastPathComponent)
        let engine = GenerationEngine(pipeline: pipeline, capacity: maxConcurrentRequests, maxBatchSize: maxBatchSize,
                                      prefillChunk: maxBatchPrefillTokens, prefixCacheTokens: prefixCacheTokens,
                                      imageCacheBytes: imageCacheMb << 20)
        let host = host
        let app = IdeficsServer.application(engine: engine, configuration: configuration, logger: logger) { port in
            Terminal.writeError("listening on http://\(host):\(port)\n")
        }
        // Hummingbird's own handler stops accepting and waits for running requests; this one bounds that wait.
        let grace = Duration.milliseconds(Int64(shutdownGraceSeconds * 1000))
        let signals = [SIGTERM, SIGINT].map { number in
            signal(number, SIG_IGN) // delivered to the dispatch sources (Hummingbird's and this one) instead
            let source = DispatchSource.makeSignalSource(signal: number)
            source.setEventHandler { engine.shutDown(grace: grace) }
            source.resume()
            return source
        }
        defer { signals.forEach { $0.cancel() } }
        try await app.runService()
    }
}
