import Foundation
import Hummingbird
import Idefics
import NIOCore

/// The handlers. Each reads and validates its body here (422 naming the field), loads images off the engine's
/// thread, and hands the model work to the engine; answers and errors are TGI's or OpenAI's JSON.
struct Routes: Sendable {
    let engine: GenerationEngine
    let configuration: ServerConfiguration
    let metrics: ServerMetrics
    var limits: ServerLimits { configuration.limits }
    var pipeline: Pipeline { engine.pipeline }

    func register(on router: Router<BasicRequestContext>) {
        router.get("health") { _, _ in Response(status: .ok) }
        router.get("info") { _, _ in json(info) }
        router.get("metrics") { _, _ in
            Response(status: .ok, headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
                     body: ResponseBody(byteBuffer: ByteBuffer(string: metrics.render(engine: engine.metrics))))
        }
        router.get("v1/models") { _, _ in
            json(["object": "list", "data": [["id": configuration.modelName, "object": "model", "created": 0,
                                               "owned_by": "swift-idefics"]]])
        }
        router.post("generate") { request, _ in await answer { try await generate(request, stream: false) } }
        router.post("generate_stream") { request, _ in await answer { try await generate(request, stream: true) } }
        router.post("/") { request, _ in await answer { try await generate(request, stream: nil) } }
        router.post("tokenize") { request, _ in await answer { try await tokenize(request) } }
        router.post("v1/chat/completions") { request, _ in await answer { try await openAI(request, chat: true) } }
        router.post("v1/completions") { request, _ in await answer { try await openAI(request, chat: false) } }
    }

    private var info: [String: Any] {
        ["model_id": configuration.modelName, "model_sha": NSNull(), "model_pipeline_tag": "image-text-to-text",
         "model_device_type": "cpu", "max_concurrent_requests": limits.maxConcurrentRequests, "max_best_of": limits.maxBestOf,
         "max_stop_sequences": GenerateParameters.maxStopSequences, "max_input_tokens": limits.maxInputTokens,
         "max_total_tokens": limits.maxTotalTokens, "validation_workers": 1, "max_client_batch_size": 1,
         "router": "swift-idefics", "version": IdeficsServer.version, "sha": NSNull(), "docker_label": NSNull()]
    }

    // MARK: - TGI

    /// `stream` nil: the compat route `/`, which streams when the body says `"stream": true` and otherwise answers
    /// a one-element array.
    private func generate(_ request: Request, stream: Bool?) async throws -> Response {
        let body = try await JSONFields.body(collect(request))
        guard let inputs = try body.string("inputs") else { throw ServerError.validation("`inputs` must be a string") }
        guard !inputs.isEmpty else { throw ServerError.validation("`inputs` cannot be empty") }
        var parameters = try GenerateParameters(tgi: body.object("parameters"), limits: limits)
        let streaming = try stream ?? body.bool("stream") ?? false
        if streaming, parameters.decoderInputDetails {
            throw ServerError.validation("`decoder_input_details` == true is not supported when streaming tokens")
        }
        if streaming, parameters.bestOf > 1 { throw ServerError.validation("`best_of` != 1 is not supported when streaming tokens") }
        let (prompt, references) = Self.markdownImages(inputs)
        let images = try await loadImages(references)
        if streaming {
            let events = try submit(prompt: prompt, images: images, parameters: &parameters)
            return sse(tgiEvents(events, parameters: parameters, inputs: inputs))
        }
        // best_of: the runs go side by side, each with a seed of its own; the answer is the one whose tokens have
        // the highest mean log-probability (the first of equals), the others its best_of_sequences, as TGI does.
        var runs: [(events: AsyncThrowingStream<GenerationEngine.Event, Error>, parameters: GenerateParameters)] = []
        for _ in 0..<parameters.bestOf {
            var own = parameters
            runs.append((try submit(prompt: prompt, images: images, parameters: &own), own))
        }
        var answers: [(output: GenerationOutput, parameters: GenerateParameters)] = []
        for run in runs { answers.append((try await collectOutput(run.events), run.parameters)) }
        func meanLogprob(_ output: GenerationOutput) -> Float { output.tokens.map(\.logprob).reduce(0, +) / Float(output.tokens.count) }
        let best = answers.indices.reduce(0) { meanLogprob(answers[$1].output) > meanLogprob(answers[$0].output) ? $1 : $0 }
        func sequence(_ answer: (output: GenerationOutput, parameters: GenerateParameters)) -> [String: Any] {
            let (output, parameters) = answer
            return ["generated_text": (parameters.returnFullText ? inputs : "") + output.text,
                    "finish_reason": output.finishReason.rawValue, "generated_tokens": output.tokens.count,
                    "seed": seed(parameters), "prefill": parameters.decoderInputDetails ? prefillJSON(output) : [Any](),
                    "tokens": output.tokens.map(tokenJSON), "top_tokens": topTokensJSON(output.tokens.map(\.top))]
        }
        var details = sequence(answers[best])
        var answer: [String: Any] = ["generated_text": details.removeValue(forKey: "generated_text")!]
        if parameters.details {
            details["best_of_sequences"] = answers.count == 1 ? NSNull()
                : answers.indices.filter { $0 != best }.map { sequence(answers[$0]) } as Any
            answer["details"] = details
        }
        return json(stream == nil ? [answer] : answer)
    }

