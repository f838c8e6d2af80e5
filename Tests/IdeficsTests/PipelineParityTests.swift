import Foundation
import Idefics
import TestSupport
import XCTest

/// The whole pipeline, from PNG files to generated tokens: decoding, the image processor, prompt expansion,
/// tokenization, vision tower, connector and decoder reproduce transformers' `generate()` on every image case.
final class PipelineParityTests: XCTestCase {
    func testPNGFilesToTokensMatchTransformers() throws {
        for model in ["tiny-f32", "tiny-bf16-swa", "tiny-f16-sharded"] {
            let pipeline = try Pipeline(pathOrID: Fixtures.url("models/\(model)").path, threads: 2)
            let reference = try JSONSerialization.jsonObject(with: Fixtures.data("vision/\(model)/reference.json")) as! [String: Any]
            for c in reference["cases"] as! [[String: Any]] {
                let label = "\(model)/\(c["name"]!)"
                let images = try (c["images"] as! [String]).map {
                    try ImageInput.load(Fixtures.url("vision/images/\($0).png").path)
                }
                let prompt = (c["rendered_chat"] as? String) ?? (c["prompt"] as! String)
                let prepared = try pipeline.prepare(prompt: prompt, images: images,
                                                    options: .init(doImageSplitting: c["do_image_splitting"] as? Bool))
                XCTAssertEqual(prepared.ids, c["input_ids"] as! [Int], label)
                let output = try pipeline.generate(prepared, request: GenerationRequest(maxNewTokens: 24))
                let expected = c["default_generation"] as! [String: Any]
                let steps = (c["greedy"] as! [String: Any])["steps"] as! [[String: Any]]
                // Compare up to the first step whose reference margin is too small to be decisive.
                let decisive = steps.prefix { ($0["margin"] as! Double) > 1e-3 }.count
                XCTAssertEqual(Array(output.generatedTokenIds.prefix(decisive)),
                               Array((expected["tokens"] as! [Int]).prefix(decisive)), label)
            }
        }
    }

    func testImageCountMismatchAndTextOnlyModelsAreErrors() throws {
        let pipeline = try Pipeline(pathOrID: Fixtures.url("models/tiny-f32").path, threads: 1)
        let image = try ImageInput.load(Fixtures.url("vision/images/coffee_70x70.png").path)
        XCTAssertThrowsError(try pipeline.prepare(prompt: "<image><image>Compare.", images: [image])) {
            XCTAssertEqual("\($0)", "the prompt has 2 <image> placeholders but 1 image was given")
        }
        XCTAssertThrowsError(try pipeline.prepare(prompt: "Describe.", images: [image])) {
            XCTAssertEqual("\($0)", "the prompt has 0 <image> placeholders but 1 image was given")
        }
        XCTAssertThrowsError(try ImageInput.load(Fixtures.url("vision/images/missing.png").path)) {
            XCTAssertTrue("\($0)".contains("missing.png"), "\($0)")
        }
    }
}
