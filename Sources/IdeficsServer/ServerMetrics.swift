import Foundation

/// What `GET /metrics` reports, in Prometheus' text exposition format (0.0.4): requests, responses by status,
/// tokens, the queue and the decode batch, decode throughput and a histogram of the time to the first token.
/// Written by the engine's thread and the request handlers, read by the scrape: one lock.
public final class ServerMetrics: @unchecked Sendable {
    /// Upper bounds of the time-to-first-token buckets, in seconds (a CPU prefill of an image takes seconds).
    static let firstTokenBounds: [Double] = [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300]

    private let lock = NSLock()
    private var admitted = 0, finished: [String: Int] = [:], responses: [UInt: Int] = [:], streamErrors = 0
    private var promptTokens = 0, reusedTokens = 0, generatedTokens = 0
    private var queueSize = 0, batchSize = 0, decodeRate = 0.0
    private var firstTokenBuckets = [Int](repeating: 0, count: ServerMetrics.firstTokenBounds.count)
    private var firstTokenCount = 0, firstTokenSum = 0.0

    public init() {}

    func admit(queueSize: Int) { lock.withLock { admitted += 1; self.queueSize = queueSize } }
    func dequeue(queueSize: Int) { lock.withLock { self.queueSize = queueSize } }
    func prefilled(promptTokens count: Int, reused: Int) { lock.withLock { (promptTokens, reusedTokens) = (promptTokens + count, reusedTokens + reused) } }
    func generated() { lock.withLock { generatedTokens += 1 } }
    func finish(reason: String) { lock.withLock { finished[reason, default: 0] += 1 } }
    func respond(status: UInt) { lock.withLock { responses[status, default: 0] += 1 } }
    func streamFailed() { lock.withLock { streamErrors += 1 } }

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
            /// One metric family; each sample is (suffix of the name, labels, value).
            func family(_ name: String, _ type: String, _ help: String, _ samples: [(String, String, String)]) {
                out += "# HELP \(name) \(help)\n# TYPE \(name) \(type)\n"
                for (suffix, labels, value) in samples { out += "\(name)\(suffix)\(labels) \(value)\n" }
            }
            func labelled(_ key: String, _ counts: [String: Int]) -> [(String, String, String)] {
                counts.keys.sorted().map { ("", "{\(key)=\"\($0)\"}", "\(counts[$0]!)") }
            }
            family("idefics_requests_admitted_total", "counter", "Generation requests admitted to the engine.",
                   [("", "", "\(admitted)")])
            family("idefics_requests_finished_total", "counter",
                   "Admitted requests ended, by finish reason (length, eos_token, stop_sequence, cancelled, error).",
                   labelled("finish_reason", finished))
            family("idefics_http_responses_total", "counter", "HTTP responses, by status code (errors included).",
                   labelled("status", Dictionary(uniqueKeysWithValues: responses.map { ("\($0.key)", $0.value) })))
            family("idefics_stream_errors_total", "counter", "Streams that ended with an error event.",
                   [("", "", "\(streamErrors)")])
            family("idefics_prompt_tokens_total", "counter", "Prompt tokens of admitted requests.", [("", "", "\(promptTokens)")])
            family("idefics_prompt_tokens_reused_total", "counter",
                   "Prompt tokens whose keys and values came from a finished request's kept state (prefix cache).",
                   [("", "", "\(reusedTokens)")])
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

    private static func format(_ bound: Double) -> String {
        bound == bound.rounded() ? String(Int(bound)) : String(bound)
    }
}
