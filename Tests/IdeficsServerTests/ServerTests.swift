import Foundation
import Hummingbird
import HummingbirdTesting
import Idefics
@testable import IdeficsServer
import Logging
import TestSupport
import XCTest

/// The server in process (HummingbirdTesting's router client): TGI's and OpenAI's shapes, its refusals, and the
/// engine's admission and cancellation. The real clients are driven against the binary by Tests/clients.
final class ServerTests: XCTestCase {
    private static let pipeline = Result { try Pipeline(pathOrID: Fixtures.url("models/tiny-f32").path, threads: 2) }

    private func application(capacity: Int = 4, apiKey: String? = nil) throws -> some ApplicationProtocol {
        let engine = GenerationEngine(pipeline: try Self.pipeline.get(), capacity: capacity)
        return IdeficsServer.application(engine: engine, configuration: ServerConfiguration(apiKey: apiKey, modelName: "tiny"),
                                         logger: Logger(label: "test"))
    }

    private func object(_ buffer: ByteBuffer) throws -> [String: Any] {
        try XCTUnwrap(JSONSerialization.jsonObject(with: Data(buffer.readableBytesView)) as? [String: Any])
    }

    func testGenerateAnswersAsTheLibraryDoes() async throws {
        let expected = try Self.pipeline.get().generate(prompt: "The capital of France is",
                                                        request: GenerationRequest(maxNewTokens: 5))
        try await application().test(.router) { client in
            let body = #"{"inputs": "The capital of France is", "parameters": {"max_new_tokens": 5, "details": true}}"#
            try await client.execute(uri: "/generate", method: .post, body: ByteBuffer(string: body)) { response in
                XCTAssertEqual(response.status, .ok)
                let answer = try self.object(response.body)
                XCTAssertEqual(answer["generated_text"] as? String, expected.text)
                let details = try XCTUnwrap(answer["details"] as? [String: Any])
                XCTAssertEqual((details["tokens"] as? [[String: Any]])?.map { $0["id"] as! Int }, expected.generatedTokenIds)
                XCTAssertEqual(details["finish_reason"] as? String, "length")
                XCTAssertTrue(details["seed"] is NSNull)
            }
            try await client.execute(uri: "/generate_stream", method: .post, body: ByteBuffer(string: body)) { response in
                XCTAssertEqual(response.headers[.contentType], "text/event-stream")
                let events = String(buffer: response.body).components(separatedBy: "\n\n").filter { !$0.isEmpty }
                XCTAssertEqual(events.count, 5)
                XCTAssertTrue(events.allSatisfy { $0.hasPrefix("data:{") })
                let last = try self.object(ByteBuffer(string: String(events.last!.dropFirst(5))))
                XCTAssertEqual(last["generated_text"] as? String, expected.text)
            }
        }
    }

    /// TGI's `decoder_input_details` (every prompt token with its log-probability, null for the first),
    /// `top_n_tokens` (the likeliest alternatives of each generated token, as the library reports them) and
    /// `truncate` (the last tokens of the prompt, answered as the library answers those alone); OpenAI's
    /// `logprobs` / `top_logprobs`.
    func testLogprobsAndTruncationAsTheLibraryGivesThem() async throws {
        let pipeline = try Self.pipeline.get()
        let prompt = "The capital of France is"
        let ids = try pipeline.prepare(prompt: prompt, images: []).ids
        var request = GenerationRequest(maxNewTokens: 3)
        request.topLogprobs = 2
        let expected = try pipeline.generate(prompt: prompt, request: request)
        let truncated = try pipeline.generate(PreparedPrompt(ids: Array(ids.suffix(3))), request: GenerationRequest(maxNewTokens: 3))
        try await application().test(.router) { client in
            let body = #"{"inputs": "The capital of France is", "parameters": {"max_new_tokens": 3, "details": true, "#
                + #""decoder_input_details": true, "top_n_tokens": 2}}"#
            try await client.execute(uri: "/generate", method: .post, body: ByteBuffer(string: body)) { response in
                let details = try XCTUnwrap(try self.object(response.body)["details"] as? [String: Any])
                let prefill = try XCTUnwrap(details["prefill"] as? [[String: Any]])
                XCTAssertEqual(prefill.map { $0["id"] as? Int }, ids)
                XCTAssertTrue(prefill.first?["logprob"] is NSNull)
                XCTAssertTrue(prefill.dropFirst().allSatisfy { ($0["logprob"] as? Double).map { $0 <= 0 } == true }, "\(prefill)")
                let top = try XCTUnwrap(details["top_tokens"] as? [[[String: Any]]])
                XCTAssertEqual(top.map { $0.map { $0["id"] as? Int } }, expected.tokens.map { $0.top.map(\.id) })
                for (alternatives, token) in zip(top, expected.tokens) {
                    for (given, wanted) in zip(alternatives, token.top) {
                        XCTAssertEqual(given["logprob"] as? Double ?? 1, Double(wanted.logprob), accuracy: 1e-5)
                    }
                }
            }
            let cut = #"{"inputs": "The capital of France is", "parameters": {"max_new_tokens": 3, "truncate": 3, "details": true}}"#
            try await client.execute(uri: "/generate", method: .post, body: ByteBuffer(string: cut)) { response in
                let details = try XCTUnwrap(try self.object(response.body)["details"] as? [String: Any])
                XCTAssertEqual((details["tokens"] as? [[String: Any]])?.map { $0["id"] as! Int }, truncated.generatedTokenIds)
            }
            try await client.execute(uri: "/generate_stream", method: .post, body: ByteBuffer(string: cut)) { response in
                let last = String(buffer: response.body).components(separatedBy: "\n\n").filter { !$0.isEmpty }.last ?? ""
                let details = try XCTUnwrap(try self.object(ByteBuffer(string: String(last.dropFirst(5))))["details"] as? [String: Any])
                XCTAssertEqual(details["input_length"] as? Int, 3)
            }
            // top_k 1 masks all but one token to -inf: only finite alternatives are listed, and the answer is JSON.
            let masked = #"{"inputs": "Hi", "parameters": {"max_new_tokens": 2, "top_k": 1, "top_n_tokens": 3, "details": true}}"#
            try await client.execute(uri: "/generate", method: .post, body: ByteBuffer(string: masked)) { response in
                XCTAssertEqual(response.status, .ok)
                let details = try XCTUnwrap(try self.object(response.body)["details"] as? [String: Any])
                XCTAssertEqual((details["top_tokens"] as? [[Any]])?.map(\.count), [1, 1])
            }
            let chat = #"{"messages": [{"role": "user", "content": "Hi"}], "max_tokens": 3, "logprobs": true, "top_logprobs": 2}"#
            try await client.execute(uri: "/v1/chat/completions", method: .post, body: ByteBuffer(string: chat)) { response in
                let choice = try XCTUnwrap((try self.object(response.body)["choices"] as? [[String: Any]])?.first)
                let content = try XCTUnwrap((choice["logprobs"] as? [String: Any])?["content"] as? [[String: Any]])
                XCTAssertEqual(content.count, 3)
                XCTAssertEqual(content.map { ($0["top_logprobs"] as? [Any])?.count }, [2, 2, 2])
                XCTAssertEqual(content.map { $0["token"] as? String ?? "" }.joined(),
                               (choice["message"] as? [String: Any])?["content"] as? String)
                for entry in content { // greedy: the chosen token is its likeliest alternative
                    let top = try XCTUnwrap(entry["top_logprobs"] as? [[String: Any]])
                    XCTAssertEqual(top.first?["logprob"] as? Double, entry["logprob"] as? Double)
                }
            }
        }
    }

