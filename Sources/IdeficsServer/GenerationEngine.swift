import Dispatch
import Foundation
import Idefics

/// Owns a pipeline and runs its work one request at a time on a thread of its own, in arrival order: the model's
/// worker pool and scratch memory serve one forward pass at a time, and the server's event loops never wait on the
/// model. At most `capacity` requests are admitted (running or queued); past that `submit` answers nil (HTTP 429).
/// A request whose stream is dropped (the client went away) stops at its next token and frees its place.
public final class GenerationEngine: @unchecked Sendable {
    public enum Event: Sendable {
        case prepared(PreparedPrompt)
        case token(GeneratedToken)
        case finished(GenerationOutput)
    }

    public let pipeline: Pipeline
    public let capacity: Int
    private let queue = DispatchQueue(label: "swift-idefics.engine")
    private let lock = NSLock()
    private var admitted = 0

    public init(pipeline: Pipeline, capacity: Int) {
        precondition(capacity > 0)
        self.pipeline = pipeline
        self.capacity = capacity
    }

    /// Requests running or waiting.
    public var load: Int { lock.withLock { admitted } }

    /// Queues `prepare` (tokenizing, image decoding and encoding: model work too, so it runs here as well; it may
    /// throw to refuse a prompt past a limit, and it settles the request) followed by generation.
    public func submit(_ prepare: @escaping @Sendable (Pipeline) throws -> (PreparedPrompt, GenerationRequest))
        -> AsyncThrowingStream<Event, Error>? {
        let granted = lock.withLock {
            guard admitted < capacity else { return false }
            admitted += 1
            return true
        }
        guard granted else { return nil }
        let cancelled = CancelFlag()
        let (stream, continuation) = AsyncThrowingStream.makeStream(of: Event.self)
        continuation.onTermination = { _ in cancelled.set() }
        queue.async { [self] in
            defer { lock.withLock { admitted -= 1 } }
            guard !cancelled.isSet else { return continuation.finish() }
            do {
                let (prepared, request) = try prepare(pipeline)
                continuation.yield(.prepared(prepared))
                let output = try pipeline.generate(prepared, request: request) { token in
                    continuation.yield(.token(token))
                    return !cancelled.isSet
                }
                continuation.yield(.finished(output))
                continuation.finish()
            } catch {
                continuation.finish(throwing: error)
            }
        }
        return stream
    }
}

private final class CancelFlag: @unchecked Sendable {
    private let lock = NSLock()
    private var value = false
    func set() { lock.withLock { value = true } }
    var isSet: Bool { lock.withLock { value } }
}