    /// TGI's events: one per token, the last carrying the whole text and the details.
    private func tgiEvents(_ events: AsyncThrowingStream<GenerationEngine.Event, Error>, parameters: GenerateParameters,
                           inputs: String) -> AsyncThrowingStream<String, Error> {
        let (lines, continuation) = AsyncThrowingStream.makeStream(of: String.self)
        let task = Task {
            var pending: GeneratedToken?, index = 0
            do {
                for try await event in events {
                    switch event {
                    case .token(let token):
                        if let previous = pending { continuation.yield(tgiChunk(previous, index: index, last: nil)); index += 1 }
                        pending = token
                    case .finished(let output):
                        if let last = pending {
                            continuation.yield(tgiChunk(last, index: index, last: (output, parameters, inputs)))
                        }
                    }
                }
                continuation.finish()
            } catch {
                metrics.streamFailed()
                continuation.yield(Self.encode(ServerError.from(error).json))
                continuation.finish()
            }
        }
        continuation.onTermination = { _ in task.cancel() }
        return lines
    }

    private func tgiChunk(_ token: GeneratedToken, index: Int,
                          last: (output: GenerationOutput, parameters: GenerateParameters, inputs: String)?) -> String {
        var chunk: [String: Any] = ["index": index, "token": tokenJSON(token), "top_tokens": topTokensJSON(token.top),
                                    "generated_text": NSNull(), "details": NSNull()]
        if let last {
            chunk["generated_text"] = (last.parameters.returnFullText ? last.inputs : "") + last.output.text
            chunk["details"] = ["finish_reason": last.output.finishReason.rawValue,
                                "generated_tokens": last.output.tokens.count, "seed": seed(last.parameters),
                                "input_length": last.output.promptTokenIds.count] as [String: Any]
        }
        return Self.encode(chunk)
    }

    private func tokenJSON(_ token: GeneratedToken) -> [String: Any] {
        let special = pipeline.tokenizer.specialTokenIds.contains(token.id)
        return ["id": token.id, "text": special ? pipeline.tokenizer.idToToken(token.id) ?? "" : token.text,
                "logprob": Double(token.logprob), "special": special]
    }

    /// A token out of its context (an alternative, a prompt token): the text it stands for on its own, a leading
    /// space kept (`▁Paris` is " Paris"), a special token's name.
    private func text(of id: Int) -> String {
        String(decoding: pipeline.tokenizer.pieceBytes(id), as: UTF8.self)
    }

    /// TGI's `top_tokens` (a list per generated token, or one list in a stream chunk); null when none were asked.
    private func topTokensJSON(_ top: [TokenLogprob]) -> Any {
        top.isEmpty ? NSNull() : top.map { alternative -> [String: Any] in
            ["id": alternative.id, "text": text(of: alternative.id), "logprob": Double(alternative.logprob),
             "special": pipeline.tokenizer.specialTokenIds.contains(alternative.id)]
        }
    }

    private func topTokensJSON(_ top: [[TokenLogprob]]) -> Any {
        top.allSatisfy(\.isEmpty) ? NSNull() : top.map { topTokensJSON($0) }
    }

