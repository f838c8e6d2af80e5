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
    private struct NoText: IncrementalTextDecoder {
        mutating func append(_ id: Int) -> String { "" }
        mutating func flush() -> String { "" }
    }

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
