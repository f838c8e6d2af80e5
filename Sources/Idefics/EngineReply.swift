import Foundation
import IdeficsGeneration

/// Where one engine request's events go: an asynchronous stream, whose consumer may go away, or a caller waiting
/// on its own thread (`GenerationEngine.generate`), whose `onToken` runs on the engine's thread and may stop the
/// request. A caller may bring its own decoding state (a chat's KV cache): the engine takes it at the join and hands
/// it back, extended, before the reply ends.
final class EngineReply: @unchecked Sendable {
    private enum Consumer {
        case stream(AsyncThrowingStream<GenerationEvent, Error>.Continuation)
        case caller((GeneratedToken) -> Bool)
    }

    private var consumer: Consumer
    private let condition = NSCondition()
    private var result: Result<GenerationOutput?, Error>?
    private var session: DecoderSession?
    /// Whether the request brought its own session (which then never goes to the engine's prefix cache).
    let bringsSession: Bool
    /// Set from any thread once nobody wants the request's events (its stream's consumer left).
    let dropped = CancellationFlag()

    init(stream continuation: AsyncThrowingStream<GenerationEvent, Error>.Continuation) {
        consumer = .stream(continuation)
        bringsSession = false
        continuation.onTermination = { [dropped] _ in dropped.set() }
    }

    /// `onToken` must stay valid until `wait` returns (the engine calls it no later).
    init(onToken: @escaping (GeneratedToken) -> Bool, session: DecoderSession? = nil) {
        consumer = .caller(onToken)
        bringsSession = session != nil
        self.session = session
    }

    /// Passes a token on; false when no more are wanted (the stream's consumer left, `onToken` said stop).
    func deliver(_ token: GeneratedToken) -> Bool {
        switch consumer {
        case .stream(let continuation):
            if case .terminated = continuation.yield(.token(token)) { return false }
            return true
        case .caller(let onToken):
            return onToken(token)
        }
    }

    /// The session the request brought, now the engine's (the reply keeps no second reference, which would make the
    /// cache's first append copy it whole).
    func takeSession() -> DecoderSession? {
        condition.withLock {
            defer { session = nil }
            return session
        }
    }

    func giveBack(_ session: DecoderSession) {
        condition.withLock { self.session = session }
    }

    /// Ends the request: with its output, with nothing (it never ran) or with an error.
    func end(with output: GenerationOutput?, error: Error?) {
        switch consumer {
        case .stream(let continuation):
            if let output { continuation.yield(.finished(output)) }
            continuation.finish(throwing: error)
        case .caller:
            consumer = .caller { _ in false } // the caller's closure is not kept past its call
            condition.withLock {
                result = error.map { .failure($0) } ?? .success(output)
                condition.broadcast()
            }
        }
    }

    /// Waits for the end of a caller's request: its output, and the session it brought (nil if its row failed).
    func wait() throws -> (output: GenerationOutput, session: DecoderSession?) {
        condition.lock()
        while result == nil { condition.wait() }
        let (ended, session) = (result!, self.session)
        self.session = nil
        condition.unlock()
        guard let output = try ended.get() else { throw GenerationError.shutDown } // it never ran: shut down
        return (output, session)
    }
}

/// Set once from any thread (a consumer that went away), read from the generating one.
final class CancellationFlag: @unchecked Sendable {
    private let lock = NSLock()
    private var value = false
    func set() { lock.withLock { value = true } }
    var isSet: Bool { lock.withLock { value } }
}