    /// TGI's `details.prefill`: every prompt token with its log-probability (null for the first).
    private func prefillJSON(_ output: GenerationOutput) -> [[String: Any]] {
        zip(output.promptTokenIds, output.promptLogprobs).map { id, logprob in
            ["id": id, "text": text(of: id), "logprob": logprob.flatMap { $0.isFinite ? Double($0) : nil } ?? NSNull()]
        }
    }

    private func seed(_ parameters: GenerateParameters) -> Any {
        parameters.sampling ? parameters.request.seed.map { $0 as Any } ?? NSNull() : NSNull()
    }

    /// TGI's /tokenize: `inputs`, `add_special_tokens` (default true) and `parameters.truncate`.
    private func tokenize(_ request: Request) async throws -> Response {
        let body = try await JSONFields.body(collect(request))
        guard let inputs = try body.string("inputs") else { throw ServerError.validation("`inputs` must be a string") }
        let parameters = try GenerateParameters(tgi: body.object("parameters"), limits: limits)
        let answer = try TokenizeAnswer(inputs: inputs, pipeline: pipeline,
                                        addSpecialTokens: try body.bool("add_special_tokens") ?? true,
                                        truncate: parameters.truncate)
        return json(answer.json)
    }

    /// `![](URL)` in TGI's inputs (the model card's form) becomes an `<image>` placeholder taking that image.
    static func markdownImages(_ inputs: String) -> (prompt: String, references: [String]) {
        let bytes = Array(inputs.utf8)
        var prompt = "", references = [String]()
        for (range, image) in markdownChunks(bytes) {
            if image {
                prompt += "<image>"
                references.append(String(decoding: bytes[range.lowerBound + 4..<range.upperBound - 1], as: UTF8.self))
            } else {
                prompt += String(decoding: bytes[range], as: UTF8.self)
            }
        }
        return (prompt, references)
    }

    /// `inputs` cut into text and `![](...)` image references (true), by byte ranges: each `![](` up to the first
    /// `)` after it; one without a `)` stays text.
    static func markdownChunks(_ bytes: [UInt8]) -> [(Range<Int>, Bool)] {
        var chunks = [(Range<Int>, Bool)](), start = 0, i = 0
        let open = Array("![](".utf8)
        while i < bytes.count {
            if bytes[i...].starts(with: open), let close = bytes[(i + open.count)...].firstIndex(of: UInt8(ascii: ")")) {
                if start < i { chunks.append((start..<i, false)) }
                chunks.append((i..<close + 1, true))
                (i, start) = (close + 1, close + 1)
            } else {
                i += 1
            }
        }
        if start < bytes.count { chunks.append((start..<bytes.count, false)) }
        return chunks
    }

    // MARK: - OpenAI

    /// The most choices one OpenAI request may ask for (`n`).
    static let maxChoices = 16

