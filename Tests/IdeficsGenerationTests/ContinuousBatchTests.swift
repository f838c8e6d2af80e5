import Foundation
import IdeficsCheckpoint
import IdeficsGeneration
import IdeficsModels
import IdeficsTensors
import TestSupport
import XCTest

/// Continuous batching with chunked prefill: rows join while others decode, their prompts run a chunk per step in
/// the same batched call, and every row still gets the tokens of its lone `Generator.generate` (greedy, so equal
/// logits up to reassociation give equal tokens unless two logits tie; the fixture's margins are >= 1e-3).
final class ContinuousBatchTests: XCTestCase {
    func testChunkedPrefillRowsGetTheirLoneRunsTokens() throws {
        let pool = WorkerPool(threads: 2)
        let directory = Fixtures.url("models/tiny-f32")
        let decoder = try Mistral(checkpoint: Checkpoint(directory: directory))
        let reference = try JSONSerialization.jsonObject(with: Data(contentsOf: directory.appendingPathComponent("reference.json"))) as! [String: Any]
        let prompts = (reference["cases"] as! [[String: Any]]).map { $0["input_ids"] as! [Int] }
        XCTAssertGreaterThanOrEqual(prompts.count, 3)
        let parameters = try GenerationParameters(request: .init(maxNewTokens: 6))
        let lone = try prompts.map { prompt -> [Int] in
            var session = DecoderSession(decoder: decoder, pool: pool)
            return try Generator.generate(model: &session, prompt: prompt, parameters: parameters, text: NoText()).generatedTokenIds
        }
        for chunk in [1, 3, 1 << 20] {
            var batch = ContinuousBatch<NoText, DecoderSession>(prefillChunk: chunk)
            var tokens = [Int: [Int]](), outputs = [Int: [Int]](), steps = 0
            for (id, prompt) in prompts.enumerated() {
                // Each row joins while the earlier ones are prefilling or decoding.
                try batch.add(id: id, session: DecoderSession(decoder: decoder, pool: pool), prompt: prompt,
                              parameters: parameters, text: NoText())
                for event in try batch.step() {
                    tokens[event.id, default: []].append(event.token.id)
                    if let output = event.finished { outputs[event.id] = output.generatedTokenIds }
                }
                steps += 1
            }
            if chunk == 1 { XCTAssertGreaterThan(batch.prefilling, 0, "rows are still prefilling when the last joins") }
            while !batch.isEmpty {
                for event in try batch.step() {
                    tokens[event.id, default: []].append(event.token.id)
                    if let output = event.finished { outputs[event.id] = output.generatedTokenIds }
                }
                steps += 1
            }
            for id in prompts.indices {
                XCTAssertEqual(tokens[id], lone[id], "chunk \(chunk), row \(id): streamed tokens")
                XCTAssertEqual(outputs[id], lone[id], "chunk \(chunk), row \(id): output")
            }
            // One chunk per step: the whole prompts' tokens / chunk steps at least.
            let prefillSteps = prompts.reduce(0) { $0 + ($1.count + chunk - 1) / chunk }
            XCTAssertGreaterThanOrEqual(steps, prefillSteps, "chunk \(chunk)")
        }
    }

