import Foundation
import IdeficsGeneration
import IdeficsImages

/// Owns a pipeline's execution: all model work runs on one thread of the engine's own (started when a request
/// comes, ended when none is left), so the worker pool and the model's scratch memory serve one forward pass at a
/// time and neither the server's event loops nor a library caller's thread run the model. Requests are continuously
/// batched: each joins the shared step (one join per step), its prompt prefilled `prefillChunk` tokens per step
/// beside the decoding rows, and leaves when it finishes; every row's tokens are those of its lone run.
/// A new request's images are encoded one piece per step too (a vision layer: `ImageFeatureWork`), through the
/// image cache, so running streams stall for one prefill chunk or one vision layer at a time, never a whole image.
/// At most `capacity` requests are admitted (running or queued: `submit` answers nil past that, HTTP 429), at most
/// `maxBatchSize` decode together. A request whose stream is dropped (its client went away) leaves at its next token.
/// An Idefics v1 pipeline's requests are batched the same way (each row with its own images' cross-attention
/// states; no prefix is reused across them). Each `Pipeline` runs its own `generate` and `stream` calls through an
/// engine of its own, without caches (so that an answer never depends on earlier calls); a server makes one with its
/// limits and caches.
public final class GenerationEngine: @unchecked Sendable {
    /// `.token` events as they are chosen, then `.finished` with the whole output (as `Pipeline.stream` gives).
    public typealias Event = GenerationEvent

    public typealias Preparation = @Sendable (Pipeline) throws -> (PreparedPrompt, GenerationRequest)
    /// The same, given the vectors of the images submitted with it, in order (`Pipeline.imageFeatures`' values).
    public typealias PreparationWithImages = @Sendable (Pipeline, _ imageFeatures: [[Float]]) throws
        -> (PreparedPrompt, GenerationRequest)

    private struct Job {
        let id: Int
        let images: [RGBImage]
        let options: Idefics2ImageProcessorOverrides
        let prepare: PreparationWithImages
        let reply: EngineReply
        let submitted = ContinuousClock.now
    }

    /// The pipeline run: held by a server's engine; a pipeline's own engine holds it only while its thread runs
    /// (the pipeline holds the engine).
    private let heldPipeline: Pipeline?
    private weak var ownerPipeline: Pipeline?
    public var pipeline: Pipeline { heldPipeline ?? ownerPipeline! }
    public let capacity: Int
    public let maxBatchSize: Int
    public let prefillChunk: Int
    /// The engine's requests, tokens, queue, batch and times to the first token (a server's `/metrics`).
    public let metrics = EngineMetrics()
    private let condition = NSCondition()
    private var waiting: [Job] = []
    private var admitted = 0
    private var nextID = 0
    private var stopped = false
    /// The engine's thread while it runs.
    private var thread: Thread?
    private var largest = 0
    /// After a shutdown began: when the requests still running are cut short.
    private var deadline: ContinuousClock.Instant?

    /// Image vectors by image content, for the request handlers' preparations.
    public let imageCache: ImageFeatureCache
    fileprivate var prefixCache: PrefixCache

    /// `prefixCacheTokens`: positions of finished requests kept for prompts that start like them (0: none);
    /// `imageCacheBytes`: image vectors kept by image content.
    public convenience init(pipeline: Pipeline, capacity: Int, maxBatchSize: Int = 32, prefillChunk: Int = 512,
                            prefixCacheTokens: Int = 4096, imageCacheBytes: Int = 256 << 20) {
        self.init(held: pipeline, owner: nil, capacity: capacity, maxBatchSize: maxBatchSize, prefillChunk: prefillChunk,
                  prefixCacheTokens: prefixCacheTokens, imageCacheBytes: imageCacheBytes)
    }

    /// A pipeline's own engine: callers wait rather than being refused, and nothing of a call is kept for the next.
    convenience init(servingCallsOf pipeline: Pipeline) {
        self.init(held: nil, owner: pipeline, capacity: .max, maxBatchSize: 32, prefillChunk: 512,
                  prefixCacheTokens: 0, imageCacheBytes: 0)
    }