    private func openAI(_ request: Request, chat: Bool) async throws -> Response {
        let body = try await JSONFields.body(collect(request))
        var parameters = GenerateParameters()
        try parameters.setCommon(body, maxTokensKey: body.isPresent("max_completion_tokens") ? "max_completion_tokens" : "max_tokens",
                                 stopKey: "stop")
        let n = try body.int("n") ?? 1
        guard (1...Self.maxChoices).contains(n) else {
            throw ServerError.validation("`n` must be >= 1 and <= \(Self.maxChoices). Given: \(n)")
        }
        let logprobs = try openAILogprobs(body, chat: chat, into: &parameters)
        try parameters.setOpenAIPenalties(body)
        let stream = try body.bool("stream") ?? false
        let includeUsage = try body.object("stream_options")?.bool("include_usage") ?? false
        let prompt: String, images: [RGBImage]
        if chat {
            (prompt, images) = try await chatPrompt(body)
        } else {
            guard let text = try body.strings("prompt"), text.count == 1 else {
                throw ServerError.validation("`prompt` must be a string (or a list of one string)")
            }
            let (raw, references) = Self.markdownImages(text[0])
            (prompt, images) = (raw, try await loadImages(references))
        }
        // Sampled choices run side by side, choice i with the request's seed + i (each reproducible alone); greedy
        // choices are all the same answer, so one run serves them all.
        var runs = [try submit(prompt: prompt, images: images, parameters: &parameters)]
        if parameters.sampling {
            for index in 1..<n {
                var own = parameters
                own.request.seed = parameters.request.seed! &+ UInt64(index)
                runs.append(try submit(prompt: prompt, images: images, parameters: &own))
            }
        }
        /// The choices each run answers.
        let choicesOf = runs.count == 1 ? [Array(0..<n)] : (0..<n).map { [$0] }
        let id = (chat ? "chatcmpl-" : "cmpl-") + UUID().uuidString.lowercased()
        let created = Int(Date().timeIntervalSince1970)
        let object = chat ? "chat.completion" : "text_completion"
        // `offset`: characters of the choice's text before these tokens (the legacy completions' text_offset).
        func choice(_ index: Int, _ text: String?, finish: FinishReason?, delta: Bool, tokens: [GeneratedToken] = [],
                    offset: Int = 0) -> [String: Any] {
            var choice: [String: Any] = ["index": index, "finish_reason": finish.map { $0 == .length ? "length" : "stop" } ?? NSNull()]
            if chat {
                choice["logprobs"] = logprobs ? logprobsJSON(tokens) : NSNull()
                choice[delta ? "delta" : "message"] = delta ? (text.map { ["role": "assistant", "content": $0] } ?? [:])
                    : ["role": "assistant", "content": text ?? ""]
            } else {
                choice["logprobs"] = logprobs ? completionLogprobsJSON(tokens, offset: offset) : NSNull()
                choice["text"] = text ?? ""
            }
            return choice
        }
        func usage(prompt: Int, completion: Int) -> [String: Any] {
            ["prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion]
        }
        let head: [String: Any] = ["id": id, "object": object, "created": created, "model": configuration.modelName,
                                   "system_fingerprint": "swift-idefics-\(IdeficsServer.version)"]
        guard stream else {
            var choices: [[String: Any]] = [], prompt = 0, completion = 0
            for (events, indices) in zip(runs, choicesOf) {
                let output = try await collectOutput(events)
                choices += indices.map { choice($0, output.text, finish: output.finishReason, delta: false, tokens: output.tokens) }
                (prompt, completion) = (output.promptTokenIds.count, completion + indices.count * output.tokens.count)
            }
            return json(head.merging(["choices": choices, "usage": usage(prompt: prompt, completion: completion)]) { a, _ in a })
        }
        var chunkHead = head
        chunkHead["object"] = chat ? "chat.completion.chunk" : "text_completion"
        let (lines, continuation) = AsyncThrowingStream.makeStream(of: String.self)
        let task = Task { [chunkHead, runs] in
            func yield(_ choices: [[String: Any]]) {
                continuation.yield(Self.encode(chunkHead.merging(["choices": choices]) { a, _ in a }))
            }
            do {
                // Each run streams its choices' chunks as its tokens come; then one chunk with the whole usage.
                let (prompt, completion) = try await withThrowingTaskGroup(of: (Int, Int).self) { group in
                    for (events, indices) in zip(runs, choicesOf) {
                        group.addTask {
                            var offset = 0
                            for try await event in events {
                                switch event {
                                case .token(let token):
                                    guard !token.text.isEmpty || logprobs else { continue }
                                    yield(indices.map { choice($0, token.text, finish: nil, delta: true, tokens: [token], offset: offset) })
                                    offset += token.text.unicodeScalars.count
                                case .finished(let output):
                                    yield(indices.map { choice($0, nil, finish: output.finishReason, delta: true) })
                                    return (output.promptTokenIds.count, indices.count * output.tokens.count)
                                }
                            }
                            throw ServerError.generation("generation ended without an answer")
                        }
                    }
                    return try await group.reduce((0, 0)) { ($1.0, $0.1 + $1.1) }
                }
                if includeUsage {
                    continuation.yield(Self.encode(chunkHead.merging(["choices": [], "usage": usage(prompt: prompt, completion: completion)]) { a, _ in a }))
                }
            } catch {
                metrics.streamFailed()
                continuation.yield(Self.encode(ServerError.from(error).json))
            }
            continuation.yield("[DONE]")
            continuation.finish()
        }
        continuation.onTermination = { _ in task.cancel() }
        return sse(lines, space: true)
    }

    /// The most alternatives per token the legacy completions' `logprobs` may ask for (OpenAI's limit).
    static let maxCompletionLogprobs = 5

    /// OpenAI chat's `logprobs` (bool) and `top_logprobs` (0-20, needs `logprobs`), or the legacy completions'
    /// `logprobs` (0-5: the alternatives per token); true when log-probabilities are asked for.
    private func openAILogprobs(_ body: JSONFields, chat: Bool, into parameters: inout GenerateParameters) throws -> Bool {
        guard chat else {
            guard let top = try body.int("logprobs") else { return false }
            let limit = Self.maxCompletionLogprobs
            guard (0...limit).contains(top) else { throw ServerError.validation("`logprobs` must be >= 0 and <= \(limit). Given: \(top)") }
            if top > 0 { parameters.request.topLogprobs = top }
            return true
        }
        let wanted = try body.bool("logprobs") ?? false
        if let top = try body.int("top_logprobs") {
            let limit = GenerationParameters.maxTopLogprobs
            guard (0...limit).contains(top) else { throw ServerError.validation("`top_logprobs` must be >= 0 and <= \(limit). Given: \(top)") }
            guard wanted else { throw ServerError.validation("`top_logprobs` needs `logprobs` set to true") }
            if top > 0 { parameters.request.topLogprobs = top }
        }
        return wanted
    }

    /// The legacy completions' `logprobs`: the generated tokens but the special ones (their texts add up to the
    /// choice's text), each one's log-probability, its alternatives by their own text, and where each token's text
    /// starts in the choice's text (characters, from `offset`).
    private func completionLogprobsJSON(_ tokens: [GeneratedToken], offset: Int) -> [String: Any] {
        let shown = tokens.filter { !pipeline.tokenizer.specialTokenIds.contains($0.id) }
        var offsets: [Int] = [], at = offset
        for token in shown {
            offsets.append(at)
            at += token.text.unicodeScalars.count
        }
        let top = shown.map { token in
            Dictionary(token.top.map { (text(of: $0.id), Double($0.logprob)) }) { first, _ in first }
        }
        return ["tokens": shown.map(\.text), "token_logprobs": shown.map { Double($0.logprob) }, "top_logprobs": top,
                "text_offset": offsets]
    }

    /// OpenAI's `logprobs.content`, one entry per generated token but the special ones (the content has none): its
    /// text as streamed, so that the entries' `bytes` add up to the content exactly (a token that ends inside a
    /// character has none, the next has the character), its log-probability, and its alternatives, each with the
    /// text it stands for on its own (`▁Paris` is " Paris" even where the answer starts "Paris").
    private func logprobsJSON(_ tokens: [GeneratedToken]) -> [String: Any] {
        func entry(_ text: String, _ logprob: Float) -> [String: Any] {
            ["token": text, "logprob": Double(logprob), "bytes": Array(text.utf8).map { Int($0) }]
        }
        let content = tokens.filter { !pipeline.tokenizer.specialTokenIds.contains($0.id) }.map { token in
            entry(token.text, token.logprob).merging(["top_logprobs": token.top.map { entry(text(of: $0.id), $0.logprob) }]) { a, _ in a }
        }
        return ["content": content, "refusal": NSNull()]
    }

    /// OpenAI messages (`content` a string or parts of type text and image_url) rendered by the chat template.
    private func chatPrompt(_ body: JSONFields) async throws -> (String, [RGBImage]) {
        guard let messages = try body.objects("messages"), !messages.isEmpty else {
            throw ServerError.validation("`messages` must be a non-empty list")
        }
        var parsed = [(role: String, parts: [Either])]()
        for message in messages {
            guard let role = try message.string("role"), ["system", "user", "assistant"].contains(role) else {
                throw ServerError.validation("`\(message.name("role"))` must be system, user or assistant")
            }
            if let text = try? message.string("content") {
                parsed.append((role, [.text(text)]))
                continue
            }
            guard let parts = try message.objects("content") else {
                throw ServerError.validation("`\(message.name("content"))` must be a string or a list of parts")
            }
            parsed.append((role, try parts.map { (part) throws(ServerError) -> Either in
                switch try part.string("type") {
                case "text": return .text(try part.string("text") ?? "")
                case "image_url":
                    guard let url = try part.object("image_url")?.string("url") else {
                        throw .validation("`\(part.name("image_url")).url` must be a string")
                    }
                    return .image(url)
                default: throw .validation("`\(part.name("type"))` must be text or image_url")
                }
            }))
        }
        let references = parsed.flatMap { $0.parts.compactMap { if case .image(let url) = $0 { url } else { nil } } }
        var images = try await loadImages(references)[...]
        let rendered = try pipeline.render(parsed.map { message in
            Message(role: message.role, content: message.parts.map {
                switch $0 {
                case .text(let text): .text(text)
                case .image: .image(images.popFirst()!)
                }
            })
        })
        return (rendered.text, rendered.images)
    }

    private enum Either { case text(String), image(String) }

    // MARK: - Shared

    /// Queues the request; the seed of a sampling request without one is drawn here, so that its answer can say it.
    private func submit(prompt: String, images: [RGBImage], parameters: inout GenerateParameters) throws
        -> AsyncThrowingStream<GenerationEngine.Event, Error> {
        if parameters.sampling, parameters.request.seed == nil { parameters.request.seed = UInt64.random(in: 0...UInt64.max) }
        let settled = parameters, limits = limits
        guard let events = engine.submit(images: images, { pipeline, features in
            var prepared = try pipeline.prepare(prompt: prompt, imageFeatures: features)
            var parameters = settled
            if let truncate = parameters.truncate {
                prepared = prepared.keepingLast(truncate, imageTokenId: pipeline.imageTokenId, hidden: pipeline.decoder.config.hiddenSize)
            }
            try parameters.fit(promptTokens: prepared.ids.count, limits: limits)
            return (prepared, parameters.request)
        }) else { throw ServerError.overloaded }
        return events
    }

    private func collectOutput(_ events: AsyncThrowingStream<GenerationEngine.Event, Error>) async throws -> GenerationOutput {
        do {
            for try await event in events {
                if case .finished(let output) = event { return output }
            }
        } catch {
            throw ServerError.from(error)
        }
        throw ServerError.generation("generation ended without an answer")
    }

    private func loadImages(_ references: [String]) async throws -> [RGBImage] {
        guard references.count <= limits.maxImagesPerRequest else {
            throw ServerError.validation("a request may carry at most \(limits.maxImagesPerRequest) images. Given: \(references.count)")
        }
        let policy = configuration.images
        return try await withCheckedThrowingContinuation { continuation in
            DispatchQueue.global().async {
                do {
                    continuation.resume(returning: try references.map { try ImageInput.load(remote: $0, policy: policy) })
                } catch {
                    continuation.resume(throwing: ServerError.validation("\(error)"))
                }
            }
        }
    }

    private func collect(_ request: Request) async throws -> Data {
        do {
            return Data(try await request.body.collect(upTo: limits.maxBodyBytes).readableBytesView)
        } catch is NIOTooManyBytesError {
            throw ServerError.tooLarge(limits.maxBodyBytes)
        }
    }

    private func answer(_ body: () async throws -> Response) async -> Response {
        do { return try await body() } catch { return ServerError.from(error).response() }
    }

    private func json(_ object: Any) -> Response {
        guard let data = Self.data(object) else { return ServerError.generation("the answer could not be written as JSON").response() }
        return Response(status: .ok, headers: [.contentType: "application/json"], body: ResponseBody(byteBuffer: ByteBuffer(bytes: data)))
    }

    static func encode(_ object: Any) -> String {
        String(decoding: data(object) ?? data(ServerError.generation("an event could not be written as JSON").json)!, as: UTF8.self)
    }

    /// JSON text, or nil for what JSON cannot hold (a non-finite number): checked first, since Foundation on some
    /// platforms raises an exception there instead of throwing.
    private static func data(_ object: Any) -> Data? {
        guard JSONSerialization.isValidJSONObject(object) else { return nil }
        return try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes])
    }

    /// Server-sent events: `data:{json}` lines as TGI writes them, `data: {json}` (`space`) as OpenAI does.
    private func sse(_ lines: AsyncThrowingStream<String, Error>, space: Bool = false) -> Response {
        Response(status: .ok, headers: [.contentType: "text/event-stream", .cacheControl: "no-cache"],
                 body: ResponseBody { writer in
                     for try await line in lines {
                         try await writer.write(ByteBuffer(string: (space ? "data: " : "data:") + line + "\n\n"))
                     }
                     try await writer.finish(nil)
                 })
    }
}
