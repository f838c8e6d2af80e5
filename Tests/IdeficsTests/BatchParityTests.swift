import Foundation
@testable import Idefics
import Synchronization
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

    /// One pipeline called from several threads at once (image encoding and generation): the calls share the decode
    /// steps of the pipeline's engine, and each gets its lone result.
    func testConcurrentCallersGetTheirLoneResults() throws {
        let pipeline = try Pipeline(pathOrID: Fixtures.url("models/tiny-f32").path, threads: 2)
        let reference = try JSONSerialization.jsonObject(with: Fixtures.data("vision/tiny-f32/reference.json")) as! [String: Any]
        let cases = (reference["cases"] as! [[String: Any]]).filter { !($0["images"] as! [String]).isEmpty }
        XCTAssertGreaterThanOrEqual(cases.count, 2)
        let inputs = try cases.map { c in
            ((c["rendered_chat"] as? String) ?? (c["prompt"] as! String),
             try (c["images"] as! [String]).map { try ImageInput.load(Fixtures.url("vision/images/\($0).png").path) })
        }
        let request = GenerationRequest(maxNewTokens: 12)
        let lone = try inputs.map { try pipeline.generate(prompt: $0.0, images: $0.1, request: request) }
        let callers = inputs.count * 2 // every input twice, all at once
        let results = Mutex([Int: Result<GenerationOutput, Error>]())
        DispatchQueue.concurrentPerform(iterations: callers) { caller in
            let (prompt, images) = inputs[caller % inputs.count]
            let result = Result { try pipeline.generate(prompt: prompt, images: images, request: request) }
            results.withLock { $0[caller] = result }
        }
        for caller in 0..<callers {
            let output = try results.withLock { $0[caller] }!.get()
            XCTAssertEqual(output.generatedTokenIds, lone[caller % inputs.count].generatedTokenIds, "caller \(caller)")
            XCTAssertEqual(output.text, lone[caller % inputs.count].text, "caller \(caller)")
        }
        XCTAssertGreaterThan(pipeline.engine.largestBatch, 1, "concurrent calls decode in one batch")
    }

    /// An `onToken` (run on the engine's thread) that generates again gets its answer there and then, not a deadlock;
    /// both answers are their lone runs'.
    func testGeneratingFromInsideOnTokenRunsInPlace() throws {
        let pipeline = try Pipeline(pathOrID: Fixtures.url("models/tiny-f32").path, threads: 2)
        let request = GenerationRequest(maxNewTokens: 6)
        let (outer, inner) = ("The capital of France is", "Once upon a time")
        let loneOuter = try pipeline.generate(prompt: outer, request: request)
        let loneInner = try pipeline.generate(prompt: inner, request: request)
        var nested: [GenerationOutput] = []
        let output = try pipeline.generate(prompt: outer, request: request) { _ in
            if nested.isEmpty { nested.append(try! pipeline.generate(prompt: inner, request: request)) }
            return true
        }
        XCTAssertEqual(output.generatedTokenIds, loneOuter.generatedTokenIds)
        XCTAssertEqual(nested.map(\.generatedTokenIds), [loneInner.generatedTokenIds])
    }

    /// The pipeline's engine neither keeps the pipeline alive nor keeps a thread once its calls are answered.
    func testAPipelineIsReleasedAfterGenerating() throws {
        weak var released: Pipeline?
        func generateOnce() throws {
            let pipeline = try Pipeline(pathOrID: Fixtures.url("models/tiny-f32").path, threads: 2)
            _ = try pipeline.generate(prompt: "Hello", request: GenerationRequest(maxNewTokens: 3))
            released = pipeline
        }
        try generateOnce()
        let deadline = Date().addingTimeInterval(10) // the engine's thread lets go once its loop sees nothing left
        while released != nil && Date() < deadline { Thread.sleep(forTimeInterval: 0.01) }
        XCTAssertNil(released)
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