    private init(held: Pipeline?, owner: Pipeline?, capacity: Int, maxBatchSize: Int, prefillChunk: Int,
                 prefixCacheTokens: Int, imageCacheBytes: Int) {
        precondition(capacity > 0 && maxBatchSize > 0 && prefillChunk > 0)
        imageCache = ImageFeatureCache(byteLimit: imageCacheBytes)
        prefixCache = PrefixCache(tokenLimit: prefixCacheTokens)
        (heldPipeline, ownerPipeline) = (held, owner)
        self.capacity = capacity
        self.maxBatchSize = maxBatchSize
        self.prefillChunk = prefillChunk
    }

    /// Admits nothing more; the requests admitted run to their end.
    public func stop() {
        condition.withLock { stopped = true }
    }

    /// Shutting down (SIGTERM): nothing new is admitted; the requests running or queued may finish within `grace`,
    /// then each still running ends with what it has generated (finish reason `length`, counted `cancelled`) and
    /// each still queued is refused.
    public func shutDown(grace: Duration) {
        condition.withLock {
            stopped = true
            deadline = min(deadline ?? .now + grace, .now + grace) // a second signal does not extend the first's
        }
    }

    /// Requests running or waiting.
    public var load: Int { condition.withLock { admitted } }
    /// The most rows one decode step has run so far.
    public var largestBatch: Int { condition.withLock { largest } }

    /// Queues `prepare` (tokenizing, image encoding: model work, so it runs on the engine's thread; it may throw to
    /// refuse a prompt past a limit, and it settles the request) and then generation.
    public func submit(_ prepare: @escaping Preparation) -> AsyncThrowingStream<Event, Error>? {
        submit(images: []) { pipeline, _ in try prepare(pipeline) }
    }

    /// Queues the encoding of `images` (piece by piece between decode steps, each through the image cache), then
    /// `prepare` with their vectors, then generation.
    public func submit(images: [RGBImage], options: Idefics2ImageProcessorOverrides = .init(),
                       _ prepare: @escaping PreparationWithImages) -> AsyncThrowingStream<Event, Error>? {
        let (stream, continuation) = AsyncThrowingStream.makeStream(of: Event.self)
        return enqueue(images: images, options: options, prepare: prepare, reply: EngineReply(stream: continuation))
            ? stream : nil
    }

    /// Generates after `prepared` as one of the engine's requests, the calling thread waiting for its end. `onToken`
    /// runs on the engine's thread as each token is chosen (returning false stops the request there). With a
    /// `session` (Idefics2 and text-only models), the request runs in it, reusing the cached prefix its prompt
    /// shares, and gets it back extended (a fresh one if the request failed).
    func generate(_ prepared: PreparedPrompt, request: GenerationRequest, session: inout DecoderSession?,
                  onToken: (GeneratedToken) -> Bool) throws -> GenerationOutput {
        if calledFromOwnThread { return try pipeline.generateHere(prepared, request: request, onToken: onToken) }
        return try withoutActuallyEscaping(onToken) { onToken in
            let reply = EngineReply(onToken: onToken, session: session)
            session = nil // the reply's the only reference
            guard enqueue(images: [], options: .init(), prepare: { _, _ in (prepared, request) }, reply: reply) else {
                throw GenerationError.shutDown
            }
            let (output, returned) = try reply.wait()
            session = returned
            return output
        }
    }

    /// Generates after each prompt as requests of their own, side by side; waits for them all. `onToken` gets
    /// (row, token) on the engine's thread; false stops that row.
    func generate(batch: [PreparedPrompt], request: GenerationRequest,
                  onToken: (Int, GeneratedToken) -> Bool) throws -> [GenerationOutput] {
        if calledFromOwnThread {
            return try batch.indices.map { row in
                try pipeline.generateHere(batch[row], request: request) { onToken(row, $0) }
            }
        }
        return try withoutActuallyEscaping(onToken) { onToken in
            let replies = batch.indices.map { row in EngineReply(onToken: { onToken(row, $0) }) }
            for (prepared, reply) in zip(batch, replies) {
                guard enqueue(images: [], options: .init(), prepare: { _, _ in (prepared, request) }, reply: reply) else {
                    throw GenerationError.shutDown // never once one is in: a pipeline's own engine is never stopped
                }
            }
            let results = replies.map { reply in Result { try reply.wait().output } } // every row ends before a throw
            return try results.map { try $0.get() }
        }
    }