    /// `decoder_input_details` and `top_n_tokens`: each prompt token's log-probability, computed chunk by chunk,
    /// equals log_softmax of transformers' logits at the position before it (the fixture's all-position logits);
    /// tolerance: the decoder's logits are within 1e-4 of the largest logit (MistralParityTests), and a
    /// log-softmax moves by at most twice its inputs' error. Each generated token lists its 3 likeliest
    /// alternatives, most likely first: under greedy choice, the token itself.
    func testPromptLogprobsMatchTransformersWhateverTheChunk() throws {
        let pool = WorkerPool(threads: 2)
        let directory = Fixtures.url("models/tiny-f32")
        let decoder = try Mistral(checkpoint: Checkpoint(directory: directory))
        let reference = try JSONSerialization.jsonObject(with: Data(contentsOf: directory.appendingPathComponent("reference.json"))) as! [String: Any]
        let logitsFile = try SafetensorsFile(path: directory.appendingPathComponent(reference["logits_file"] as! String).path)
        let cases = (reference["cases"] as! [[String: Any]]).filter { $0["all_logits_key"] != nil }
        XCTAssertFalse(cases.isEmpty, "the fixture has a case with every position's logits")
        var request = GenerationRequest(maxNewTokens: 3)
        (request.promptLogprobs, request.topLogprobs) = (true, 3)
        let parameters = try GenerationParameters(request: request)
        for c in cases {
            let prompt = c["input_ids"] as! [Int]
            let logits = try XCTUnwrap(logitsFile.tensor(c["all_logits_key"] as! String)).floats()
            let vocabulary = logits.count / prompt.count
            let tolerance = 2 * 1e-4 * Double(logits.map(abs).max()!)
            let expected = prompt.indices.dropFirst().map { i -> Double in
                let row = logits[(i - 1) * vocabulary..<i * vocabulary].map(Double.init)
                let top = row.max()!
                return row[prompt[i]] - top - log(row.reduce(0) { $0 + exp($1 - top) })
            }
            for chunk in [1, 4, 1 << 20] {
                var batch = ContinuousBatch<NoText, DecoderSession>(prefillChunk: chunk)
                try batch.add(id: 0, session: DecoderSession(decoder: decoder, pool: pool), prompt: prompt,
                              parameters: parameters, text: NoText())
                var output: GenerationOutput?
                while output == nil { output = try batch.step().compactMap(\.finished).first }
                let logprobs = try XCTUnwrap(output).promptLogprobs
                guard logprobs.count == prompt.count else { return XCTFail("chunk \(chunk): \(logprobs.count) log-probabilities") }
                XCTAssertNil(logprobs[0], "nothing predicts the first prompt token")
                for (i, (actual, wanted)) in zip(logprobs.dropFirst(), expected).enumerated() {
                    XCTAssertEqual(Double(try XCTUnwrap(actual)), wanted, accuracy: tolerance, "chunk \(chunk), token \(i + 1)")
                }
                for token in output!.tokens {
                    XCTAssertEqual(token.top.count, 3)
                    XCTAssertEqual(token.top.first, TokenLogprob(id: token.id, logprob: token.logprob))
                    XCTAssertEqual(token.top.map(\.logprob), token.top.map(\.logprob).sorted(by: >))
                }
            }
        }
    }

    /// A row that cannot go on (here an `<image>` token with no image vector for it) leaves with its own error;
    /// the row beside it runs on to its lone run's tokens.
    func testAFailingRowLeavesAloneAndTheOthersRunOn() throws {
        let pool = WorkerPool(threads: 2)
        let decoder = try Mistral(checkpoint: Checkpoint(directory: Fixtures.url("models/tiny-f32")))
        let imageToken = 32001
        let parameters = try GenerationParameters(request: .init(maxNewTokens: 4))
        let prompt = [1, 415, 5565, 302]
        var lone = DecoderSession(decoder: decoder, pool: pool)
        let expected = try Generator.generate(model: &lone, prompt: prompt, parameters: parameters, text: NoText())
        var batch = ContinuousBatch<NoText, DecoderSession>()
        try batch.add(id: 0, session: DecoderSession(decoder: decoder, pool: pool), prompt: prompt,
                      parameters: parameters, text: NoText())
        var tokens = try batch.step().map(\.token.id)
        try batch.add(id: 1, session: DecoderSession(decoder: decoder, pool: pool, imageTokenId: imageToken),
                      prompt: [1, imageToken, 415], parameters: parameters, text: NoText())
        tokens += try batch.step().filter { $0.id == 0 }.map(\.token.id)
        let failures = batch.takeFailures()
        XCTAssertEqual(failures.map(\.id), [1])
        XCTAssertEqual(failures.first.map { "\($0.error)" }, "\(GenerationError.imageTokenMismatch(tokens: 1, features: 0))")
        XCTAssertEqual(batch.ids, [0])
        while !batch.isEmpty { tokens += try batch.step().map(\.token.id) }
        XCTAssertEqual(tokens, expected.generatedTokenIds)
    }
}
