import Foundation
import Idefics

/// What `GET /metrics` adds to the engine's figures (`EngineMetrics`): responses by status and failed streams.
/// Written by the request handlers, read by the scrape: one lock.
final class ServerMetrics: @unchecked Sendable {
    private let lock = NSLock()
    private var responses: [UInt: Int] = [:], streamErrors = 0

    func respond(status: UInt) { lock.withLock { responses[status, default: 0] += 1 } }
    func streamFailed() { lock.withLock { streamErrors += 1 } }

    /// The exposition text: the engine's families, then these.
    func render(engine: EngineMetrics) -> String {
        lock.withLock {
            engine.render()
                + EngineMetrics.family("idefics_http_responses_total", "counter", "HTTP responses, by status code (errors included).",
                                       EngineMetrics.labelled("status", Dictionary(uniqueKeysWithValues: responses.map { ("\($0.key)", $0.value) })))
                + EngineMetrics.family("idefics_stream_errors_total", "counter", "Streams that ended with an error event.",
                                       [("", "", "\(streamErrors)")])
        }
    }
}