    /// Whether this is the engine's thread (an `onToken` that generates again): such a call runs there and then,
    /// as waiting for the engine would wait for itself.
    private var calledFromOwnThread: Bool { condition.withLock { thread } === Thread.current }

    private func enqueue(images: [RGBImage], options: Idefics2ImageProcessorOverrides,
                         prepare: @escaping PreparationWithImages, reply: EngineReply) -> Bool {
        condition.withLock {
            guard admitted < capacity, !stopped, thread != nil || startThread() else { return false }
            admitted += 1
            nextID += 1
            waiting.append(Job(id: nextID, images: images, options: options, prepare: prepare, reply: reply))
            metrics.admit(queueSize: waiting.count)
            return true
        }
    }

    /// Starts the engine's thread (with the lock held); false if the pipeline is gone.
    private func startThread() -> Bool {
        guard let pipeline = heldPipeline ?? ownerPipeline else { return false }
        let thread = Thread { [self] in withExtendedLifetime(pipeline) { run() } }
        thread.name = "swift-idefics engine"
        self.thread = thread
        thread.start()
        return true
    }

    // MARK: - The engine's thread

    private func run() {
        if pipeline.ideficsV1 != nil {
            serve(ContinuousBatch<StreamingDetokenizer, IdeficsSession>(prefillChunk: prefillChunk))
        } else {
            serve(ContinuousBatch<StreamingDetokenizer, DecoderSession>(prefillChunk: prefillChunk))
        }
    }

