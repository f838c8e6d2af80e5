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
            var batch = ContinuousBatch<NoText>(prefillChunk: chunk)
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
}
