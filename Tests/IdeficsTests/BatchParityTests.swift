import Foundation
import Idefics
import TestSupport
import XCTest

/// Prompts with different lengths and different numbers and sizes of images generate together, and every row
/// equals its unbatched result and transformers' tokens for that prompt.
final class BatchParityTests: XCTestCase {
    func testBatchedRowsEqualTheirSingleRuns() throws {
        for model in ["tiny-f32", "tiny-bf16-swa", "tiny-f16-sharded"] {
            let pipeline = try Pipeline(pathOrID: Fixtures.url("models/\(model)").path, threads: 2)
            let reference = try JSONSerialization.jsonObject(with: Fixtures.data("vision/\(model)/reference.json")) as! [String: Any]
            let cases = (reference["cases"] as! [[String: Any]]).filter { ($0["do_image_splitting"] as! Bool) == false }
            let prepared = try cases.map { c in
                try pipeline.prepare(prompt: (c["rendered_chat"] as? String) ?? (c["prompt"] as! String),
                                     images: (c["images"] as! [String]).map { try ImageInput.load(Fixtures.url("vision/images/\($0).png").path) },
                                     options: .init(doImageSplitting: false))
            }
            let request = GenerationRequest(maxNewTokens: 12)
            let batched = try pipeline.generate(batch: prepared, request: request)
            for (index, c) in cases.enumerated() {
                let single = try pipeline.generate(prepared[index], request: request)
                let label = "\(model)/\(c["name"]!)"
                XCTAssertEqual(batched[index].generatedTokenIds, single.generatedTokenIds, label)
                XCTAssertEqual(batched[index].text, single.text, label)
                let steps = (c["greedy"] as! [String: Any])["steps"] as! [[String: Any]]
                let decisive = min(12, steps.prefix { ($0["margin"] as! Double) > 1e-3 }.count)
                let expected = (c["default_generation"] as! [String: Any])["tokens"] as! [Int]
                XCTAssertEqual(Array(batched[index].generatedTokenIds.prefix(decisive)), Array(expected.prefix(decisive)), label)
            }
        }
    }

    func testRowsStopIndependently() throws {
        let pipeline = try Pipeline(pathOrID: Fixtures.url("models/tiny-bf16-swa").path, threads: 2)
        // The reference "chat" prompt of this checkpoint reaches <end_of_utterance> at its 11th token.
        let reference = try JSONSerialization.jsonObject(with: Fixtures.data("models/tiny-bf16-swa/reference.json")) as! [String: Any]
        let cases = reference["cases"] as! [[String: Any]]
        let prompts = cases.map { PreparedPrompt(ids: $0["input_ids"] as! [Int], imageRows: []) }
        let outputs = try pipeline.generate(batch: prompts, request: GenerationRequest(maxNewTokens: 24))
        for (index, c) in cases.enumerated() {
            let expected = c["default_generation"] as! [String: Any]
            XCTAssertEqual(outputs[index].generatedTokenIds, expected["tokens"] as! [Int], "\(c["name"]!)")
            XCTAssertEqual(outputs[index].finishReason, (expected["stopped_by_eos"] as! Bool) ? .eosToken : .length)
        }
    }
}