    private func serve<Session: EngineSession>(_ batch: ContinuousBatch<StreamingDetokenizer, Session>) {
        var batch = batch
        /// The reply of each row in the batch.
        var replies = [Int: EngineReply]()
        var awaitingFirstToken = [Int: ContinuousClock.Instant]()
        /// The request whose images are being encoded (one at a time, first come first served).
        var encoding: Encoding?
        /// Sessions of rows that left go back to the request that brought them (before its reply ends), or to the
        /// prefix cache.
        func retire() {
            for (id, session) in batch.takeRetired() { Session.leave(session, reply: replies[id], keep: true, engine: self) }
        }
        /// Ends row `id`, out of the batch already.
        func close(_ id: Int, output: GenerationOutput? = nil, error: Error? = nil, reason: String) {
            retire()
            metrics.finish(reason: reason)
            awaitingFirstToken[id] = nil
            if let reply = replies.removeValue(forKey: id) { end(reply, with: output, error: error) }
        }
        /// Adds the job, its images encoded, to the batch.
        func admit(_ job: Job, imageFeatures: [[Float]]) {
            if join(job, imageFeatures: imageFeatures, batch: &batch) {
                (replies[job.id], awaitingFirstToken[job.id]) = (job.reply, job.submitted)
            }
        }
        while true {
            let next: Job?? = condition.withLock {
                guard !(waiting.isEmpty && batch.isEmpty && encoding == nil) else {
                    thread = nil // the next request starts another
                    return .none
                }
                guard encoding == nil, batch.count < maxBatchSize && !waiting.isEmpty else { return .some(nil) }
                defer { metrics.dequeue(queueSize: waiting.count) }
                return waiting.removeFirst()
            }
            guard let job = next else { return }
            let graceOver = condition.withLock { deadline.map { ContinuousClock.now >= $0 } ?? false }
            if graceOver {
                for id in batch.ids { replies[id]?.dropped.set() } // cut short below, as if their clients had gone
                let late = condition.withLock { () -> [Job] in
                    defer { waiting = []; metrics.dequeue(queueSize: 0) }
                    return waiting
                }
                let encodingJob = encoding?.job
                encoding = nil
                for refused in late + [job, encodingJob].compactMap({ $0 }) {
                    metrics.finish(reason: "cancelled")
                    end(refused.reply, error: GenerationError.shutDown)
                }
            } else if let job, job.images.isEmpty {
                admit(job, imageFeatures: [])
            } else if let job {
                encoding = Encoding(job: job)
            }
            if var current = encoding {
                encoding = nil
                metrics.imagePiece(besideRows: !batch.isEmpty) // at most one per step: the step below follows it
                do {
                    // A request whose client left joins only to be cancelled at once.
                    if try current.job.reply.dropped.isSet || encodePiece(&current) {
                        admit(current.job, imageFeatures: current.done)
                    } else {
                        encoding = current
                    }
                } catch {
                    metrics.finish(reason: "error")
                    end(current.job.reply, error: error)
                }
            }
            // A client that went away frees its row now, prefilling or decoding.
            for id in batch.ids where replies[id]?.dropped.isSet == true {
                if let output = batch.remove(id: id) { close(id, output: output, reason: "cancelled") }
            }
            retire()
            guard !batch.isEmpty else {
                metrics.idle()
                continue
            }
            condition.withLock { largest = max(largest, batch.count) }
            do {
                let (start, rows) = (ContinuousClock.now, batch.count - max(batch.prefilling - 1, 0))
                let events = try batch.step()
                metrics.step(rows: rows, seconds: (ContinuousClock.now - start).seconds)
                for event in events {
                    if let submitted = awaitingFirstToken.removeValue(forKey: event.id) {
                        metrics.firstToken(after: (ContinuousClock.now - submitted).seconds)
                    }
                    guard let reply = replies[event.id] else { continue }
                    metrics.generated()
                    let wanted = reply.deliver(event.token)
                    if let output = event.finished {
                        close(event.id, output: output, reason: output.finishReason.rawValue)
                    } else if !wanted, let output = batch.remove(id: event.id) {
                        close(event.id, output: output, reason: "cancelled")
                    }
                }
                for failure in batch.takeFailures() { close(failure.id, error: failure.error, reason: "error") } // only that row ends
                retire() // before the next join looks for them
                if batch.isEmpty { metrics.idle() }
            } catch {
                for id in batch.ids {
                    batch.remove(id: id)
                    _ = batch.takeRetired() // rows of a failed step are not kept for reuse
                    close(id, error: error, reason: "error")
                }
            }
        }
    }

    /// A request's images on their way to vectors: those done, and the work on the next one not cached.
    private struct Encoding {
        let job: Job
        var done: [[Float]] = []
        var work: ImageFeatureWork?
    }

    /// Runs the next piece of the request's image encoding (cached images cost none); true once every image is done.
    private func encodePiece(_ encoding: inout Encoding) throws -> Bool {
        let (images, options) = (encoding.job.images, encoding.job.options)
        while encoding.work == nil {
            guard encoding.done.count < images.count else { return true }
            let image = images[encoding.done.count]
            if let cached = imageCache.cached(image, options: options) {
                encoding.done.append(cached)
            } else {
                encoding.work = try pipeline.imageFeatureWork(image, options: options)
            }
        }
        try pipeline.advance(&encoding.work!)
        if let work = encoding.work, work.isFinished {
            imageCache.keep(work.features, of: images[encoding.done.count], options: options)
            encoding.done.append(work.features)
            encoding.work = nil
        }
        return encoding.done.count == images.count
    }

