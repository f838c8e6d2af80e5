import Foundation
import Idefics
import TestSupport
import XCTest

/// What `idefics preprocess` writes: the checkpoint's processor with the command's overrides, through the
/// safetensors writer, equal to the bytes transformers' Idefics2ImageProcessorPil produced.
final class PreprocessTests: XCTestCase {
    func testWrittenTensorsMatchTransformers() throws {
        let manifest = try JSONSerialization.jsonObject(with: Fixtures.data("images/manifest.json")) as! [String: Any]
        // coffee.png split, at the default 378/980 edges: tiny-f32's config says 28/56, so the overrides count.
        let expected = try XCTUnwrap((manifest["process"] as! [[String: Any]]).first { $0["name"] as? String == "coffee_split" })
        let processor = try Idefics2ImageProcessor(checkpointDirectory: Fixtures.url("models/tiny-f32"))
        XCTAssertEqual(processor.config.longestEdge, 56)
        let image = try ImageInput.load(Fixtures.url("images/inputs/coffee.png").path)
        let batch = try processor.batch([[image]], overrides: .init(doImageSplitting: true, longestEdge: 980,
                                                                    shortestEdge: 378))
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("preprocess-\(UUID()).safetensors")
        defer { try? FileManager.default.removeItem(at: url) }
        try batch.safetensors().write(to: url.path)

        let file = try SafetensorsFile(path: url.path)
        let values = try XCTUnwrap(file.tensor("pixel_values"))
        XCTAssertEqual(values.dtype, .f32)
        XCTAssertEqual(values.shape, expected["shape"] as? [Int])
        XCTAssertEqual(SHA256.hex(raw: UnsafeRawBufferPointer(start: values.data, count: values.byteCount)),
                       expected["sha256"] as? String)

        let mask = try XCTUnwrap(file.tensor("pixel_attention_mask"))
        XCTAssertEqual(mask.dtype, .u8)
        XCTAssertEqual(mask.shape, expected["mask_shape"] as? [Int])
        // transformers' mask is 1 on each image's own height x width, top left in its padded slot.
        let (height, width) = (mask.shape[2], mask.shape[3])
        var expectedMask = [UInt8](repeating: 0, count: mask.count)
        for entry in expected["images"] as! [[String: Any]] {
            let slot = entry["index"] as! Int, h = entry["height"] as! Int, w = entry["width"] as! Int
            for y in 0..<h { for x in 0..<w { expectedMask[(slot * height + y) * width + x] = 1 } }
        }
        XCTAssertEqual(Array(UnsafeRawBufferPointer(start: mask.data, count: mask.byteCount)), expectedMask)
    }
}
