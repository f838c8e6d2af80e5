import Foundation
import Idefics
import IdeficsCheckpoint
import IdeficsModels
import IdeficsTensors
import TestSupport
import XCTest

/// A checkpoint stored as HuggingFaceM4/idefics2-8b-AWQ is (scripts/make_awq_fixture.py: AutoAWQ's GEMM packing of
/// the language model's linear layers, group 128 with zero points; vision tower and connector fp16) against
/// transformers on its exactly dequantized weights.
final class AWQCheckpointTests: XCTestCase {
    private static let folder = Fixtures.url("models/tiny-awq")

    private struct Case {
        let name: String, prompt: String, images: [String], ids: [Int], logitsKey: String
        let tokens: [Int], margins: [Double], top5: [[(Int, Float)]]
    }

    private func cases() throws -> [Case] {
        let reference = try JSONSerialization.jsonObject(with: Data(contentsOf: Self.folder.appendingPathComponent("reference.json")))
            as! [String: Any]
        let cases = (reference["cases"] as! [[String: Any]]).map { c in
            let greedy = c["greedy"] as! [String: Any]
            return Case(name: c["name"] as! String, prompt: c["prompt"] as! String, images: c["images"] as! [String],
                        ids: c["input_ids"] as! [Int], logitsKey: c["logits_key"] as! String, tokens: greedy["tokens"] as! [Int],
                        margins: (greedy["steps"] as! [[String: Any]]).map { $0["margin"] as! Double },
                        top5: (greedy["steps"] as! [[String: Any]]).map { step in
                            (step["top5"] as! [[Double]]).map { (Int($0[0]), Float($0[1])) }
                        })
        }
        XCTAssertEqual(cases.count, 4)
        return cases
    }

    func testLanguageModelLayersLoadRepackedAndTheHeadStaysFloat() throws {
        let pipeline = try Pipeline(pathOrID: Self.folder.path, threads: 2)
        XCTAssertEqual(pipeline.checkpoint.storedQuantization, .awq(groupSize: 128, modulesToNotConvert: ["vision_model", "connector"]))
        let layers = pipeline.decoder.matrices.dropLast()
        XCTAssertEqual(layers.count, 14)
        for linear in layers {
            XCTAssertEqual(linear.weight.quantization, .q4z, linear.weight.name)
            // 20 bytes per 32 weights: 5 bits each, as AWQ's 4 bits + its fp16 scale and zero per 128.
            XCTAssertEqual(linear.weight.byteCount, linear.outFeatures * linear.inFeatures / 32 * 20)
        }
        XCTAssertNil(pipeline.decoder.head.weight.quantization) // tied to the fp16 embeddings, as AWQ leaves lm_head
        XCTAssertEqual(pipeline.decoder.head.weight.dtype, .f16)
    }

    /// On the portable kernels and AVX-512 without VNNI, prompts of 20 tokens or more run the packed GEMM, which
    /// unpacks the weights to float32 exactly: the logits agree with transformers' float32 run as closely as two
    /// float32 orders of summation do (measured 9e-7 of the logits' range; bound 5e-6). Shorter prompts, every
    /// decoded token, and with VNNI or the AVX2 kernels every prompt
    /// multiply the weights with activations rounded to int8 per block of 32, as llama.cpp does (measured up to
    /// 1.8e-2 of the range; bound 3e-2), so a reference choice is held only where its margin exceeds what twice that
    /// could overturn.
    func testLogitsAndTokensMatchTransformersOnTheDequantizedWeights() throws {
        let pipeline = try Pipeline(pathOrID: Self.folder.path, threads: 2)
        let logits = try SafetensorsFile(path: Self.folder.appendingPathComponent("reference_logits.safetensors").path)
        for c in try cases() {
            let images = try c.images.map { try ImageInput.load(Fixtures.url("vision/images/\($0).png").path) }
            let prepared = try pipeline.prepare(prompt: c.prompt, images: images)
            XCTAssertEqual(prepared.ids, c.ids, c.name)
            var session = pipeline.makeSession(imageRows: prepared.imageRows)
            let ours = try session.prefill(prepared.ids)
            let all = logits.tensor(c.logitsKey)!.floats()
            let expected = Array(all.suffix(ours.count))
            let range = Double(expected.max()! - expected.min()!)
            let worst = zip(ours, expected).map { Double(abs($0 - $1)) }.max()!
            let exact = c.ids.count >= 20 && !KernelPath.quantizesPromptActivations
            print(String(format: "%@ (%d tokens): max |logit difference| %.2e of the range %.2f", c.name, c.ids.count,
                         worst / range, range))
            XCTAssertLessThan(worst / range, exact ? 5e-6 : 3e-2, c.name)

            // Decoding, fed the reference's tokens: every step's top-5 logits within the int8 path's bound, and its
            // choice wherever the reference margin is beyond what that bound could overturn.
            var step = ours, decisive = 0
            for (k, token) in c.tokens.enumerated() {
                for (id, value) in c.top5[k] {
                    XCTAssertLessThan(Double(abs(step[id] - value)) / range, 3e-2, "\(c.name) step \(k) token \(id)")
                }
                if c.margins[k] > 0.03 * range {
                    decisive += 1
                    XCTAssertEqual(step.indices.max { step[$0] < step[$1] }, token, "\(c.name) step \(k)")
                }
                step = try session.logits(after: [token])
            }
            print("\(c.name): \(decisive) of \(c.tokens.count) steps decisive")
            XCTAssertGreaterThanOrEqual(decisive, 3, c.name)
        }
    }
}
