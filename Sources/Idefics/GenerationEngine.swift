import Foundation
import IdeficsGeneration

/// Owns a pipeline and runs all its model work on one thread of its own: the worker pool and the model's scratch
/// memory serve one forward pass at a time, and the server's event loops never wait on the model. Requests are
/// continuously batched: each joins the shared step (one join per step), its prompt prefilled `prefillChunk` tokens
/// per step beside the decoding rows, and leaves when it finishes; every row's tokens are those of its lone run.
/// A new request's images are encoded one piece per step too (a vision layer: `ImageFeatureWork`), through the
/// image cache, so running streams stall for one prefill chunk or one vision layer at a time, never a whole image.
/// At most `capacity` requests are admitted (running or queued: `submit` answers nil past that, HTTP 429), at most
/// `maxBatchSize` decode together. A request whose stream is dropped (its client went away) leaves at its next token.
/// An Idefics v1 pipeline's requests run one at a time, each to its end, in turn (its cross-attention sessions are
/// not batched).
public final class GenerationEngine: @unchecked Sendable {
    /// `.token` events as they are chosen, then `.finished` with the whole output (as `Pipeline.stream` gives).
    public typealias Event = GenerationEvent

    public typealias Preparation = @Sendable (Pipeline) throws -> (PreparedPrompt, GenerationRequest)
    /// The same, given the vectors of the images submitted with it, in order (`Pipeline.imageFeatures`' values).
    public typealias PreparationWithImages = @Sendable (Pipeline, _ imageFeatures: [[Float]]) throws
        -> (PreparedPrompt, GenerationRequest)
    private typealias Continuation = AsyncThrowingStream<Event, Error>.Continuation

    private struct Job {
        let id: Int
        let images: [RGBImage]
        let prepare: PreparationWithImages
        let continuation: Continuation
        let dropped: CancellationFlag
        let submitted = ContinuousClock.now
    }

    public let pipeline: Pipeline
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
    private var largest = 0
    /// After a shutdown began: when the requests still running are cut short.
    private var deadline: ContinuousClock.Instant?

    /// Image vectors by image content, for the request handlers' preparations.
    public let imageCache: ImageFeatureCache
    private var prefixCache: PrefixCache

    /// `prefixCacheTokens`: positions of finished requests kept for prompts that start like them (0: none);
    /// `imageCacheBytes`: image vectors kept by image content.
    public init(pipeline: Pipeline, capacity: Int, maxBatchSize: Int = 32, prefillChunk: Int = 512,
                prefixCacheTokens: Int = 4096, imageCacheBytes: Int = 256 << 20) {
        precondition(capacity > 0 && maxBatchSize > 0 && prefillChunk > 0)
        imageCache = ImageFeatureCache(byteLimit: imageCacheBytes)
        prefixCache = PrefixCache(tokenLimit: prefixCacheTokens)
        self.pipeline = pipeline
        self.capacity = capacity
        self.maxBatchSize = maxBatchSize
        self.prefillChunk = prefillChunk
        let thread = Thread { [self] in run() }
        thread.name = "swift-idefics engine"
        thread.start()
    }

    /// Ends the engine's thread once its admitted requests are done (a stopped engine admits nothing).
    public func stop() {
        condition.withLock {
            stopped = true
            condition.signal()
        }
    }