    /// Prepares the job and adds it to the batch (its prefill runs in the next steps); false if it did not join.
    private func join<Session: EngineSession>(_ job: Job, imageFeatures: [[Float]],
                                              batch: inout ContinuousBatch<StreamingDetokenizer, Session>) -> Bool {
        guard !job.reply.dropped.isSet else {
            metrics.finish(reason: "cancelled")
            end(job.reply)
            return false
        }
        do {
            let (prepared, request) = try job.prepare(pipeline, imageFeatures)
            let parameters = try GenerationParameters(request: request, config: pipeline.generationConfig,
                                                      defaultSeed: UInt64.random(in: 0...UInt64.max))
            var session: Session, cached: Bool
            (session, cached) = Session.start(prepared, parameters: parameters, reply: job.reply, engine: self)
            let reused: Int
            do {
                reused = try batch.add(id: job.id, session: &session, prompt: prepared.ids, parameters: parameters,
                                       text: StreamingDetokenizer(tokenizer: pipeline.tokenizer, skipSpecialTokens: true))
            } catch {
                // Refused before it ran: the state is as it was, and stays usable.
                Session.leave(session, reply: job.reply, keep: cached, engine: self)
                throw error
            }
            metrics.prefilled(promptTokens: prepared.ids.count, reused: reused)
            return true
        } catch {
            metrics.finish(reason: "error")
            end(job.reply, error: error)
            return false
        }
    }

    /// Frees the request's slot, then ends its reply: with its output, with nothing (its client left before it ran)
    /// or with an error. In that order, so that a caller who sees its stream end may submit again at once.
    private func end(_ reply: EngineReply, with output: GenerationOutput? = nil, error: Error? = nil) {
        condition.withLock { admitted -= 1 }
        reply.end(with: output, error: error)
    }
}

/// What the engine does with a family's decoding state besides batching it: the state a request starts in, and where
/// the state of a row goes when it leaves.
protocol EngineSession: ContinuousBatchSession {
    /// The state `prepared` runs in, and whether it came from the engine's prefix cache.
    static func start(_ prepared: PreparedPrompt, parameters: GenerationParameters, reply: EngineReply,
                      engine: GenerationEngine) -> (session: Self, cached: Bool)
    /// A row's state after it ran (`keep`), or refused before it ran (`keep` if it came from the prefix cache).
    static func leave(_ session: Self, reply: EngineReply?, keep: Bool, engine: GenerationEngine)
}

extension DecoderSession: EngineSession {
    /// The request's own state, or the kept state sharing the longest prefix with its prompt, or a fresh one. Prompt
    /// log-probabilities need every prompt position computed: a kept state would only be wasted. A sampling request
    /// computes its whole prompt too, so that the seed it reports gives the same answer again: logits over a cached
    /// prefix differ from a whole prefill's in the last bits, enough to flip a draw.
    static func start(_ prepared: PreparedPrompt, parameters: GenerationParameters, reply: EngineReply,
                      engine: GenerationEngine) -> (session: DecoderSession, cached: Bool) {
        var taken = reply.takeSession()
        if !reply.bringsSession && !parameters.promptLogprobs && !parameters.doSample {
            let pipeline = engine.pipeline
            taken = engine.prefixCache.take(matching: prepared.ids, imageRows: prepared.imageRows,
                                            imageTokenId: pipeline.imageTokenId, hidden: pipeline.decoder.config.hiddenSize)
        }
        let cached = taken != nil && !reply.bringsSession
        var session = taken ?? engine.pipeline.makeSession()
        taken = nil // `session` the only reference: its cache grows in place
        session.imageRows = prepared.imageRows
        return (session, cached)
    }

    /// Back to the request that brought it (before its reply ends), or to the prefix cache.
    static func leave(_ session: DecoderSession, reply: EngineReply?, keep: Bool, engine: GenerationEngine) {
        if let reply, reply.bringsSession {
            reply.giveBack(session)
        } else if keep {
            engine.prefixCache.keep(session)
        }
    }
}

extension IdeficsSession: EngineSession {
    /// A fresh state reading the request's images (no prefix is reused: each request has its own images).
    static func start(_ prepared: PreparedPrompt, parameters: GenerationParameters, reply: EngineReply,
                      engine: GenerationEngine) -> (session: IdeficsSession, cached: Bool) {
        (engine.pipeline.makeV1Session(imageStates: prepared.imageStates), false)
    }

    static func leave(_ session: IdeficsSession, reply: EngineReply?, keep: Bool, engine: GenerationEngine) {}
}