    /// TGI's /tokenize: the ids the model sees (an image's expanded tokens included, fetched or not), each with its
    /// byte range in `inputs` and that text: the whole `![](...)` for an image's tokens, (0, 0) for BOS.
    /// TGI's `frequency_penalty` and OpenAI's `frequency_penalty` / `presence_penalty` reach generation with their
    /// own conventions (`OccurrencePenalty`): each answer's tokens and log-probabilities are the library's for that
    /// penalty. The tiny model's logits are too far apart for a penalty to change its greedy tokens, but the
    /// log-probabilities (taken after the penalties, as TGI does) differ from the unpenalized ones.
    func testFrequencyAndPresencePenaltiesAnswerAsTheLibraryDoes() async throws {
        let pipeline = try Self.pipeline.get()
        func generated(_ penalty: OccurrencePenalty?) throws -> [GeneratedToken] {
            var request = GenerationRequest(maxNewTokens: 8)
            request.occurrencePenalty = penalty
            return try pipeline.generate(prompt: "The capital of France is", request: request).tokens
        }
        let (plain, tgi, openAI) = try (generated(nil), generated(.tgi(frequency: 2)),
                                        generated(.openAI(frequency: 1.5, presence: 0.5)))
        XCTAssertNotEqual(tgi.map(\.logprob), plain.map(\.logprob))
        XCTAssertNotEqual(openAI.map(\.logprob), plain.map(\.logprob))
        XCTAssertNotEqual(openAI.map(\.logprob), tgi.map(\.logprob))
        /// The (id, logprob) pairs of an answer's tokens.
        @Sendable func pairs(_ tokens: [[String: Any]]?) -> [String] {
            (tokens ?? []).map { "\($0["id"] ?? $0["token"] ?? "?") \(($0["logprob"] as? NSNumber)?.floatValue ?? .nan)" }
        }
        try await application().test(.router) { client in
            let body = #"{"inputs": "The capital of France is", "parameters": {"max_new_tokens": 8, "details": true, "frequency_penalty": 2}}"#
            try await client.execute(uri: "/generate", method: .post, body: ByteBuffer(string: body)) { response in
                XCTAssertEqual(response.status, .ok)
                let details = try self.object(response.body)["details"] as? [String: Any]
                XCTAssertEqual(pairs(details?["tokens"] as? [[String: Any]]), tgi.map { "\($0.id) \($0.logprob)" })
            }
            let chat = #"{"messages": [{"role": "user", "content": "Hi"}], "max_tokens": 8, "logprobs": true, "frequency_penalty": 1.5, "presence_penalty": 0.5}"#
            var request = GenerationRequest(maxNewTokens: 8)
            request.occurrencePenalty = .openAI(frequency: 1.5, presence: 0.5)
            let (text, _) = try pipeline.render([.user(.text("Hi"))])
            let expected = try pipeline.generate(prompt: text, request: request).tokens.filter { !$0.text.isEmpty }
            XCTAssertFalse(expected.isEmpty)
            try await client.execute(uri: "/v1/chat/completions", method: .post, body: ByteBuffer(string: chat)) { response in
                XCTAssertEqual(response.status, .ok)
                let choices = try XCTUnwrap(try self.object(response.body)["choices"] as? [[String: Any]])
                let content = (choices.first?["logprobs"] as? [String: Any])?["content"] as? [[String: Any]]
                XCTAssertEqual(pairs(content), expected.map { "\($0.text) \($0.logprob)" })
            }
            for (uri, body, message) in [
                ("/generate", #"{"inputs": "Hi", "parameters": {"frequency_penalty": 2.5}}"#, "`frequency_penalty` must be >= -2.0 and <= 2.0"),
                ("/v1/completions", #"{"prompt": "Hi", "presence_penalty": -2.5}"#, "`presence_penalty` must be >= -2.0 and <= 2.0"),
            ] {
                try await client.execute(uri: uri, method: .post, body: ByteBuffer(string: body)) { response in
                    XCTAssertEqual(response.status, .unprocessableContent)
                    XCTAssertEqual(try self.object(response.body)["error"] as? String, message)
                }
            }
        }
    }

    /// OpenAI's `n`: greedy choices are the one greedy answer n times; sampled choice i is the lone run with the
    /// request's seed + i, streamed or not; `usage` counts every choice's tokens once and the prompt once.
    func testSeveralChoicesAreTheirLoneRuns() async throws {
        let pipeline = try Self.pipeline.get()
        let (text, _) = try pipeline.render([.user(.text("Hi"))])
        let greedy = try pipeline.generate(prompt: text, request: GenerationRequest(maxNewTokens: 6))
        let sampled = try [7, 8, 9].map { seed in
            try pipeline.generate(prompt: text, request: GenerationRequest(maxNewTokens: 6, temperature: 1.5, seed: UInt64(seed)))
        }
        XCTAssertGreaterThan(Set(sampled.map(\.generatedTokenIds)).count, 1, "the seeds give different answers")
        try await application().test(.router) { client in
            for (extra, expected) in [("", [greedy, greedy, greedy]), (#", "temperature": 1.5, "seed": 7"#, sampled)] {
                let body = #"{"messages": [{"role": "user", "content": "Hi"}], "max_tokens": 6, "n": 3"# + extra + "}"
                try await client.execute(uri: "/v1/chat/completions", method: .post, body: ByteBuffer(string: body)) { response in
                    XCTAssertEqual(response.status, .ok, body)
                    let answer = try self.object(response.body)
                    let choices = try XCTUnwrap(answer["choices"] as? [[String: Any]])
                    XCTAssertEqual(choices.map { $0["index"] as? Int }, [0, 1, 2])
                    XCTAssertEqual(choices.map { ($0["message"] as? [String: Any])?["content"] as? String }, expected.map(\.text), body)
                    let usage = try XCTUnwrap(answer["usage"] as? [String: Any])
                    XCTAssertEqual(usage["prompt_tokens"] as? Int, greedy.promptTokenIds.count)
                    XCTAssertEqual(usage["completion_tokens"] as? Int, expected.map(\.tokens.count).reduce(0, +))
                }
                let streamed = #"{"messages": [{"role": "user", "content": "Hi"}], "max_tokens": 6, "n": 3, "stream": true, "#
                    + #""stream_options": {"include_usage": true}"# + extra + "}"
                try await client.execute(uri: "/v1/chat/completions", method: .post, body: ByteBuffer(string: streamed)) { response in
                    let events = String(buffer: response.body).components(separatedBy: "\n\n").filter { !$0.isEmpty }
                    XCTAssertEqual(events.last, "data: [DONE]")
                    let chunks = try events.dropLast().map { try self.object(ByteBuffer(string: String($0.dropFirst(6)))) }
                    var texts = ["", "", ""], finished = [String?](repeating: nil, count: 3)
                    for chunk in chunks.dropLast() {
                        for choice in try XCTUnwrap(chunk["choices"] as? [[String: Any]]) {
                            let index = try XCTUnwrap(choice["index"] as? Int)
                            texts[index] += (choice["delta"] as? [String: Any])?["content"] as? String ?? ""
                            if let reason = choice["finish_reason"] as? String { finished[index] = reason }
                        }
                    }
                    XCTAssertEqual(texts, expected.map(\.text), streamed)
                    XCTAssertEqual(finished, expected.map { $0.finishReason == .length ? "length" : "stop" })
                    XCTAssertEqual((chunks.last?["choices"] as? [Any])?.count, 0, "the usage chunk has no choices")
                    XCTAssertEqual((chunks.last?["usage"] as? [String: Any])?["completion_tokens"] as? Int,
                                   expected.map(\.tokens.count).reduce(0, +))
                }
            }
            let tooMany = #"{"prompt": "Hi", "n": 17}"#
            try await client.execute(uri: "/v1/completions", method: .post, body: ByteBuffer(string: tooMany)) { response in
                XCTAssertEqual(response.status, .unprocessableContent)
                XCTAssertEqual(try self.object(response.body)["error"] as? String, "`n` must be >= 1 and <= 16. Given: 17")
            }
        }
    }

    /// TGI's `best_of`: sampled runs side by side, each with its own seed; the answer is the run with the highest
    /// mean token log-probability, the other in `best_of_sequences`; each is the library's answer for its seed.
    func testBestOfAnswersWithTheLikeliestOfItsRuns() async throws {
        let pipeline = try Self.pipeline.get()
        try await application().test(.router) { client in
            let body = #"{"inputs": "The capital of France is", "parameters": {"max_new_tokens": 6, "do_sample": true, "temperature": 1.5, "best_of": 2, "details": true}}"#
            try await client.execute(uri: "/generate", method: .post, body: ByteBuffer(string: body)) { response in
                XCTAssertEqual(response.status, .ok)
                let answer = try self.object(response.body)
                let details = try XCTUnwrap(answer["details"] as? [String: Any])
                let others = try XCTUnwrap(details["best_of_sequences"] as? [[String: Any]])
                XCTAssertEqual(others.count, 1)
                var means: [Float] = []
                for (text, sequence) in [(answer["generated_text"] as? String, details), (others[0]["generated_text"] as? String, others[0])] {
                    let seed = try XCTUnwrap((sequence["seed"] as? NSNumber)?.uint64Value)
                    let alone = try pipeline.generate(prompt: "The capital of France is", request: GenerationRequest(
                        maxNewTokens: 6, doSample: true, temperature: 1.5, seed: seed))
                    XCTAssertEqual(text, alone.text, "seed \(seed)")
                    XCTAssertEqual((sequence["tokens"] as? [[String: Any]])?.map { $0["id"] as! Int }, alone.generatedTokenIds)
                    means.append(alone.tokens.map(\.logprob).reduce(0, +) / Float(alone.tokens.count))
                }
                XCTAssertNotEqual(details["seed"] as? NSNumber, others[0]["seed"] as? NSNumber)
                XCTAssertGreaterThanOrEqual(means[0], means[1], "the answer is the likelier run")
            }
        }
    }

    /// TGI's rule for sampling (`sampling = do_sample or has_warpers`): a temperature other than 1 or a top_k samples
    /// even beside `do_sample: false` (its Python client always sends the field), a seed alone does not; the seed is
    /// reported only where it was used.
    func testTGISamplesWhereItsServerWould() async throws {
        let pipeline = try Self.pipeline.get(), prompt = "The capital of France is"
        let greedy = try pipeline.generate(prompt: prompt, request: GenerationRequest(maxNewTokens: 6))
        let warm = try pipeline.generate(prompt: prompt, request: GenerationRequest(
            maxNewTokens: 6, doSample: true, temperature: 1.5, seed: 5))
        let topK = try pipeline.generate(prompt: prompt, request: GenerationRequest(
            maxNewTokens: 6, doSample: true, topK: 3, seed: 5))
        XCTAssertNotEqual(warm.text, greedy.text, "sampling shows")
        let cases: [(String, GenerationOutput, UInt64?)] = [
            (#""do_sample": false, "temperature": 1.5, "seed": 5"#, warm, 5),
            (#""do_sample": true, "temperature": 1.5, "seed": 5"#, warm, 5),
            (#""temperature": 1.5, "seed": 5"#, warm, 5),
            (#""do_sample": false, "top_k": 3, "seed": 5"#, topK, 5),
            (#""do_sample": false, "temperature": 1.0, "seed": 5"#, greedy, nil),
            (#""seed": 5"#, greedy, nil),
        ]
        try await application().test(.router) { client in
            for (fields, expected, seed) in cases {
                let body = #"{"inputs": "The capital of France is", "parameters": {"max_new_tokens": 6, "details": true, "#
                    + fields + "}}"
                try await client.execute(uri: "/generate", method: .post, body: ByteBuffer(string: body)) { response in
                    XCTAssertEqual(response.status, .ok, body)
                    let answer = try self.object(response.body)
                    XCTAssertEqual(answer["generated_text"] as? String, expected.text, body)
                    let details = try XCTUnwrap(answer["details"] as? [String: Any])
                    XCTAssertEqual((details["seed"] as? NSNumber)?.uint64Value, seed, body)
                }
            }
        }
    }

    /// A seed anywhere in 0...2^64-1 is the seed the request samples with and reports: replayed, it gives the same
    /// answer (seeds past 2^53 once went through a Double and came back rounded).
    func testSeedsAreReadExactly() async throws {
        let pipeline = try Self.pipeline.get()
        try await application().test(.router) { client in
            for seed: UInt64 in [7, 1 << 53 + 1, UInt64(Int64.max), 1 << 63 + 5, .max] {
                let alone = try pipeline.generate(prompt: "The capital of France is", request: GenerationRequest(
                    maxNewTokens: 6, temperature: 1.5, seed: seed))
                let body = #"{"inputs": "The capital of France is", "parameters": {"max_new_tokens": 6, "temperature": 1.5, "#
                    + #""details": true, "seed": \#(seed)}}"#
                try await client.execute(uri: "/generate", method: .post, body: ByteBuffer(string: body)) { response in
                    XCTAssertEqual(response.status, .ok, body)
                    let answer = try self.object(response.body)
                    let details = try XCTUnwrap(answer["details"] as? [String: Any])
                    XCTAssertEqual((details["seed"] as? NSNumber)?.uint64Value, seed)
                    XCTAssertEqual(answer["generated_text"] as? String, alone.text, "seed \(seed)")
                }
            }
            for seed in ["5.5", "1e300", "18446744073709551616"] {
                let body = #"{"inputs": "Hi", "parameters": {"seed": \#(seed)}}"#
                try await client.execute(uri: "/generate", method: .post, body: ByteBuffer(string: body)) { response in
                    XCTAssertEqual(response.status, .unprocessableContent, body)
                }
            }
        }
    }

    /// The legacy completions' integer `logprobs`: the answer's tokens (adding up to its text), their
    /// log-probabilities as the library gives them, at most that many alternatives each, and where each starts.
    func testCompletionLogprobsListTheTokensOfTheText() async throws {
        let pipeline = try Self.pipeline.get()
        var request = GenerationRequest(maxNewTokens: 6)
        request.topLogprobs = 2
        let expected = try pipeline.generate(prompt: "The capital of France is", request: request)
        let shown = expected.tokens.filter { !pipeline.tokenizer.specialTokenIds.contains($0.id) }
        XCTAssertFalse(shown.isEmpty)
        try await application().test(.router) { client in
            let body = #"{"prompt": "The capital of France is", "max_tokens": 6, "logprobs": 2}"#
            try await client.execute(uri: "/v1/completions", method: .post, body: ByteBuffer(string: body)) { response in
                XCTAssertEqual(response.status, .ok)
                let choice = try XCTUnwrap((try self.object(response.body)["choices"] as? [[String: Any]])?.first)
                let logprobs = try XCTUnwrap(choice["logprobs"] as? [String: Any])
                let tokens = try XCTUnwrap(logprobs["tokens"] as? [String])
                XCTAssertEqual(tokens.joined(), choice["text"] as? String)
                XCTAssertEqual(tokens, shown.map(\.text))
                XCTAssertEqual((logprobs["token_logprobs"] as? [NSNumber])?.map(\.floatValue), shown.map(\.logprob))
                let top = try XCTUnwrap(logprobs["top_logprobs"] as? [[String: NSNumber]])
                XCTAssertEqual(top.map { Set($0.values.map(\.floatValue)) }, shown.map { Set($0.top.map(\.logprob)) })
                XCTAssertTrue(top.allSatisfy { $0.count <= 2 })
                let starts = tokens.reduce(into: [0]) { $0.append($0.last! + $1.unicodeScalars.count) }.dropLast()
                XCTAssertEqual(logprobs["text_offset"] as? [Int], Array(starts))
            }
            try await client.execute(uri: "/v1/completions", method: .post,
                                     body: ByteBuffer(string: #"{"prompt": "Hi", "logprobs": 6}"#)) { response in
                XCTAssertEqual(response.status, .unprocessableContent)
                XCTAssertEqual(try self.object(response.body)["error"] as? String, "`logprobs` must be >= 0 and <= 5. Given: 6")
            }
        }
    }

    func testTokenizeGivesIdsWithTheirPlaceInTheInputs() async throws {
        let pipeline = try Self.pipeline.get()
        let idefics2 = try XCTUnwrap(pipeline.idefics2)
        let image = "![](https://example.com/cat.png)"
        let inputs = "User:" + image + "What is this?"
        let expanded = try Idefics2Prompt.expand("User:<image>What is this?", imageCount: 1,
                                                 imageSequenceLength: idefics2.imageSequenceLength,
                                                 splitImages: try XCTUnwrap(pipeline.imageProcessor).config.doImageSplitting)
        let ids = pipeline.tokenizer.encode(expanded)
        try await application().test(.router) { client in
            let body = #"{"inputs": "Hello world"}"#
            try await client.execute(uri: "/tokenize", method: .post, body: ByteBuffer(string: body)) { response in
                let tokens = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(response.body.readableBytesView)) as? [[String: Any]])
                XCTAssertEqual(tokens.map { $0["id"] as? Int }, pipeline.tokenizer.encode("Hello world"))
                XCTAssertEqual(tokens.map { $0["text"] as? String }, ["", "Hello", " world"])
                XCTAssertEqual(tokens.map { [$0["start"] as? Int, $0["stop"] as? Int] }, [[0, 0], [0, 5], [5, 11]])
            }
            let withImage = try String(decoding: JSONSerialization.data(withJSONObject: ["inputs": inputs]), as: UTF8.self)
            try await client.execute(uri: "/tokenize", method: .post, body: ByteBuffer(string: withImage)) { response in
                let tokens = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(response.body.readableBytesView)) as? [[String: Any]])
                XCTAssertEqual(tokens.map { $0["id"] as? Int }, ids)
                let imageTokens = tokens.filter { $0["id"] as? Int == idefics2.config.imageTokenId }
                XCTAssertFalse(imageTokens.isEmpty)
                XCTAssertTrue(imageTokens.allSatisfy { $0["text"] as? String == image && $0["start"] as? Int == 5 }, "\(imageTokens.first!)")
                XCTAssertEqual(tokens.last?["text"] as? String, "?")
                XCTAssertEqual(tokens.map { $0["text"] as? String ?? "" }.filter { $0 != image }.joined(), "User:What is this?")
            }
            let cut = #"{"inputs": "Hello world", "add_special_tokens": false, "parameters": {"truncate": 1}}"#
            try await client.execute(uri: "/tokenize", method: .post, body: ByteBuffer(string: cut)) { response in
                let tokens = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(response.body.readableBytesView)) as? [[String: Any]])
                XCTAssertEqual(tokens.map { $0["text"] as? String }, [" world"])
            }
        }
    }

    func testRefusalsNameTheField() async throws {
        try await application().test(.router) { client in
            let cases: [(String, HTTPResponse.Status, String)] = [
                (#"{"inputs": "Hi", "parameters": {"top_k": 0}}"#, .unprocessableContent, "`top_k` must be strictly positive"),
                (#"{"inputs": "Hi", "parameters": {"typical_p": 1}}"#, .unprocessableContent, "`typical_p` must be > 0.0 and < 1.0"),
                (#"{"inputs": "Hi", "parameters": {"best_of": 2}}"#, .unprocessableContent, "you must use sampling when `best_of` is > 1"),
                (#"{"inputs": "Hi", "parameters": {"best_of": 3, "do_sample": true}}"#, .unprocessableContent,
                 "`best_of` must be > 0 and <= 2. Given: 3"),
                (#"{"inputs": "Hi", "parameters": {"best_of": 2, "do_sample": true, "seed": 1}}"#, .unprocessableContent,
                 "`seed` must not be set when `best_of` > 1"),
                (#"{"inputs": "Hi", "parameters": {"top_n_tokens": 6}}"#, .unprocessableContent,
                 "`top_n_tokens` must be >= 0 and <= 5. Given: 6"),
                (#"{"inputs": "Hi", "parameters": {"seed": -1}}"#, .unprocessableContent, "`parameters.seed` must be an integer in 0...2^64-1"),
                (#"{"inputs": "Hi", "parameters": {"details": "yes"}}"#, .unprocessableContent, "`parameters.details` must be true or false"),
                (#"{"inputs": "Hi", "parameters": []}"#, .unprocessableContent, "`parameters` must be an object"),
                (#"["Hi"]"#, .unprocessableContent, "the request body is not a JSON object"),
                (#"{"inputs": "Hi", "parameters": {"truncate": 0}}"#, .unprocessableContent,
                 "`truncate` must be strictly positive and less than 4095. Given: 0"),
                (#"{"inputs": "Hi", "parameters": {"truncate": 4096}}"#, .unprocessableContent,
                 "`truncate` must be strictly positive and less than 4095. Given: 4096"),
            ]
            for (body, status, message) in cases {
                try await client.execute(uri: "/generate", method: .post, body: ByteBuffer(string: body)) { response in
                    XCTAssertEqual(response.status, status, body)
                    let answer = try self.object(response.body)
                    XCTAssertEqual(answer["error_type"] as? String, "validation")
                    XCTAssertTrue((answer["error"] as? String ?? "").contains(message), "\(body): \(answer)")
                }
            }
            for (parameters, message) in [(#"{"decoder_input_details": true}"#, "`decoder_input_details` == true is not supported when streaming tokens"),
                                           (#"{"best_of": 2, "do_sample": true}"#, "`best_of` != 1 is not supported when streaming tokens")] {
                let stream = #"{"inputs": "Hi", "parameters": "# + parameters + "}"
                try await client.execute(uri: "/generate_stream", method: .post, body: ByteBuffer(string: stream)) { response in
                    XCTAssertEqual(response.status, .unprocessableContent)
                    XCTAssertEqual(try self.object(response.body)["error"] as? String, message)
                }
            }
            for (body, message) in [(#"{"messages": [{"role": "user", "content": "Hi"}], "top_logprobs": 2}"#,
                                     "`top_logprobs` needs `logprobs` set to true"),
                                    (#"{"messages": [{"role": "user", "content": "Hi"}], "logprobs": true, "top_logprobs": 21}"#,
                                     "`top_logprobs` must be >= 0 and <= 20. Given: 21")] {
                try await client.execute(uri: "/v1/chat/completions", method: .post, body: ByteBuffer(string: body)) { response in
                    XCTAssertEqual(response.status, .unprocessableContent)
                    XCTAssertEqual(try self.object(response.body)["error"] as? String, message)
                }
            }
            let chat = #"{"messages": [{"role": "robot", "content": "Hi"}]}"#
            try await client.execute(uri: "/v1/chat/completions", method: .post, body: ByteBuffer(string: chat)) { response in
                XCTAssertEqual(response.status, .unprocessableContent)
                XCTAssertEqual(try self.object(response.body)["error"] as? String, "`messages[0].role` must be system, user or assistant")
            }
        }
    }

    func testAPIKeyGuardsEverythingButHealth() async throws {
        try await application(apiKey: "sesame").test(.router) { client in
            try await client.execute(uri: "/health", method: .get) { XCTAssertEqual($0.status, .ok) }
            try await client.execute(uri: "/info", method: .get) { XCTAssertEqual($0.status, .unauthorized) }
            try await client.execute(uri: "/info", method: .get, headers: [.authorization: "Bearer sesamE"]) {
                XCTAssertEqual($0.status, .unauthorized)
            }
            try await client.execute(uri: "/info", method: .get, headers: [.authorization: "Bearer sesame"]) {
                XCTAssertEqual($0.status, .ok)
                XCTAssertEqual(try self.object($0.body)["model_id"] as? String, "tiny")
            }
        }
    }

    func testMarkdownImagesBecomePlaceholders() {
        let (prompt, references) = Routes.markdownImages("User:![](https://a/b.png)What? ![](data:x)Next![ ]( no")
        XCTAssertEqual(prompt, "User:<image>What? <image>Next![ ]( no")
        XCTAssertEqual(references, ["https://a/b.png", "data:x"])
    }

    /// Admission is bounded: with one place taken the next request is refused (429), and the place is free by the
    /// time the first's stream has ended (a caller may submit again at once: `Evaluation` relies on it).
    func testEngineRefusesPastItsCapacity() async throws {
        let engine = GenerationEngine(pipeline: try Self.pipeline.get(), capacity: 1)
        defer { engine.stop() }
        let gate = DispatchSemaphore(value: 0)
        let first = try XCTUnwrap(engine.submit { pipeline in
            gate.wait()
            return (try pipeline.prepare(prompt: "Hi", images: []), GenerationRequest(maxNewTokens: 2))
        })
        XCTAssertNil(engine.submit { pipeline in (try pipeline.prepare(prompt: "Hi", images: []), GenerationRequest()) })
        gate.signal()
        var tokens = 0
        for try await event in first { if case .token = event { tokens += 1 } }
        XCTAssertEqual(tokens, 2)
        for turn in 0..<20 {
            XCTAssertEqual(engine.load, 0, "turn \(turn)")
            let next = try XCTUnwrap(engine.submit { pipeline in
                (try pipeline.prepare(prompt: "Hi", images: []), GenerationRequest(maxNewTokens: 1))
            }, "turn \(turn)")
            for try await _ in next {}
        }
    }

    /// A client that goes away stops its generation at the next token: a request for 30,000 tokens frees its place
    /// within seconds of its stream being dropped.
    func testDroppedStreamStopsItsGeneration() async throws {
        let engine = GenerationEngine(pipeline: try Self.pipeline.get(), capacity: 1)
        defer { engine.stop() }
        let events = try XCTUnwrap(engine.submit { pipeline in
            (try pipeline.prepare(prompt: "Hi", images: []), GenerationRequest(maxNewTokens: 30_000, eosTokenIds: []))
        })
        // As the server's handlers do: the task reading the stream is cancelled (its client's connection closed).
        let reader = Task {
            var seen = 0
            for try await event in events {
                if case .token = event { seen += 1 }
                if seen == 3 { withUnsafeCurrentTask { $0?.cancel() } }
            }
            return seen
        }
        let seen = try await reader.value
        XCTAssertLessThan(seen, 10)
        for _ in 0..<500 where engine.load > 0 { try await Task.sleep(for: .milliseconds(10)) }
        XCTAssertEqual(engine.load, 0)
    }

    /// Continuous batching: requests submitted together (different prompts and lengths, so that rows leave at different
    /// steps and the later ones join a running batch) each get exactly the tokens of their lone run.
    /// Also with prompts prefilled 2 tokens per step beside the decoding rows (chunked prefill).
    func testBatchedRequestsGetTheirLoneRunsTokens() async throws {
        let pipeline = try Self.pipeline.get()
        let prompts = ["The capital of France is", "Once upon a time", "1, 2, 3, 4, 5,", "Hello", "A rainbow has"]
        let lengths = [12, 5, 9, 15, 7]
        let expected = try zip(prompts, lengths).map {
            try pipeline.generate(prompt: $0, request: GenerationRequest(maxNewTokens: $1, eosTokenIds: [])).generatedTokenIds
        }
        for chunk in [512, 2] {
            let engine = GenerationEngine(pipeline: pipeline, capacity: 8, maxBatchSize: 4, prefillChunk: chunk)
            defer { engine.stop() }
            let streams = try zip(prompts, lengths).map { prompt, length in
                try XCTUnwrap(engine.submit { pipeline in
                    (try pipeline.prepare(prompt: prompt, images: []), GenerationRequest(maxNewTokens: length, eosTokenIds: []))
                })
            }
            for (index, stream) in streams.enumerated() {
                var tokens = [Int](), output: GenerationOutput?
                for try await event in stream {
                    switch event {
                    case .token(let token): tokens.append(token.id)
                    case .finished(let finished): output = finished
                    }
                }
                XCTAssertEqual(tokens, expected[index], "\(prompts[index]), chunk \(chunk)")
                XCTAssertEqual(output?.generatedTokenIds, expected[index])
            }
            XCTAssertEqual(engine.largestBatch, 4) // the fifth waited for a place
        }
    }

    /// SIGTERM's grace period over: the running request ends with what it generated, the queued one is refused,
    /// nothing new is admitted, and the engine's load goes back to 0.
    func testShutdownCutsRunningRequestsShortAndRefusesQueuedOnes() async throws {
        let pipeline = try Self.pipeline.get()
        let engine = GenerationEngine(pipeline: pipeline, capacity: 4, maxBatchSize: 1)
        let streams = try (0..<2).map { _ in
            try XCTUnwrap(engine.submit { pipeline in
                (try pipeline.prepare(prompt: "Once upon a time", images: []), GenerationRequest(maxNewTokens: 3000, eosTokenIds: []))
            })
        }
        var iterator = streams[0].makeAsyncIterator()
        _ = try await iterator.next() // running
        engine.shutDown(grace: .zero)
        XCTAssertNil(engine.submit { _ in throw CancellationError() })
        var output: GenerationOutput?
        while let event = try await iterator.next() { if case .finished(let finished) = event { output = finished } }
        XCTAssertLessThan(try XCTUnwrap(output).tokens.count, 3000)
        do {
            for try await _ in streams[1] {}
            XCTFail("the queued request ran")
        } catch {
            XCTAssertTrue("\(error)".contains("the engine shut down before this request ran"), "\(error)")
        }
        for _ in 0..<500 where engine.load > 0 { try await Task.sleep(for: .milliseconds(10)) }
        XCTAssertEqual(engine.load, 0)
    }

    func testPrivateImageHostsAreRefused() {
        for url in ["http://127.0.0.1/a.png", "http://10.1.2.3/a.png", "http://[::1]/a.png", "http://169.254.169.254/latest"] {
            XCTAssertTrue(errorText { try ImageInput.load(remote: url, policy: .init()) }.contains("this server fetches only public addresses"), url)
        }
        XCTAssertTrue(errorText { try ImageInput.load(remote: "/etc/passwd", policy: .init()) }.contains("give an http(s) URL or a data: URI"))
        XCTAssertTrue(errorText { try ImageInput.load(remote: "https://example.com/a.png", policy: .init(fetchURLs: false)) }
            .contains("does not fetch image URLs"))
    }

    /// `/metrics` in Prometheus' text format: every sample line belongs to a family declared by `# TYPE`, counters
    /// count what was served (tokens, finishes, statuses), the histogram's buckets are cumulative.
    func testMetricsCountWhatWasServed() async throws {
        try await application().test(.router) { client in
            for tokens in [3, 4] {
                let body = #"{"inputs": "Hello there", "parameters": {"max_new_tokens": \#(tokens)}}"#
                try await client.execute(uri: "/generate", method: .post, body: ByteBuffer(string: body)) { response in
                    XCTAssertEqual(response.status, .ok)
                }
            }
            let refused = #"{"inputs": "Hi", "parameters": {"top_k": 0}}"#
            try await client.execute(uri: "/generate", method: .post, body: ByteBuffer(string: refused)) { response in
                XCTAssertEqual(response.status, .unprocessableContent)
            }
            // Admitted, then refused while the engine prepares it (the prompt's <image> has no image).
            let mismatch = #"{"inputs": "<image>Hi", "parameters": {"max_new_tokens": 2}}"#
            try await client.execute(uri: "/generate", method: .post, body: ByteBuffer(string: mismatch)) { response in
                XCTAssertEqual(response.status, .unprocessableContent)
            }
            try await client.execute(uri: "/metrics", method: .get) { response in
                XCTAssertEqual(response.status, .ok)
                XCTAssertEqual(response.headers[.contentType], "text/plain; version=0.0.4; charset=utf-8")
                let text = String(buffer: response.body)
                var families = Set<String>(), samples = [String: Double]()
                for line in text.split(separator: "\n") {
                    if line.hasPrefix("# TYPE ") {
                        families.insert(String(line.split(separator: " ")[2]))
                    } else if !line.hasPrefix("#") {
                        let parts = line.split(separator: " ")
                        XCTAssertEqual(parts.count, 2, String(line))
                        let name = String(parts[0].prefix { $0 != "{" })
                        let family = ["_bucket", "_sum", "_count"].reduce(name) { n, suffix in
                            n.hasSuffix(suffix) && families.contains(String(n.dropLast(suffix.count))) ? String(n.dropLast(suffix.count)) : n
                        }
                        XCTAssertTrue(families.contains(family), "\(line): no # TYPE for \(family)")
                        samples[String(parts[0])] = try XCTUnwrap(Double(parts[1]), String(line))
                    }
                }
                XCTAssertEqual(samples["idefics_requests_admitted_total"], 3)
                XCTAssertEqual(samples["idefics_requests_finished_total{finish_reason=\"error\"}"], 1)
                XCTAssertEqual(samples["idefics_generated_tokens_total"], 7)
                XCTAssertEqual(samples["idefics_requests_finished_total{finish_reason=\"length\"}"], 2)
                XCTAssertEqual(samples["idefics_http_responses_total{status=\"200\"}"], 2)
                XCTAssertEqual(samples["idefics_http_responses_total{status=\"422\"}"], 2)
                XCTAssertEqual(samples["idefics_queue_size"], 0)
                XCTAssertEqual(samples["idefics_time_to_first_token_seconds_count"], 2)
                XCTAssertEqual(samples["idefics_time_to_first_token_seconds_bucket{le=\"+Inf\"}"], 2)
                let buckets = EngineMetrics.firstTokenBounds.map { bound in
                    samples["idefics_time_to_first_token_seconds_bucket{le=\"\(bound == bound.rounded() ? String(Int(bound)) : String(bound))\"}"]!
                }
                XCTAssertEqual(buckets, buckets.sorted(), "cumulative buckets")
                XCTAssertGreaterThan(samples["idefics_prompt_tokens_total"] ?? 0, 2)
            }
        }
    }

    /// Runs one request through the engine as the handlers do (image vectors through the engine's cache).
    private func run(_ engine: GenerationEngine, _ prompt: String, images: [RGBImage] = [], tokens: Int) async throws
        -> GenerationOutput {
        let events = try XCTUnwrap(engine.submit(images: images) { pipeline, features in
            return (try pipeline.prepare(prompt: prompt, imageFeatures: features),
                    GenerationRequest(maxNewTokens: tokens, eosTokenIds: []))
        })
        for try await event in events { if case .finished(let output) = event { return output } }
        throw ServerError.generation("no output")
    }

    /// The next turn of a conversation reuses the finished turn's keys and values (prefix cache), a repeated image
    /// its vectors (image cache); a prompt with the same tokens but another image reuses nothing past that image.
    /// Every answer equals its lone run.
    func testFollowUpsReuseKeptStatesAndImagesOnlyWhereTheyAgree() async throws {
        let pipeline = try Self.pipeline.get()
        let engine = GenerationEngine(pipeline: pipeline, capacity: 4)
        defer { engine.stop() }
        let coffee = try ImageInput.load(Fixtures.url("vision/images/coffee_70x70.png").path)
        let chelsea = try ImageInput.load(Fixtures.url("vision/images/chelsea_40x60.png").path)
        func lone(_ prompt: String, _ images: [RGBImage], _ tokens: Int) throws -> [Int] {
            try pipeline.generate(pipeline.prepare(prompt: prompt, images: images),
                                  request: GenerationRequest(maxNewTokens: tokens, eosTokenIds: [])).generatedTokenIds
        }
        let first = try await run(engine, "<image>What is this?", images: [coffee], tokens: 4)
        XCTAssertEqual(first.timings.reusedPromptTokens, 0)
        XCTAssertEqual(first.generatedTokenIds, try lone("<image>What is this?", [coffee], 4))
        // The follow-up: the first turn, its answer, a new question.
        let followUp = "<image>What is this?" + first.text + " And its colour?"
        let second = try await run(engine, followUp, images: [coffee], tokens: 4)
        let firstLength = first.promptTokenIds.count
        XCTAssertGreaterThanOrEqual(second.timings.reusedPromptTokens, firstLength)
        XCTAssertEqual(second.generatedTokenIds, try lone(followUp, [coffee], 4))
        XCTAssertEqual(engine.imageCache.hits, 1)
        // Same tokens, another image: only the tokens before the image are reused.
        let other = try await run(engine, "<image>What is this?", images: [chelsea], tokens: 4)
        XCTAssertEqual(other.promptTokenIds, first.promptTokenIds)
        XCTAssertEqual(other.timings.reusedPromptTokens, 2) // <s><fake_token_around_image>
        XCTAssertEqual(other.generatedTokenIds, try lone("<image>What is this?", [chelsea], 4))
    }

    /// A new request's image is encoded one piece per step (patch embedding, each vision layer, connector) while a
    /// stream decodes: every piece runs beside the decoding row (`busy` in /metrics), none stalls it for the whole
    /// image, and both answers equal their lone runs.
    func testImagesAreEncodedPieceByPieceBesideRunningStreams() async throws {
        let pipeline = try Self.pipeline.get()
        let engine = GenerationEngine(pipeline: pipeline, capacity: 4)
        defer { engine.stop() }
        let coffee = try ImageInput.load(Fixtures.url("vision/images/coffee_70x70.png").path)
        let story = GenerationRequest(maxNewTokens: 100, eosTokenIds: [])
        let long = try XCTUnwrap(engine.submit { pipeline in (try pipeline.prepare(prompt: "Once upon a time", images: []), story) })
        var iterator = long.makeAsyncIterator()
        var tokens = [Int]()
        if case .token(let token) = try await iterator.next() { tokens.append(token.id) } // decoding now
        let image = try await run(engine, "<image>What is this?", images: [coffee], tokens: 3)
        while let event = try await iterator.next() { if case .token(let token) = event { tokens.append(token.id) } }
        XCTAssertEqual(tokens, try pipeline.generate(prompt: "Once upon a time", request: story).generatedTokenIds)
        XCTAssertEqual(image.generatedTokenIds, try pipeline.generate(
            pipeline.prepare(prompt: "<image>What is this?", images: [coffee]),
            request: GenerationRequest(maxNewTokens: 3, eosTokenIds: [])).generatedTokenIds)
        let pieces = pipeline.idefics2!.config.vision.layerCount + 2 // one processed image: no splitting here
        let metrics = engine.metrics.render()
        XCTAssertTrue(metrics.contains("idefics_image_encoding_pieces_total{batch=\"busy\"} \(pieces)\n"), metrics)
        XCTAssertTrue(metrics.contains("idefics_image_encoding_pieces_total{batch=\"idle\"} 0\n"), metrics)
    }

    /// An Idefics v1 pipeline's requests are batched continuously like Idefics2's, each row reading its own images
    /// (one, none, two, two in another order): submitted together, each answer is its lone run's (which the v1
    /// parity tests hold to transformers'); over HTTP too.
    func testIdeficsV1RequestsAreBatchedWithTheirLoneAnswers() async throws {
        let pipeline = try Pipeline(pathOrID: Fixtures.url("models/tiny-idefics-perceiver").path, threads: 2)
        let coffee = try ImageInput.load(Fixtures.url("vision/images/coffee_70x70.png").path)
        let chelsea = try ImageInput.load(Fixtures.url("vision/images/chelsea_40x60.png").path)
        let cases: [(String, [RGBImage], Int)] = [("<image>What is this?", [coffee], 10), ("Hello", [], 12),
                                                  ("<image>And this?<image>", [coffee, chelsea], 8),
                                                  ("A cat:<image>and a cup:<image>. Which is warmer?", [chelsea, coffee], 9)]
        let lone = try cases.map { prompt, images, tokens in
            try pipeline.generate(pipeline.prepare(prompt: prompt, images: images),
                                  request: GenerationRequest(maxNewTokens: tokens, eosTokenIds: []))
        }
        // Whole prompts, and prompts prefilled 3 tokens per step (each chunk's tokens seeing their planned images).
        for chunk in [512, 3] {
            let engine = GenerationEngine(pipeline: pipeline, capacity: 4, prefillChunk: chunk)
            defer { engine.stop() }
            let answers = try await withThrowingTaskGroup(of: (Int, GenerationOutput).self) { group in
                for (index, (prompt, images, tokens)) in cases.enumerated() {
                    group.addTask { (index, try await self.run(engine, prompt, images: images, tokens: tokens)) }
                }
                return try await group.reduce(into: [Int: GenerationOutput]()) { $0[$1.0] = $1.1 }
            }
            for (index, (prompt, _, tokens)) in cases.enumerated() {
                XCTAssertEqual(answers[index]?.generatedTokenIds, lone[index].generatedTokenIds, "\(prompt), chunk \(chunk)")
                XCTAssertEqual(answers[index]?.tokens.count, tokens)
            }
            XCTAssertGreaterThan(engine.largestBatch, 1, "rows decode together")
            XCTAssertEqual(engine.load, 0)
        }
        let engine = GenerationEngine(pipeline: pipeline, capacity: 4)
        defer { engine.stop() }
        let expected = try pipeline.generate(prompt: "Hello", request: GenerationRequest(maxNewTokens: 3)).text
        let application = IdeficsServer.application(engine: engine, configuration: ServerConfiguration(modelName: "v1"),
                                                     logger: Logger(label: "test"))
        try await application.test(.router) { client in
            let body = #"{"inputs": "Hello", "parameters": {"max_new_tokens": 3}}"#
            try await client.execute(uri: "/generate", method: .post, body: ByteBuffer(string: body)) { response in
                XCTAssertEqual(response.status, .ok)
                XCTAssertEqual(try self.object(response.body)["generated_text"] as? String, expected)
            }
        }
    }
}