    /// Shutting down (SIGTERM): nothing new is admitted; the requests running or queued may finish within `grace`,
    /// then each still running ends with what it has generated (finish reason `length`, counted `cancelled`) and
    /// each still queued is refused.
    public func shutDown(grace: Duration) {
        condition.withLock {
            stopped = true
            deadline = min(deadline ?? .now + grace, .now + grace) // a second signal does not extend the first's
            condition.signal()
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
    public func submit(images: [RGBImage], _ prepare: @escaping PreparationWithImages) -> AsyncThrowingStream<Event, Error>? {
        let (stream, continuation) = AsyncThrowingStream.makeStream(of: Event.self)
        let dropped = CancellationFlag()
        let admittedJob = condition.withLock { () -> Bool in
            guard admitted < capacity, !stopped else { return false }
            admitted += 1
            nextID += 1
            waiting.append(Job(id: nextID, images: images, prepare: prepare, continuation: continuation, dropped: dropped))
            metrics.admit(queueSize: waiting.count)
            condition.signal()
            return true
        }
        guard admittedJob else { return nil }
        continuation.onTermination = { _ in dropped.set() }
        return stream
    }

    // MARK: - The engine's thread

    private func run() {
        var batch = ContinuousBatch<StreamingDetokenizer>(prefillChunk: prefillChunk)
        var streams = [Int: Continuation]()
        var awaitingFirstToken = [Int: ContinuousClock.Instant]()
        var dropped = [Int: CancellationFlag]()
        /// The request whose images are being encoded (one at a time, first come first served).
        var encoding: Encoding?
        /// Ends row `id`, out of the batch already, with `error`.
        func fail(_ id: Int, _ error: Error) {
            metrics.finish(reason: "error")
            (awaitingFirstToken[id], dropped[id]) = (nil, nil)
            if let continuation = streams.removeValue(forKey: id) { end(continuation, error: error) }
        }
        /// Adds the job, its images encoded, to the batch.
        func admit(_ job: Job, imageFeatures: [[Float]]) {
            if join(job, imageFeatures: imageFeatures, batch: &batch, streams: &streams) {
                (awaitingFirstToken[job.id], dropped[job.id]) = (job.submitted, job.dropped)
            }
        }
        while true {
            let job: Job? = condition.withLock {
                while waiting.isEmpty && batch.isEmpty && encoding == nil && !stopped { condition.wait() }
                guard encoding == nil, batch.count < maxBatchSize && !waiting.isEmpty else { return nil }
                defer { metrics.dequeue(queueSize: waiting.count) }
                return waiting.removeFirst()
            }
            if job == nil, batch.isEmpty, encoding == nil { return } // stopped, nothing left
            let graceOver = condition.withLock { deadline.map { ContinuousClock.now >= $0 } ?? false }
            if graceOver {
                for id in batch.ids { dropped[id]?.set() } // cut short below, as if their clients had gone
                let late = condition.withLock { () -> [Job] in
                    defer { waiting = []; metrics.dequeue(queueSize: 0) }
                    return waiting
                }
                let encodingJob = encoding?.job
                encoding = nil
                for refused in late + [job, encodingJob].compactMap({ $0 }) {
                    metrics.finish(reason: "cancelled")
                    end(refused.continuation, error: GenerationError.shutDown)
                }
            } else if let job, pipeline.ideficsV1 != nil {
                runAlone(job)
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
                    if try current.job.dropped.isSet || encodePiece(&current) {
                        admit(current.job, imageFeatures: current.done)
                    } else {
                        encoding = current
                    }
                } catch {
                    metrics.finish(reason: "error")
                    end(current.job.continuation, error: error)
                }
            }
            // A client that went away frees its row now, prefilling or decoding.
            for (id, flag) in dropped where flag.isSet {
                dropped[id] = nil
                awaitingFirstToken[id] = nil
                if let output = batch.remove(id: id), let continuation = streams.removeValue(forKey: id) {
                    metrics.finish(reason: "cancelled")
                    end(continuation, with: output)
                }
            }
            keepRetired(&batch)
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
                    if event.finished != nil { dropped[event.id] = nil }
                    if let submitted = awaitingFirstToken.removeValue(forKey: event.id) {
                        metrics.firstToken(after: (ContinuousClock.now - submitted).seconds)
                    }
                    deliver(event, batch: &batch, streams: &streams)
                }
                for failure in batch.takeFailures() { fail(failure.id, failure.error) } // only that row ends
                keepRetired(&batch) // before the next join looks for them
                if batch.isEmpty { metrics.idle() }
            } catch {
                defer { _ = batch.takeRetired() } // rows of a failed step are not kept for reuse
                for id in batch.ids {
                    batch.remove(id: id)
                    fail(id, error)
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
        let images = encoding.job.images
        while encoding.work == nil {
            guard encoding.done.count < images.count else { return true }
            let image = images[encoding.done.count]
            if let cached = imageCache.cached(image) {
                encoding.done.append(cached)
            } else {
                encoding.work = try pipeline.imageFeatureWork(image)
            }
        }
        try pipeline.advance(&encoding.work!)
        if let work = encoding.work, work.isFinished {
            imageCache.keep(work.features, of: images[encoding.done.count])
            encoding.done.append(work.features)
            encoding.work = nil
        }
        return encoding.done.count == images.count
    }

    /// Prepares the job and adds it to the batch (its prefill runs in the next steps); false if it did not join.
    private func join(_ job: Job, imageFeatures: [[Float]], batch: inout ContinuousBatch<StreamingDetokenizer>,
                      streams: inout [Int: Continuation]) -> Bool {
        guard !job.dropped.isSet else {
            metrics.finish(reason: "cancelled")
            end(job.continuation)
            return false
        }
        do {
            let (prepared, request) = try job.prepare(pipeline, imageFeatures)
            let parameters = try GenerationParameters(request: request, config: pipeline.generationConfig,
                                                      defaultSeed: UInt64.random(in: 0...UInt64.max))
            streams[job.id] = job.continuation
            // Prompt log-probabilities need every prompt position computed: a kept state would only be wasted. A
            // sampling request computes its whole prompt too, so that the seed it reports gives the same answer again:
            // logits over a cached prefix differ from a whole prefill's in the last bits, enough to flip a draw.
            let kept = parameters.promptLogprobs || parameters.doSample ? nil
                : prefixCache.take(matching: prepared.ids, imageRows: prepared.imageRows,
                                   imageTokenId: pipeline.imageTokenId,
                                   hidden: pipeline.decoder.config.hiddenSize)
            var session = kept ?? pipeline.makeSession()
            session.imageRows = prepared.imageRows
            let reused: Int
            do {
                reused = try batch.add(id: job.id, session: session, prompt: prepared.ids, parameters: parameters,
                                       text: StreamingDetokenizer(tokenizer: pipeline.tokenizer, skipSpecialTokens: true))
            } catch {
                if let kept { prefixCache.keep(kept) } // refused before it ran: the kept state stays usable
                throw error
            }
            metrics.prefilled(promptTokens: prepared.ids.count, reused: reused)
            return true
        } catch {
            metrics.finish(reason: "error")
            streams.removeValue(forKey: job.id)
            end(job.continuation, error: error)
            return false
        }
    }

    /// Runs an Idefics v1 request to its end (or its client's leaving, or the grace period's end) while the others wait.
    private func runAlone(_ job: Job) {
        guard !job.dropped.isSet else {
            metrics.finish(reason: "cancelled")
            return end(job.continuation)
        }
        do {
            let features = try job.images.map { image in try imageCache.features(of: image) { try pipeline.imageFeatures(image) } }
            let (prepared, request) = try job.prepare(pipeline, features)
            metrics.prefilled(promptTokens: prepared.ids.count, reused: 0)
            var (cut, first) = (false, true)
            let output = try pipeline.generate(prepared, request: request) { token in
                if first { metrics.firstToken(after: (ContinuousClock.now - job.submitted).seconds) }
                first = false
                metrics.generated()
                let graceOver = condition.withLock { deadline.map { ContinuousClock.now >= $0 } ?? false }
                if case .terminated = job.continuation.yield(.token(token)) { cut = true }
                cut = cut || job.dropped.isSet || graceOver
                return !cut
            }
            metrics.finish(reason: cut ? "cancelled" : output.finishReason.rawValue)
            end(job.continuation, with: output)
        } catch {
            metrics.finish(reason: "error")
            end(job.continuation, error: error)
        }
    }

    private func deliver(_ event: ContinuousBatch<StreamingDetokenizer>.Event, batch: inout ContinuousBatch<StreamingDetokenizer>,
                         streams: inout [Int: Continuation]) {
        guard let continuation = streams[event.id] else { return }
        let gone: Bool
        metrics.generated()
        if case .terminated = continuation.yield(.token(event.token)) { gone = true } else { gone = false }
        if let output = event.finished ?? (gone ? batch.remove(id: event.id) : nil) {
            metrics.finish(reason: gone && event.finished == nil ? "cancelled" : output.finishReason.rawValue)
            streams.removeValue(forKey: event.id)
            end(continuation, with: output)
        }
    }

    private func keepRetired(_ batch: inout ContinuousBatch<StreamingDetokenizer>) {
        for session in batch.takeRetired() { prefixCache.keep(session) }
    }

    /// Frees the request's slot, then ends its stream: with its output, with nothing (its client left before it ran)
    /// or with an error. In that order, so that a caller who sees its stream end may submit again at once.
    private func end(_ continuation: Continuation, with output: GenerationOutput? = nil, error: Error? = nil) {
        condition.withLock { admitted -= 1 }
        if let output { continuation.yield(.finished(output)) }
        continuation.finish(throwing: error)
    }
}
