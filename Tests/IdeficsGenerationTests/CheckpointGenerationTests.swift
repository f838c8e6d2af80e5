import Foundation
import IdeficsCheckpoint
import IdeficsGeneration
import IdeficsModels
import IdeficsTensors
import TestSupport
import XCTest

/// Generation with each tiny checkpoint's own generation_config.json (eos lists, bad words) reproduces
/// transformers' `generate(max_new_tokens=24)` token for token.
final class CheckpointGenerationTests: XCTestCase {
    func testDefaultGenerationMatchesTransformers() throws {
        let pool = WorkerPool(threads: 2)
        for name in ["tiny-f32", "tiny-bf16-swa", "tiny-f16-sharded"] {
            let directory = Fixtures.url("models/\(name)")
            let checkpoint = try Checkpoint(directory: directory)
            let decoder = try Mistral(checkpoint: checkpoint)
            let config = try checkpoint.decode(GenerationConfig.self, from: "generation_config.json")
            let reference = try JSONSerialization.jsonObject(with: Data(contentsOf: directory.appendingPathComponent("reference.json"))) as! [String: Any]
            for c in reference["cases"] as! [[String: Any]] {
                let expected = c["default_generation"] as! [String: Any]
                var session = DecoderSession(decoder: decoder, pool: pool)
                let parameters = try GenerationParameters(request: .init(maxNewTokens: 24), config: config)
                let output = try Generator.generate(model: &session, prompt: c["input_ids"] as! [Int],
                                                    parameters: parameters, text: NoText())
                XCTAssertEqual(output.generatedTokenIds, expected["tokens"] as! [Int], "\(name)/\(c["name"]!)")
                XCTAssertEqual(output.finishReason, (expected["stopped_by_eos"] as! Bool) ? .eosToken : .length)
            }
        }
    }
}

/// A chat's next turn reuses the cached prefix and computes only what is new, with the same result.
final class PrefixReuseTests: XCTestCase {
    /// Equal up to float reassociation (a cached run splits the work differently); prints no vectors.
    private func assertClose(_ actual: [Float], _ expected: [Float], _ label: String, line: UInt = #line) {
        XCTAssertEqual(actual.count, expected.count, label, line: line)
        let difference = zip(actual, expected).map { abs($0 - $1) }.max() ?? .infinity
        XCTAssertLessThan(difference, 1e-4 * (expected.map(abs).max() ?? 1), label, line: line)
    }

    func testNextTurnReusesTheCacheAndMatchesAFreshRun() throws {
        let pool = WorkerPool(threads: 2)
        let decoder = try Mistral(checkpoint: Checkpoint(directory: Fixtures.url("models/tiny-bf16-swa")))
        let firstTurn = [1, 1247, 28747, 1824, 349, 297, 264, 7296, 11809, 28804, 32002, 28705, 13, 7226, 11143, 28747]
        var session = DecoderSession(decoder: decoder, pool: pool)
        _ = try session.prefill(firstTurn)
        _ = try session.logits(after: [415, 5565])
        let secondTurn = firstTurn + [415, 5565, 302, 4843, 349]
        let reused = try session.prefill(secondTurn)
        XCTAssertEqual(session.tokens, secondTurn)
        var fresh = DecoderSession(decoder: decoder, pool: pool)
        assertClose(reused, try fresh.prefill(secondTurn), "next turn")
        // A prompt that diverges early, or repeats exactly, is recomputed from where it differs.
        let diverging = [1, 1247, 28747, 1824]
        var reference = DecoderSession(decoder: decoder, pool: pool)
        let expected = try reference.prefill(diverging)
        assertClose(try session.prefill(diverging), expected, "diverging prompt")
        assertClose(try session.prefill(diverging), expected, "repeated prompt")
        XCTAssertEqual(session.cache.count, diverging.count)
    }
}
