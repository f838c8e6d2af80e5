import Foundation
import IdeficsCheckpoint
import IdeficsModels
import IdeficsTensors
import TestSupport
import XCTest

/// The decoder against transformers 5.23 on every committed tiny checkpoint (F32, BF16 with an active sliding
/// window and GQA 6:1, sharded F16): prefill logits within 1e-4 relative, then greedy decoding through the KV cache.
final class MistralParityTests: XCTestCase {
    let pool = WorkerPool(threads: 2)

    func testPrefillLogitsMatchTransformers() throws {
        for name in ModelReference.names {
            let reference = try ModelReference(name)
            let model = try Mistral(checkpoint: Checkpoint(directory: reference.directory))
            for c in reference.cases {
                var cache = model.makeCache()
                let logits = model.forward(model.embed(c.inputIds), positions: Array(c.inputIds.indices), cache: &cache,
                                           logits: .last, pool: pool)
                let expected = try XCTUnwrap(reference.logits.tensor(c.logitsKey)).floats()
                XCTAssertLessThan(relativeError(logits, expected), 1e-4, "\(name)/\(c.name)")
            }
        }
    }

    func testLogitsOfEveryPromptPosition() throws {
        for name in ModelReference.names {
            let reference = try ModelReference(name)
            let model = try Mistral(checkpoint: Checkpoint(directory: reference.directory))
            for c in reference.cases {
                guard let key = c.allLogitsKey else { continue }
                var cache = model.makeCache()
                let logits = model.forward(model.embed(c.inputIds), positions: Array(c.inputIds.indices), cache: &cache,
                                           logits: .all, pool: pool)
                let expected = try XCTUnwrap(reference.logits.tensor(key)).floats()
                XCTAssertLessThan(relativeError(logits, expected), 1e-4, "\(name)/\(c.name) all positions")
            }
        }
    }

    func testGreedyDecodingThroughTheCacheMatchesTransformers() throws {
        for name in ModelReference.names {
            let reference = try ModelReference(name)
            let model = try Mistral(checkpoint: Checkpoint(directory: reference.directory))
            for c in reference.cases {
                var cache = model.makeCache()
                var logits = model.forward(model.embed(c.inputIds), positions: Array(c.inputIds.indices), cache: &cache,
                                           pool: pool)
                for (index, step) in c.steps.enumerated() {
                    let token = logits.indices.max { logits[$0] < logits[$1] }!
                    // Near-ties may legitimately flip between float orderings: only clear margins must agree.
                    if step.margin > 1e-3 {
                        XCTAssertEqual(token, step.token, "\(name)/\(c.name) step \(index)")
                    }
                    logits = model.forward(model.embed([step.token]), positions: [c.inputIds.count + index],
                                           cache: &cache, pool: pool)
                }
            }
        }
    }

    func testConfigDisagreeingWithWeightsNamesTheTensor() throws {
        let directory = Fixtures.url("models/tiny-f32")
        let checkpoint = try Checkpoint(directory: directory)
        var config = try Idefics2Config(directory: directory).text
        config.intermediateSize += 1
        XCTAssertThrowsError(try Mistral(config: config, checkpoint: checkpoint, prefix: "model.text_model.")) { error in
            XCTAssertEqual("\(error)", "\(directory.path)/model.safetensors: tensor model.text_model.layers.0.mlp.gate_proj.weight: "
                           + "shape [64, 32] disagrees with config.json, which implies [65, 32]")
        }
    }
}
