import Foundation

/// What a `GenerationEngine` counts, in Prometheus' text exposition format (0.0.4): requests, tokens, the queue and
/// the decode batch, decode throughput and a histogram of the time to the first token. Written by the engine's
/// thread, read by a scrape: one lock.
public final class EngineMetrics: @unchecked Sendable {
    /// Upper bounds of the time-to-first-token buckets, in seconds (a CPU prefill of an image takes seconds).
    public static let firstTokenBounds: [Double] = [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300]

    private let lock = NSLock()
    private var admitted = 0, finished: [String: Int] = [:]
    private var imagePieces = ["idle": 0, "busy": 0]
    private var promptTokens = 0, reusedTokens = 0, generatedTokens = 0
    private var queueSize = 0, batchSize = 0, decodeRate = 0.0
    private var firstTokenBuckets = [Int](repeating: 0, count: EngineMetrics.firstTokenBounds.count)
    private var firstTokenCount = 0, firstTokenSum = 0.0

    public init() {}

    func admit(queueSize: Int) { lock.withLock { admitted += 1; self.queueSize = queueSize } }
    func dequeue(queueSize: Int) { lock.withLock { self.queueSize = queueSize } }
    func prefilled(promptTokens count: Int, reused: Int) { lock.withLock { (promptTokens, reusedTokens) = (promptTokens + count, reusedTokens + reused) } }
    /// One piece of an image's encoding ran, between decode steps of running rows or with none running.
    func imagePiece(besideRows: Bool) { lock.withLock { imagePieces[besideRows ? "busy" : "idle", default: 0] += 1 } }
    func generated() { lock.withLock { generatedTokens += 1 } }
    func finish(reason: String) { lock.withLock { finished[reason, default: 0] += 1 } }

    /// One shared decode step: its rows and how long it took.
    func step(rows: Int, seconds: Double) {
        lock.withLock {
            batchSize = rows
            if seconds > 0 { decodeRate = Double(rows) / seconds }
        }
    }

    /// The batch emptied: nothing decodes.
    func idle() { lock.withLock { (batchSize, decodeRate) = (0, 0) } }

    func firstToken(after seconds: Double) {
        lock.withLock {
            firstTokenCount += 1
            firstTokenSum += seconds
            for (i, bound) in Self.firstTokenBounds.enumerated() where seconds <= bound { firstTokenBuckets[i] += 1 }
        }
    }

    /// The exposition text.
    public func render() -> String {
        lock.withLock {
            var out = ""
            func family(_ name: String, _ type: String, _ help: String, _ samples: [(String, String, String)]) {
                out += Self.family(name, type, help, samples)
            }
            family("idefics_requests_admitted_total", "counter", "Generation requests admitted to the engine.",
                   [("", "", "\(admitted)")])
            family("idefics_requests_finished_total", "counter",
                   "Admitted requests ended, by finish reason (length, eos_token, stop_sequence, cancelled, error).",
                   Self.labelled("finish_reason", finished))
            family("idefics_prompt_tokens_total", "counter", "Prompt tokens of admitted requests.", [("", "", "\(promptTokens)")])
            family("idefics_prompt_tokens_reused_total", "counter",
                   "Prompt tokens whose keys and values came from a finished request's kept state (prefix cache).",
                   [("", "", "\(reusedTokens)")])
            family("idefics_image_encoding_pieces_total", "counter",
                   "Pieces of image encoding run (a patch embedding, a vision layer, a connector), by whether rows were "
                   + "decoding beside them (busy: each piece then stalled them once) or not (idle).",
                   Self.labelled("batch", imagePieces))
            family("idefics_generated_tokens_total", "counter", "Tokens generated.", [("", "", "\(generatedTokens)")])
            family("idefics_queue_size", "gauge", "Admitted requests waiting for their prefill.", [("", "", "\(queueSize)")])
            family("idefics_batch_size", "gauge", "Rows of the last shared decode step.", [("", "", "\(batchSize)")])
            family("idefics_decode_tokens_per_second", "gauge", "Tokens per second of the last decode step, all rows.",
                   [("", "", String(format: "%.3f", decodeRate))])
            let buckets = Self.firstTokenBounds.indices.map { i in
                ("_bucket", "{le=\"\(Self.format(Self.firstTokenBounds[i]))\"}", "\(firstTokenBuckets[i])")
            }
            family("idefics_time_to_first_token_seconds", "histogram",
                   "From admission to the first generated token (queueing, image encoding and prefill).",
                   buckets + [("_bucket", "{le=\"+Inf\"}", "\(firstTokenCount)"),
                              ("_sum", "", String(format: "%.6f", firstTokenSum)), ("_count", "", "\(firstTokenCount)")])
            return out
        }
    }

    /// One metric family's exposition; each sample is (suffix of the name, labels, value).
    public static func family(_ name: String, _ type: String, _ help: String, _ samples: [(String, String, String)]) -> String {
        "# HELP \(name) \(help)\n# TYPE \(name) \(type)\n"
            + samples.map { suffix, labels, value in "\(name)\(suffix)\(labels) \(value)\n" }.joined()
    }

    /// Samples of one counter by a label's values, in their order.
    public static func labelled(_ key: String, _ counts: [String: Int]) -> [(String, String, String)] {
        counts.keys.sorted().map { ("", "{\(key)=\"\($0)\"}", "\(counts[$0]!)") }
    }

    private static func format(_ bound: Double) -> String {
        bound == bound.rounded() ? String(Int(bound)) : String(bound)
    }
}
