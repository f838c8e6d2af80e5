import Foundation
import IdeficsTokenizer
import TestSupport
import XCTest

/// Prompt expansion plus tokenization give the input ids of the original Idefics2Processor for every image case
/// of the tiny checkpoints (base prompts, adjacent images, splitting, a rendered multi-turn chat with unicode).
final class Idefics2PromptParityTests: XCTestCase {
    func testExpandedPromptsTokenizeToTheReferenceIds() throws {
        let tokenizer = try Tokenizer(directory: Fixtures.url("tokenizer"))
        for model in ["tiny-f32", "tiny-bf16-swa", "tiny-f16-sharded"] {
            let reference = try JSONSerialization.jsonObject(with: Fixtures.data("vision/\(model)/reference.json")) as! [String: Any]
            let sequenceLength = reference["image_seq_len"] as! Int
            for c in reference["cases"] as! [[String: Any]] {
                let prompt = (c["rendered_chat"] as? String) ?? (c["prompt"] as! String)
                let expanded = try Idefics2Prompt.expand(prompt, imageCount: (c["images"] as! [String]).count,
                                                         imageSequenceLength: sequenceLength,
                                                         splitImages: c["do_image_splitting"] as! Bool)
                XCTAssertEqual(expanded, c["expanded_prompt"] as! String, "\(model)/\(c["name"]!)")
                XCTAssertEqual(tokenizer.encode(expanded), c["input_ids"] as! [Int], "\(model)/\(c["name"]!)")
            }
        }
    }
}
